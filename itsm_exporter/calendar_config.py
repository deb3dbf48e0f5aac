"""Business-hours calendars (`calendars:`): a time zone, working spans per weekday and holidays, validated by path.

This module says what a calendar is and refuses a wrong one; the collectors turn a calendar into UTC working
intervals (collectors/calendars.py), and config.py checks that every `calendar:` names one of them.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Annotated, Final

from pydantic import AfterValidator, Field, ValidationInfo, field_validator

from itsm_exporter.source_config import Strict

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_MINUTES: Final = 24 * 60
WEEK_MINUTES: Final = 7 * DAY_MINUTES

_SPAN = re.compile(r"^(\d\d):(\d\d)-(\d\d):(\d\d)$")


def _minutes(hours: str, minutes: str, *, end: bool) -> int:
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > DAY_MINUTES or (value == DAY_MINUTES and not end):
        raise ValueError("not a span such as 09:00-17:00 (24:00 may only end a span)")
    return value


def parse_span(text: str) -> tuple[int, int]:
    """(start, end) in minutes from the day's midnight; an end at or before the start is on the next day."""
    match = _SPAN.match(text)
    if not match:
        raise ValueError("not a span such as 09:00-17:00 (22:00-06:00 crosses midnight)")
    start = _minutes(match.group(1), match.group(2), end=False)
    end = _minutes(match.group(3), match.group(4), end=True)
    if end == start:
        raise ValueError("an empty span: write 00:00-24:00 for a whole day")
    return start, end if end > start else end + DAY_MINUTES


def _span_text(text: str) -> str:
    parse_span(text)
    return text


SpanText = Annotated[str, AfterValidator(_span_text)]


def _days(key: str) -> list[int]:
    """Weekday numbers (0 = Monday) of a key of `hours`: a day (`mon`) or a range of days (`mon-fri`, `fri-mon`)."""
    first, sep, last = key.partition("-")
    if first not in WEEKDAYS or (sep and last not in WEEKDAYS):
        raise ValueError(f"{key!r} is not a day or a range of days such as mon or mon-fri")
    start = WEEKDAYS.index(first)
    stop = WEEKDAYS.index(last) if sep else start
    return [(start + offset) % 7 for offset in range((stop - start) % 7 + 1)]


@dataclass(frozen=True)
class Span:
    """One weekly working span: from `start` to `end` minutes after the midnight that starts `weekday`
    (0 = Monday); `end` is past 1440 when the span crosses midnight. It belongs to the day it starts on:
    a holiday on that day removes all of it."""

    weekday: int
    start: int
    end: int

    def __str__(self) -> str:
        end = self.end % DAY_MINUTES if self.end != DAY_MINUTES else DAY_MINUTES
        return f"{WEEKDAYS[self.weekday]} {_clock(self.start)}-{_clock(end)}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@cache
def _countries() -> dict[str, list[str]]:
    """Country code -> subdivision codes the holidays package resolves (imported only when holidays are used)."""
    import holidays

    return dict(holidays.list_supported_countries())


class Holidays(Strict):
    """Days the desk is closed: explicit dates, and/or a country's public holidays (with a subdivision's)."""

    country: str | None = None
    """ISO 3166-1 alpha-2 code, resolved with the holidays package."""
    subdivision: str | None = None
    """A state, province or region code of `country` (ISO 3166-2 without the country prefix: BY, CA, NSW)."""
    dates: list[date] = Field(default_factory=list)
    """Local dates in the calendar's time zone (a company shutdown, a bridge day)."""

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is not None and value not in _countries():
            raise ValueError(f"{value!r} is not a country the holidays package knows (ISO 3166-1 alpha-2, e.g. DE)")
        return value

    @field_validator("subdivision")
    @classmethod
    def _subdivision(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or "country" not in info.data:  # a wrong country is reported at its own path
            return value
        country = info.data["country"]
        if country is None:
            raise ValueError("a subdivision needs its country")
        known = _countries()[country]
        if value not in known:
            raise ValueError(f"{value!r} is not a subdivision of {country}: one of {', '.join(known) or 'none'}")
        return value


class Calendar(Strict):
    """When a desk works: its time zone, its weekly working spans and its holidays."""

    timezone: str
    """An IANA zone (Europe/Berlin); daylight saving time follows from it."""
    hours: dict[str, list[SpanText]]
    """Day (`mon`) or range of days (`mon-fri`) -> working spans (`09:00-12:00`, `22:00-06:00`)."""
    holidays: Holidays = Field(default_factory=Holidays)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Berlin or UTC") from None
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        named: dict[int, str] = {}
        for key in value:
            for day in _days(key):
                if day in named:
                    raise ValueError(f"{WEEKDAYS[day]} is given twice: in {named[day]} and in {key}")
                named[day] = key
        spans = _spans(value)
        if not spans:
            raise ValueError("no working span in the week")
        _check_overlaps(spans)
        return value

    @property
    def spans(self) -> tuple[Span, ...]:
        """Every weekly working span, by weekday and start."""
        return _spans(self.hours)


def _spans(hours: dict[str, list[str]]) -> tuple[Span, ...]:
    spans = [Span(day, *parse_span(text)) for key, texts in hours.items() for day in _days(key) for text in texts]
    return tuple(sorted(spans, key=lambda span: (span.weekday, span.start)))


def _check_overlaps(spans: tuple[Span, ...]) -> None:
    """Refuse two spans sharing a minute, on the week's circle (Sunday night runs into Monday); touching is fine.

    A span lasts at most a day, so a span overlapping any other overlaps the one starting next."""
    ordered = sorted(spans, key=lambda span: span.weekday * DAY_MINUTES + span.start)
    starts = [span.weekday * DAY_MINUTES + span.start for span in ordered]
    for index, span in enumerate(ordered if len(ordered) > 1 else ()):
        following = (index + 1) % len(ordered)
        next_start = starts[following] + (WEEK_MINUTES if following == 0 else 0)
        if starts[index] + span.end - span.start > next_start:
            raise ValueError(f"{span} overlaps {ordered[following]}")
