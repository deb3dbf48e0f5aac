"""Evaluation windows: a ticket event counts in a window when it happened in (as_of - window, as_of]."""

from __future__ import annotations

from dataclasses import dataclass

from itsm_exporter.collectors.arrays import BoolArray, FloatArray
from itsm_exporter.config import Config


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
