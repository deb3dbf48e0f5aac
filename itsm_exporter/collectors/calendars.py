"""Business hours as a Clock: each calendar expanded into UTC working intervals, each ticket on its calendar.

A calendar (calendar_config.Calendar) becomes, over the span the facts hold, sorted disjoint UTC intervals
and the working seconds before each. F(t), the working seconds up to t, is one searchsorted; a duration is
F(end) - F(start), for a million pairs at once. Daylight saving time comes from zoneinfo: the local working
spans are mapped to UTC piece by piece between the zone's offset changes, so a spring-forward night is an
hour shorter, a fall-back one an hour longer, and a span ending inside a repeated hour counts it twice, as
the clock on the wall does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pandas as pd
from prometheus_client.core import Metric

from itsm_exporter.calendar_config import Calendar
from itsm_exporter.collectors.arrays import FEW, BoolArray, FloatArray, IntArray
from itsm_exporter.collectors.facts import TicketFacts
from itsm_exporter.collectors.families import FamilyBuilder, Part
from itsm_exporter.config import Config

BUSINESS_NOTE: Final = (
    "In business time: only the working hours of the ticket's calendar (calendars:) count; tickets without a "
    "calendar are not counted."
)
"""How the HELP text of every business-time family ends."""
DAY: Final = 86400
_EPOCH_DAY: Final = date(1970, 1, 1).toordinal()
_PROBE: Final = 6 * 3600
"""Offsets are probed every 6 hours and each change is bisected to the second: tzdata's changes are days apart."""


