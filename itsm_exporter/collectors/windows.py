"""Evaluation windows: a ticket event counts in a window when it happened in (as_of - window, as_of]."""

from __future__ import annotations

from dataclasses import dataclass

from itsm_exporter.collectors.arrays import BoolArray, FloatArray
from itsm_exporter.config import YEAR, Config, Trends


@dataclass(frozen=True)
class Window:
    """One configured window: its label value as written in config and its length."""

    name: str
    seconds: float

    def contains(self, times: FloatArray, as_of: float) -> BoolArray:
        """Events in (as_of - window, as_of]; NaN (unset) never counts, nor anything after as_of."""
        result: BoolArray = (times > as_of - self.seconds) & (times <= as_of)
        return result


def configured_windows(config: Config) -> tuple[Window, ...]:
    return tuple(Window(str(window), window.seconds) for window in config.windows)


def longest(windows: tuple[Window, ...]) -> Window:
    return max(windows, key=lambda window: window.seconds)


@dataclass(frozen=True)
class Period:
    """An earlier period every window is compared with (the `period` label): the same window ending `back`
    seconds before as_of, or one window length before it when `back` is None."""

    name: str
    back: float | None

    def end(self, window: Window, as_of: float) -> float:
        return as_of - (window.seconds if self.back is None else self.back)


PREVIOUS = Period("previous", None)
"""The period of the same length just before the window: (as_of - 2 x window, as_of - window]."""
YEAR_AGO = Period("year_ago", YEAR.total_seconds())
"""The same window 365 days earlier."""


def earlier_periods(trends: Trends) -> tuple[Period, ...]:
    """The earlier periods `trends` turns on, in the order their samples are exposed."""
    return tuple(period for period, on in ((PREVIOUS, trends.previous_period), (YEAR_AGO, trends.year_over_year)) if on)
