"""The configuration of a Zendesk Support source (docs/zendesk.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Final, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from itsm_exporter.source_config import SourceBase, TlsMixin

Priority = Literal["p1", "p2", "p3", "p4", "p5"]
SlaMetric = Literal[
    "first_reply_time",
    "next_reply_time",
    "periodic_update_time",
    "pausable_update_time",
    "requester_wait_time",
    "agent_work_time",
    "total_resolution_time",
]
"""The metrics an SLA policy can target (docs/api-notes.md, Zendesk SLA policies)."""

SlaGoal = Literal["response", "resolution"]


def default_sla_metrics() -> dict[SlaGoal, list[SlaMetric]]:
    """First reply time is the response SLA; the resolution SLA is whichever resolution metric a policy applies."""
    return {
        "response": ["first_reply_time"],
        "resolution": ["total_resolution_time", "requester_wait_time", "agent_work_time"],
    }


COMPLAINT_FIELDS: Final = ("tags", "type")
"""Ticket fields a complaint can be read from besides a custom field (given by its numeric id)."""
SEGMENT_FIELDS: Final = ("organization", "brand")
"""Ticket fields a segment can be read from besides a custom field (its numeric id): the requester's organization
and the brand, both named through the export's sideloads, in the same request as the tickets."""


class ZendeskSource(TlsMixin, SourceBase):
    kind: Literal["zendesk"]
    url_example: ClassVar[str] = "https://acme.zendesk.com"
    url_credentials: ClassVar[str] = "email and token (or token_file), or oauth_token"
    # `url` (TlsMixin) is the account's address, https://acme.zendesk.com; a host mapped to the account works too.
    email: str | None = None
    """The agent whose API token is `token`: Zendesk's Basic user is `{email}/token`."""
    token: SecretStr | None = None
    token_file: Path | None = None
    oauth_token: SecretStr | None = None
    """An OAuth access token (Bearer), instead of an API token."""
    oauth_token_file: Path | None = None
    service_field: str = "brand"
    """Where the service label comes from: `brand`, a custom ticket field's numeric id, or `none`."""
    priority_map: dict[str, Priority] = Field(default_factory=dict)
    """Zendesk priorities (urgent, high, normal, low) to p1..p5, over the defaults (urgent p1 .. low p4)."""
    sla_metrics: dict[SlaGoal, list[SlaMetric]] = Field(default_factory=default_sla_metrics)
    """The SLA policy metrics read as the response and the resolution SLA, the first applied one of each list."""
    satisfaction: bool = True
    """Read the CSAT ratings (/api/v2/satisfaction_ratings); off: tickets only."""
    page_size: int = Field(1000, ge=1, le=1000)
    """Tickets per page of the incremental export (`per_page`, at most 1000)."""
    export_requests_per_minute: int = Field(10, ge=1, le=100)
    """Requests a minute the connector allows itself on the incremental export endpoints (Zendesk allows 10, or
    30 with the High Volume API add-on); a 429 and its Retry-After are honoured beyond that."""

    @field_validator("service_field")
    @classmethod
    def _service_field(cls, value: str) -> str:
        if value not in ("brand", "none") and not value.isdigit():
            raise ValueError("service_field is brand, none, or the numeric id of a custom ticket field")
        return value

    @field_validator("complaints", mode="before")
    @classmethod
    def _field_ids_as_text(cls, value: Any) -> Any:
        """A custom field's id written bare in YAML (`360077: [...]`, as discover suggests it) is a number there."""
        if isinstance(value, dict):
            return {str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v for k, v in value.items()}
        return value

    @field_validator("segments", mode="before")
    @classmethod
    def _segment_ids_as_text(cls, value: Any) -> Any:
        """A segment's custom field id written bare in YAML (`tier: 360088`) is a number there."""
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value

    @field_validator("segments")
    @classmethod
    def _segment_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for label, field in value.items():
            if field not in SEGMENT_FIELDS and not field.isdigit():
                # The value is not quoted: a secret pasted into the wrong key must not reach a log.
                raise ValueError(
                    f"segment {label}: its field is not organization, brand or the numeric id of a custom ticket field"
                )
        return value

    @field_validator("complaints")
    @classmethod
    def _complaint_fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name in value:
            if name not in COMPLAINT_FIELDS and not name.isdigit():
                raise ValueError(
                    f"complaints field {name!r} is not tags, type or the numeric id of a custom ticket field"
                )
        return value

    @field_validator("sla_metrics")
    @classmethod
    def _sla_metrics(cls, value: dict[SlaGoal, list[SlaMetric]]) -> dict[SlaGoal, list[SlaMetric]]:
        for goal, metrics in value.items():
            if not metrics:
                raise ValueError(f"sla_metrics.{goal} names no metric")
        return value

    @model_validator(mode="after")
    def _auth(self) -> ZendeskSource:
        secrets = [
            n for n in ("token", "token_file", "oauth_token", "oauth_token_file") if getattr(self, n) is not None
        ]
        if not secrets:
            raise ValueError("token, token_file, oauth_token or oauth_token_file is required")
        if len(secrets) > 1:
            raise ValueError(f"set only one of {', '.join(secrets)}")
        if secrets[0].startswith("token") and not self.email:
            raise ValueError("an API token needs the email of its agent (email)")
        if secrets[0].startswith("oauth") and self.email:
            raise ValueError("email is for an API token: an OAuth token names its user itself")
        return self
