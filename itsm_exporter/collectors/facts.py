"""Ticket facts at as_of: what each ticket of a configured source contributes, as one array per fact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, IntArray, SmallIntArray, positions_in

SLAS = ("response", "resolution")
OUTCOMES = ("met", "breached")
STATES = ("canceled", "closed", "open", "on_hold")
"""The states a ticket's facts read (records.TicketState: `resolved` needs no test of its own)."""


@dataclass(frozen=True)
class TicketFacts:
    """Per-ticket arrays of configured sources; times are epoch seconds with NaN for never."""

    frame: pd.DataFrame
    source: IntArray
    opened: FloatArray
    first_response: FloatArray
    resolved: FloatArray
    backlog: BoolArray
    complaint: BoolArray
    reopened: BoolArray
    first_contact: BoolArray
    reassignments: IntArray
    sla: dict[str, SmallIntArray]
    """SLA name -> index into OUTCOMES per ticket, -1 when unknown (int8: a million tickets, two SLAs)."""
    row_of_frame: IntArray | None = None
    """Per row of the tickets frame given, its row here (-1: a source not configured); None: the same rows."""


def ticket_facts(tickets: pd.DataFrame, names: tuple[str, ...], as_of: float) -> TicketFacts:
    """Derive what each ticket contributes; canceled tickets keep only their opening."""
    codes = positions_in(tickets["source"], names)
    row_of_frame = None
    if (codes < 0).any():
        kept = codes >= 0
        row_of_frame = np.where(kept, np.cumsum(kept) - 1, -1)
        tickets = tickets.loc[kept].reset_index(drop=True)
        codes = codes[kept]
    state_codes = positions_in(tickets["state"], STATES)
    state = {name: state_codes == index for index, name in enumerate(STATES)}
    canceled = state["canceled"]
    opened = tickets["opened_at"].to_numpy(dtype=np.float64)
    resolved = tickets["resolved_at"].to_numpy(dtype=np.float64)
    closed = tickets["closed_at"].to_numpy(dtype=np.float64)
    resolved = np.where(np.isnan(resolved) & state["closed"], closed, resolved)
    resolved[canceled] = np.nan
    first_response = tickets["first_response_at"].to_numpy(dtype=np.float64).copy()
    first_response[canceled] = np.nan
    # State open/on_hold is backlog; so is a ticket resolved only after as_of (a past --as-of).
    still_open = (state["open"] | state["on_hold"]) | (resolved > as_of)
    backlog = (opened <= as_of) & still_open & ~canceled
    reopens = tickets["reopens"].to_numpy(dtype=np.int64)
    reassignments = tickets["reassignments"].to_numpy(dtype=np.int64)
    return TicketFacts(
        frame=tickets,
        source=codes,
        opened=opened,
        first_response=first_response,
        resolved=resolved,
        backlog=backlog,
        complaint=tickets["complaint"].to_numpy(dtype=bool),
        reopened=reopens > 0,
        first_contact=(reopens == 0) & (reassignments == 0),
        reassignments=reassignments,
        # Comparing a million strings once per outcome cost twice what one factorization does.
        sla={sla: positions_in(tickets[f"sla_{sla}"], OUTCOMES).astype(np.int8) for sla in SLAS},
        row_of_frame=row_of_frame,
    )