@dataclass(frozen=True)
class WorkingTime:
    """One calendar's working intervals in UTC epoch seconds, sorted and disjoint, with the working seconds
    before each; instants outside the expanded span count as its edges."""

    starts: FloatArray
    ends: FloatArray
    before: FloatArray
    origin: float
    """The UTC midnight at or before the first start: day 0 of `first_of_day`."""
    first_of_day: IntArray
    """Per UTC day from `origin`: the first interval starting on or after it (the number of intervals past the
    last start's day)."""
    per_day: int
    """The most intervals starting within one UTC day."""

    @classmethod
    def of(cls, starts: FloatArray, ends: FloatArray) -> WorkingTime:
        lengths = ends - starts
        before = np.concatenate([[0.0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
        origin = float(np.floor(starts[0] / DAY) * DAY) if len(starts) else 0.0
        days = int((starts[-1] - origin) // DAY) + 2 if len(starts) else 1
        first_of_day = np.searchsorted(starts, origin + np.arange(days) * float(DAY), side="left").astype(np.int64)
        per_day = int(np.diff(first_of_day).max()) if days > 1 else 0
        return cls(starts, ends, before, origin, first_of_day, per_day)

    def worked(self, t: FloatArray) -> FloatArray:
        """F(t): working seconds from the start of the span to each t."""
        if not len(self.starts):
            return np.zeros(len(t))
        index = self._last_started(t)
        started = index >= 0
        index[~started] = 0
        into = np.minimum(t - self.starts[index], self.ends[index] - self.starts[index])
        worked: FloatArray = np.where(started, self.before[index] + into, 0.0)
        return worked

    def _last_started(self, t: FloatArray) -> IntArray:
        """The last interval starting at or before each t, -1 before the first: the day's first interval, then at
        most `per_day` vectorized steps. A binary search over a year of intervals (numpy.searchsorted) costs
        2.7 times as much on random instants, a mispredicted branch per step (bench/calendars.py)."""
        day = np.clip((t - self.origin) // DAY, 0, len(self.first_of_day) - 1).astype(np.int64)
        first = self.first_of_day[day]
        index = first - 1
        last = len(self.starts) - 1
        for step in range(self.per_day):
            candidate = first + step
            index = np.where((candidate <= last) & (self.starts[np.minimum(candidate, last)] <= t), candidate, index)
        return index


def working_time(calendar: Calendar, first: float, last: float) -> WorkingTime:
    """The working intervals of `calendar` covering the instants from `first` to `last` (epoch seconds)."""
    zone = ZoneInfo(calendar.timezone)
    # Local days from the one before `first` (its span may run past midnight) to the one after `last`.
    day0 = _local_day(first, zone) - 1
    days = np.arange(day0, _local_day(last, zone) + 2, dtype=np.int64)
    working_days = days[~np.isin(days, _holidays(calendar, int(days[0]), int(days[-1])))]
    weekday = (working_days + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    starts, ends = [], []
    for span in calendar.spans:
        on = working_days[weekday == span.weekday] * DAY
        starts.append(on + span.start * 60)
        ends.append(on + span.end * 60)
    local_starts = np.concatenate(starts).astype(np.float64)
    local_ends = np.concatenate(ends).astype(np.float64)
    order = np.argsort(local_starts, kind="stable")
    local_starts, local_ends = local_starts[order], local_ends[order]
    # Between two offset changes local time is UTC + offset: map the local intervals of each piece back.
    utc_starts, utc_ends = [], []
    for piece_start, piece_end, offset in _pieces(zone, int(days[0]) * DAY - DAY, int(days[-1]) * DAY + 2 * DAY):
        low, high = piece_start + offset, piece_end + offset
        take = slice(np.searchsorted(local_ends, low, side="right"), np.searchsorted(local_starts, high, side="left"))
        utc_starts.append(np.maximum(local_starts[take], low) - offset)
        utc_ends.append(np.minimum(local_ends[take], high) - offset)
    all_starts, all_ends = np.concatenate(utc_starts), np.concatenate(utc_ends)
    kept = all_ends > all_starts
    all_starts, all_ends = all_starts[kept], all_ends[kept]
    return WorkingTime.of(all_starts, all_ends)


def _local_day(instant: float, zone: ZoneInfo) -> int:
    """Days since 1970-01-01 of the local date at `instant`."""
    return datetime.fromtimestamp(instant, zone).date().toordinal() - _EPOCH_DAY


def _holidays(calendar: Calendar, first_day: int, last_day: int) -> IntArray:
    """The calendar's closed days between two local days (days since 1970-01-01), from its dates and its country."""
    closed = {day.toordinal() - _EPOCH_DAY for day in calendar.holidays.dates}
    if calendar.holidays.country is not None:
        years = range(_date(first_day).year, _date(last_day).year + 1)
        public = holidays.country_holidays(calendar.holidays.country, subdiv=calendar.holidays.subdivision, years=years)
        closed.update(day.toordinal() - _EPOCH_DAY for day in public)
    return np.fromiter(sorted(closed), dtype=np.int64, count=len(closed))


def _date(day: int) -> date:
    return date.fromordinal(day + _EPOCH_DAY)


def _offset(zone: ZoneInfo, instant: int) -> int:
    offset = datetime.fromtimestamp(instant, UTC).astimezone(zone).utcoffset() or timedelta(0)
    return int(offset.total_seconds())


def _pieces(zone: ZoneInfo, first: int, last: int) -> list[tuple[int, int, int]]:
    """(from, to, offset) in UTC seconds: the stretches of [first, last) over which the zone keeps one offset."""
    pieces = []
    start, offset = first, _offset(zone, first)
    for probe in range(first + _PROBE, last + _PROBE, _PROBE):
        probe = min(probe, last)
        if (probed := _offset(zone, probe)) == offset:
            continue
        low, high = probe - _PROBE, probe  # the change is in (low, high]: bisect to the second
        while high - low > 1:
            middle = (low + high) // 2
            low, high = (middle, high) if _offset(zone, middle) == offset else (low, middle)
        pieces.append((start, high, offset))
        start, offset = high, probed
    pieces.append((start, last, offset))
    return pieces


@dataclass(frozen=True)
class BusinessClock:
    """Counts only the working seconds of each ticket's calendar: NaN (no observation) for a ticket without one."""

    calendars: tuple[WorkingTime, ...]
    calendar_of: IntArray
    """Per row of the ticket facts: its index into `calendars`, -1 when no calendar applies."""

    def elapsed(self, start: FloatArray, end: FloatArray, rows: IntArray) -> FloatArray:
        which = self.calendar_of[rows]
        seconds = np.full(len(rows), np.nan)
        for index, working in enumerate(self.calendars):
            mine = which == index
            seconds[mine] = working.worked(end[mine]) - working.worked(start[mine])
        return seconds


@dataclass(frozen=True)
class TicketCalendars:
    """Which calendar each ticket runs on: the names of the calendars in use and an index per ticket row."""

    names: tuple[str, ...]
    of_ticket: IntArray
    """Index into `names` per row of the ticket facts, -1 for none."""

    @property
    def any(self) -> bool:
        return bool(self.names)


def ticket_calendars(facts: TicketFacts, names: tuple[str, ...], config: Config) -> TicketCalendars:
    """The calendar of each ticket: its group's (`calendar_by_group`), else its source's, else the top-level one."""
    sources = [config.source(name) for name in names]
    defaults = [config.calendar_of(source) for source in sources]
    in_use = tuple(sorted({*(d for d in defaults if d), *(c for s in sources for c in s.calendar_by_group.values())}))
    index = {name: position for position, name in enumerate(in_use)}
    default = np.array([-1 if name is None else index[name] for name in defaults], dtype=np.int64)
    of_ticket = default[facts.source]
    if any(source.calendar_by_group for source in sources):
        codes, groups = pd.factorize(facts.frame["group"].to_numpy(dtype=object), size_hint=FEW)
        position = {group: code for code, group in enumerate(groups)}
        # One row per source, one column per group value and a last one for tickets without a group (code -1).
        by_group = np.full((len(sources), len(groups) + 1), -1, dtype=np.int64)
        for row, source in enumerate(sources):
            for group, calendar in source.calendar_by_group.items():
                if group in position:
                    by_group[row, position[group]] = index[calendar]
        chosen = by_group[facts.source, codes]
        of_ticket = np.where(chosen >= 0, chosen, of_ticket)
    return TicketCalendars(names=in_use, of_ticket=of_ticket)


def business_clock(facts: TicketFacts, calendars: TicketCalendars, config: Config, as_of: float) -> BusinessClock:
    """The clock of the calendars in use, expanded over every instant of the tickets that have one and as_of."""
    on_calendar = calendars.of_ticket >= 0
    instants = [facts.opened[on_calendar], facts.first_response[on_calendar], facts.resolved[on_calendar]]
    finite = [times[np.isfinite(times)] for times in instants]
    first = min([as_of, *(float(times.min()) for times in finite if len(times))])
    last = max([as_of, *(float(times.max()) for times in finite if len(times))])
    expanded = tuple(working_time(config.calendars[name], first, last) for name in calendars.names)
    return BusinessClock(calendars=expanded, calendar_of=calendars.of_ticket)


def calendar_family(build: FamilyBuilder, calendars: TicketCalendars, groups: IntArray, present: BoolArray) -> Metric:
    """itsm_calendar_info: 1 per label set and the calendar its tickets' business-time durations are measured on
    (several only where a label set mixes groups of different calendars: `group` is not in group_by)."""
    on_calendar = calendars.of_ticket >= 0
    width, n_groups = len(calendars.names), len(present)
    # A (label set, calendar) pair per ticket and view: with segment views (labels.py) one column per view.
    selected, codes = groups[on_calendar], calendars.of_ticket[on_calendar]
    keys = selected * width + (codes[:, np.newaxis] if selected.ndim > 1 else codes)
    used = np.bincount(keys.ravel(), minlength=n_groups * width).reshape(n_groups, width)
    shown = (used > 0) & present[:, np.newaxis]
    ones = np.ones(n_groups)
    parts = [Part((name,), [ones], [shown[:, index]]) for index, name in enumerate(calendars.names)]
    return build.state_gauge(
        "itsm_calendar_info",
        "1 per label set and the business-hours calendar (calendars:) its business-time families are measured on.",
        parts,
        ("calendar",),
    )
