"""Every published duration, measured on one clock: the only place a duration is computed.

Which instants a duration runs between is written once here (first response and resolution from
the opening, ages from the opening to as_of, time to breach from as_of to the breach time), and one
clock measures them all. `compute_metrics` measures every duration on the wall clock, and where a
business-hours calendar applies (collectors/calendars.py `BusinessClock`) the first responses,
resolutions and ages once more on it; no other code measures a duration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, IntArray
from itsm_exporter.collectors.facts import TicketFacts


class Clock(Protocol):
    """Measures how long it is from each start to its end."""

    def elapsed(self, start: FloatArray, end: FloatArray, rows: IntArray) -> FloatArray:
        """Seconds from `start[i]` to `end[i]` (epoch seconds, all finite); `rows[i]` is the row in the
        ticket facts of the ticket the pair belongs to, so a clock can pick each ticket's calendar.
        May be negative when an end comes before its start; NaN where the clock does not measure that
        ticket (no calendar applies to it), which makes no observation."""
        ...


@dataclass(frozen=True)
class WallClock:
    """Every second counts: end - start."""

    def elapsed(self, start: FloatArray, end: FloatArray, rows: IntArray) -> FloatArray:
        seconds: FloatArray = end - start
        return seconds


WALL_CLOCK = WallClock()


@dataclass(frozen=True)
class Elapsed:
    """Observations of one duration: `seconds[i]` belongs to row `rows[i]` of what was selected from."""

    rows: IntArray
    seconds: FloatArray


@dataclass(frozen=True)
class Durations:
    """The durations of the tickets in `facts` at `as_of`, on `clock`.

    Each method measures the rows of `selected` only: a window selects a fraction of a million tickets,
    and a duration per ticket would be 8 MB per histogram.
    """

    facts: TicketFacts
    clock: Clock
    as_of: float

    def first_response(self, selected: BoolArray) -> Elapsed:
        """Opened -> first response."""
        rows = np.flatnonzero(selected)
        return self._measure(rows, rows, self.facts.opened[rows], self.facts.first_response[rows])

    def resolution(self, selected: BoolArray) -> Elapsed:
        """Opened -> resolved, of tickets and of complaints alike."""
        rows = np.flatnonzero(selected)
        return self._measure(rows, rows, self.facts.opened[rows], self.facts.resolved[rows])

    def age(self, selected: BoolArray) -> Elapsed:
        """Opened -> as_of: the age of the backlog and of the tickets awaiting a first response."""
        rows = np.flatnonzero(selected)
        return self._measure(rows, rows, self.facts.opened[rows], np.full(len(rows), self.as_of))

    def time_to_breach(self, breach_at: FloatArray, ticket_rows: IntArray, selected: BoolArray) -> Elapsed:
        """as_of -> breach time of SLA clocks; `ticket_rows` gives each clock's ticket, `selected` picks clocks."""
        rows = np.flatnonzero(selected)
        return self._measure(rows, ticket_rows[rows], np.full(len(rows), self.as_of), breach_at[rows])

    def _measure(self, rows: IntArray, ticket_rows: IntArray, start: FloatArray, end: FloatArray) -> Elapsed:
        """The one call of the clock. A pair with an unknown instant, or that the clock does not measure, is no
        observation; a negative duration (bad upstream data: a response logged before the opening) counts as 0."""
        known = np.isfinite(start) & np.isfinite(end)
        rows = rows[known]
        seconds = self.clock.elapsed(start[known], end[known], ticket_rows[known])
        measured = ~np.isnan(seconds)
        if not measured.all():
            rows, seconds = rows[measured], seconds[measured]
        return Elapsed(rows=rows, seconds=np.maximum(seconds, 0.0))
