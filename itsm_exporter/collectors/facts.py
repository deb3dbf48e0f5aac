"""Ticket facts at as_of: what each ticket of a configured source contributes, as one array per fact."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from itsm_exporter.collectors.arrays import FEW, BoolArray, FloatArray, IntArray, SmallIntArray, source_codes

SLAS = ("response", "resolution")
OUTCOMES = ("met", "breached")


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
    codes = source_codes(tickets["source"], names)
    row_of_frame = None
    if (codes < 0).any():
        kept = codes >= 0
        row_of_frame = np.where(kept, np.cumsum(kept) - 1, -1)
        tickets = tickets.loc[kept].reset_index(drop=True)
        codes = codes[kept]
    state = _is(tickets["state"], ("canceled", "closed", "open", "on_hold"))
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
        sla={sla: _outcome_codes(tickets[f"sla_{sla}"]) for sla in SLAS},
        row_of_frame=row_of_frame,
    )


def _outcome_codes(column: pd.Series) -> SmallIntArray:
    """Index into OUTCOMES per ticket, -1 for unknown: one factorization of the few distinct values, then a lookup
    (comparing a million strings once per outcome cost twice as much)."""
    codes, uniques = pd.factorize(column.to_numpy(dtype=object), size_hint=FEW)
    index = {outcome: position for position, outcome in enumerate(OUTCOMES)}
    to_outcome = np.array([*(index.get(value, -1) for value in uniques), -1], dtype=np.int8)
    outcomes: SmallIntArray = to_outcome[codes]
    return outcomes


def _is(column: pd.Series, values: tuple[str, ...]) -> dict[str, BoolArray]:
    """Per value, where the column holds it: one factorization instead of a string comparison per value."""
    codes, uniques = pd.factorize(column.to_numpy(dtype=object), size_hint=FEW)
    found = list(uniques)
    return {
        value: codes == found.index(value) if value in found else np.zeros(len(codes), dtype=bool) for value in values
    }
