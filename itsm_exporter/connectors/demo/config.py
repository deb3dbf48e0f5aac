"""The configuration of the built-in demo source."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from itsm_exporter.source_config import SourceBase


class DemoSource(SourceBase):
    kind: Literal["demo"]
    seed: int = 42
    days: int = Field(90, ge=1, le=3650)
    tickets_per_day: int = Field(60, ge=1, le=100_000)
