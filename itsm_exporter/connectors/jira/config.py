"""The configuration of a Jira Service Management source (docs/jira.md)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from itsm_exporter.source_config import Duration, ReconcileMixin, SourceBase, TlsMixin


class JiraSource(ReconcileMixin, TlsMixin, SourceBase):
    kind: Literal["jira"]
    url_example: ClassVar[str] = "https://acme.atlassian.net"
    url_credentials: ClassVar[str] = "username and token (or token_file)"
    username: str | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    jql: str = ""
    deployment: Literal["auto", "cloud", "datacenter"] = "auto"
    group_field: str = "project"
    """Where the group label comes from: project, components, a team/custom field name, or requesttype."""
    service_field: str = "components"
    priority_map: dict[str, Literal["p1", "p2", "p3", "p4", "p5"]] = Field(default_factory=dict)
    sla_fields: dict[Literal["response", "resolution"], str] = Field(default_factory=dict)
    """SLA field names or ids; default: found by schema type, `Time to first response` / `Time to resolution`."""
    csat_feedback_endpoint: bool = False
    page_size: int = Field(100, ge=1, le=1000)
    overlap: Duration = Duration("5m")
    """Re-read window behind the watermark: Cloud search is eventually consistent (index lag)."""

    @model_validator(mode="after")
    def _auth(self) -> JiraSource:
        secrets = [n for n in ("token", "token_file", "password", "password_file") if getattr(self, n) is not None]
        if not secrets:
            raise ValueError("token, token_file, password or password_file is required")
        if len(secrets) > 1:
            raise ValueError(f"set only one of {', '.join(secrets)}")
        if self.username is None and secrets[0] in ("password", "password_file"):
            raise ValueError("password authentication needs a username")
        return self
