"""The configuration of a CSV survey export (docs/csv.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import field_validator, model_validator

from itsm_exporter.source_config import SourceBase


class CsvSource(SourceBase):
    kind: Literal["csv"]
    path: Path
    ticket_source: str | None = None
    """Name of the source whose tickets the surveys are about; their labels and source follow it."""
    ticket_column: str = "ticket"
    submitted_column: str = "submitted_at"
    id_column: str | None = None
    comment_column: str | None = None
    """The column of the respondent's free-text comment: only whether a cell is filled is kept (never its text)."""
    timezone: str = "UTC"
    """Zone of submitted times that carry no offset."""
    scale_min: float = 1
    scale_max: float = 5

    @model_validator(mode="after")
    def _scale(self) -> CsvSource:
        if self.scale_max <= self.scale_min:
            raise ValueError("scale_max must be greater than scale_min")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone such as Europe/Paris") from None
        return value

    def referenced_sources(self) -> dict[str, str]:
        return {} if self.ticket_source is None else {"ticket_source": self.ticket_source}
