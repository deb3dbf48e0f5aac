"""The business clock (collectors/calendars.py) against a minute-by-minute reference.

The reference decides each UTC minute on its own: pandas converts it to local wall time, and the minute
works when that wall time falls in a span of a non-holiday day (a span across midnight belongs to the day
it starts on). The clock under test expands the calendar into UTC intervals with zoneinfo and answers with
F(end) - F(start); the two share nothing but the holidays package. The calendars put span edges inside the
zones' daylight-saving gaps and repeated hours: Europe/Berlin at 02:00-03:00, America/Sao_Paulo at
midnight (DST until 2019), Australia/Lord_Howe's half hour at 02:00.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cache
from zoneinfo import ZoneInfo

import holidays
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from itsm_exporter.calendar_config import Calendar
from itsm_exporter.collectors.calendars import BusinessClock, working_time

CALENDARS = {
    "Europe/Berlin": Calendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "hours": {
                "mon-thu": ["08:00-12:00", "13:00-17:30"],
                "fri": ["08:00-14:00"],
                "sat": ["22:00-02:30"],  # ends inside the spring gap and inside the autumn's repeated hour
                "sun": ["02:30-04:00"],
            },
            "holidays": {"country": "DE", "subdivision": "BY", "dates": ["2018-12-24", "2019-12-31"]},
        }
    ),
    "America/Sao_Paulo": Calendar.model_validate(
        {
            "timezone": "America/Sao_Paulo",
            "hours": {"mon-fri": ["09:00-18:00"], "sat": ["23:30-00:30"], "sun": ["00:30-02:00"]},
            "holidays": {"country": "BR", "subdivision": "SP"},
        }
    ),
    "Australia/Lord_Howe": Calendar.model_validate(
        {
            "timezone": "Australia/Lord_Howe",
            "hours": {"mon-fri": ["09:00-17:00"], "sat": ["22:00-01:45"], "sun": ["01:45-02:15", "12:00-13:00"]},
            "holidays": {"country": "AU", "subdivision": "NSW", "dates": ["2019-01-02"]},
        }
    ),
}
ZONES = tuple(CALENDARS)
FIRST = int(datetime(2017, 6, 1, tzinfo=UTC).timestamp()) // 60
"""The reference's first UTC minute: three years with DST changes in every zone (Sao Paulo's last in 2019)."""
MINUTES = int(datetime(2020, 6, 1, tzinfo=UTC).timestamp()) // 60 - FIRST


@dataclass(frozen=True)
class Reference:
    """Whether each UTC minute from FIRST works, and how many worked before it."""

    works: np.ndarray
    before: np.ndarray

    def seconds(self, start: int, end: int) -> int:
        """Working seconds from `start` to `end` (epoch seconds inside the reference's range)."""
        (first, into_first), (last, into_last) = divmod(start - FIRST * 60, 60), divmod(end - FIRST * 60, 60)
        if end <= start:
            return 0
        whole = 60 * int(self.before[last] - self.before[first])
        return whole - into_first * int(self.works[first]) + into_last * int(self.works[last])


@cache
def reference(zone_name: str) -> Reference:
    calendar = CALENDARS[zone_name]
    utc = pd.DatetimeIndex((np.arange(MINUTES + 1, dtype=np.int64) + FIRST) * 60 * 10**9, tz="UTC")
    wall = utc.tz_convert(ZoneInfo(zone_name)).tz_localize(None)
    local = ((wall - pd.Timestamp("1970-01-01")) // pd.Timedelta(minutes=1)).to_numpy()
    day, minute = np.divmod(local, 1440)
    years = range(2016, 2022)
    closed = {d.toordinal() for d in calendar.holidays.dates}
    public = holidays.country_holidays(calendar.holidays.country, subdiv=calendar.holidays.subdivision, years=years)
    closed |= {d.toordinal() for d in public}
    epoch = date(1970, 1, 1).toordinal()
    working_day = ~np.isin(day + epoch, np.fromiter(closed, dtype=np.int64))
    working_yesterday = ~np.isin(day - 1 + epoch, np.fromiter(closed, dtype=np.int64))
    weekday = (day + 3) % 7
    works = np.zeros(len(local), dtype=bool)
    for span in calendar.spans:
        works |= working_day & (weekday == span.weekday) & (span.start <= minute) & (minute < span.end)
        # The part of yesterday's span that runs past midnight.
        works |= working_yesterday & ((weekday - 1) % 7 == span.weekday) & (minute + 1440 < span.end)
    before = np.concatenate([[0], np.cumsum(works)])
    return Reference(works=works, before=before)


instants = st.integers(FIRST * 60, (FIRST + MINUTES) * 60 - 1)
lengths = st.one_of(
    st.just(0),
    st.integers(0, 3 * 3600),
    st.integers(0, 14 * 86400),
    st.integers(0, MINUTES * 60),  # multi-year
)


@st.composite
def intervals(draw: st.DrawFn) -> tuple[int, int, int]:
    """(calendar index, start, end) in epoch seconds, some of them whole minutes at the zone's DST changes."""
    start = draw(instants)
    end = min(start + draw(lengths), (FIRST + MINUTES) * 60 - 1)
    return draw(st.integers(0, len(ZONES) - 1)), start, end


@settings(max_examples=60)
@given(st.lists(intervals(), min_size=1, max_size=30))
def test_business_seconds_agree_with_the_minute_by_minute_reference(pairs: list[tuple[int, int, int]]) -> None:
    rows = np.array([which for which, _, _ in pairs], dtype=np.int64)
    start = np.array([s for _, s, _ in pairs], dtype=np.float64)
    end = np.array([e for _, _, e in pairs], dtype=np.float64)
    # Each calendar expanded over the instants of this example only, as compute_metrics expands it over the facts.
    clock = BusinessClock(
        calendars=tuple(working_time(CALENDARS[zone], float(start.min()), float(end.max())) for zone in ZONES),
        calendar_of=np.arange(len(ZONES), dtype=np.int64),
    )
    measured = clock.elapsed(start, end, rows)
    expected = [reference(ZONES[which]).seconds(s, e) for which, s, e in pairs]
    assert measured.tolist() == expected


@pytest.mark.parametrize(
    ("zone", "start", "end", "hours"),
    [
        # Spring forward (02:00 -> 03:00): Saturday's 22:00-02:30 ends at the jump, 4 hours; Sunday's 02:30-04:00
        # starts at it, 1 hour.
        ("Europe/Berlin", datetime(2019, 3, 30, 20, 0, tzinfo=UTC), datetime(2019, 3, 31, 3, 0, tzinfo=UTC), 4 + 1),
        # Fall back (03:00 -> 02:00): 22:00-02:30 summer time, then 02:00-02:30 again, 4.5 + 0.5 hours; Sunday's
        # 02:30-04:00 runs 02:30-03:00 summer time, then 02:30-04:00 again, 0.5 + 1.5 hours.
        ("Europe/Berlin", datetime(2019, 10, 26, 19, 0, tzinfo=UTC), datetime(2019, 10, 27, 4, 0, tzinfo=UTC), 5 + 2),
        # Midnight -> 01:00: Saturday's 23:30-00:30 keeps its half hour before midnight, Sunday's 00:30-02:00 runs
        # from 01:00.
        ("America/Sao_Paulo", datetime(2018, 11, 4, 2, 0, tzinfo=UTC), datetime(2018, 11, 4, 6, 0, tzinfo=UTC), 1.5),
        # Half an hour forward (02:00 -> 02:30) from 00:30: Saturday's span to 01:45 gives 1.25 hours, Sunday's
        # 01:45-02:15 only its quarter before the jump.
        ("Australia/Lord_Howe", datetime(2019, 10, 5, 14, 0, tzinfo=UTC), datetime(2019, 10, 6, 0, 0, tzinfo=UTC), 1.5),
    ],
    ids=["berlin-spring", "berlin-autumn", "sao-paulo-spring", "lord-howe-spring"],
)
def test_daylight_saving_nights(zone: str, start: datetime, end: datetime, hours: float) -> None:
    """Worked hours across a change of offset, against the reference (the comment says what the wall does)."""
    first, last = start.timestamp(), end.timestamp()
    measured = working_time(CALENDARS[zone], first, last).worked(np.array([first, last]))
    assert measured[1] - measured[0] == hours * 3600
    assert measured[1] - measured[0] == reference(zone).seconds(int(first), int(last))


def test_a_twenty_four_seven_calendar_is_the_wall_clock_across_daylight_saving() -> None:
    always = Calendar.model_validate({"timezone": "Europe/Berlin", "hours": {"mon-sun": ["00:00-24:00"]}})
    first, last = datetime(2019, 1, 1, tzinfo=UTC).timestamp(), datetime(2020, 1, 1, tzinfo=UTC).timestamp()
    worked = working_time(always, first, last).worked(np.array([first, last]))
    assert worked[1] - worked[0] == last - first


def test_tickets_without_a_calendar_are_not_measured() -> None:
    always = Calendar.model_validate({"timezone": "UTC", "hours": {"mon-sun": ["00:00-24:00"]}})
    clock = BusinessClock(calendars=(working_time(always, 0.0, 86400.0),), calendar_of=np.array([0, -1]))
    measured = clock.elapsed(np.array([0.0, 0.0]), np.array([3600.0, 3600.0]), np.array([0, 1]))
    assert measured[0] == 3600.0
    assert np.isnan(measured[1])
