"""Typed sync state: how one page moves a phase's PhaseState, the rule every plan follows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime

from itsm_exporter.connectors.base import ScanPage
from itsm_exporter.records import PhaseState

States = Mapping[tuple[str, str], PhaseState]
"""A source's committed phases by (plan, phase), as Store.sync_state returns them."""


def starting(states: States, plan: str, phase: str) -> PhaseState:
    """The state a run of `phase` starts from: the committed one with its progress reset, or a blank one."""
    before = states.get((plan, phase))
    if before is None:
        return PhaseState(plan=plan, phase=phase)
    return replace(before, done=0, total=None)


def advanced(state: PhaseState, page: ScanPage) -> PhaseState:
    """The state once `page` is stored: the watermark never goes back, a token only moves when a page sets one.

    A page read inside the overlap lies before the stored watermark; so does a re-read of a span
    whose pages shifted. Neither may move the watermark back, or the next sync would read it all again.
    """
    watermark = state.watermark
    if page.position is not None and (watermark is None or page.position > watermark):
        watermark = page.position
    return replace(
        state,
        watermark=watermark,
        token=page.token if page.token is not None else state.token,
        done=state.done + len(page.tickets) + len(page.surveys),
        total=page.total_expected if page.total_expected is not None else state.total,
    )


def completed(state: PhaseState, at: datetime) -> PhaseState:
    """The state of a phase that was read to its end at `at`."""
    return replace(state, completed_at=at)
