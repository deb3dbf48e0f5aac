"""The configuration of the built-in demo source."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from itsm_exporter.source_config import SourceBase, public_url, upstream_url


class DemoSource(SourceBase):
    kind: Literal["demo"]
    seed: int = 42
    days: int = Field(90, ge=1, le=3650)
    tickets_per_day: int = Field(60, ge=1, le=100_000)
    url: str | None = None
    """The ServiceNow instance the demo desk stands for, if any: where its drill-down links point (its fields are
    named as ServiceNow names them). Nothing is ever read from it."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else upstream_url(value, "https://acme.service-now.com", "nothing")

    def public_url(self) -> str:
        return "" if self.url is None else public_url(self.url)
