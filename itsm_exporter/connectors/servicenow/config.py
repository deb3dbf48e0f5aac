"""The configuration of a ServiceNow source (docs/servicenow.md)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from itsm_exporter.source_config import Duration, ReconcileMixin, SourceBase, TlsMixin


class ServiceNowSource(ReconcileMixin, TlsMixin, SourceBase):
    kind: Literal["servicenow"]
    url_example: ClassVar[str] = "https://acme.service-now.com"
    url_credentials: ClassVar[str] = "username and password (or password_file)"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    table: str = "incident"
    filter: str = ""
    """Extra encoded query ANDed to every incident request, e.g. `assignment_group.name=Service Desk`."""
    page_size: int = Field(1000, ge=1, le=10000)
    sla_source: Literal["made_sla", "task_sla"] = "made_sla"
    surveys_enabled: bool = True
    overlap: Duration = Duration("5m")
    """Re-read window behind the watermark (applied by sync/plans.py): a row committed late, or stamped by
    an app node whose clock lags, can carry a sys_updated_on a little before rows already read."""

    @model_validator(mode="after")
    def _auth(self) -> ServiceNowSource:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if self.username is None:
            raise ValueError("username is required")
        if self.password is None and self.password_file is None:
            raise ValueError("password or password_file is required")
        if (self.client_id is None) != (self.client_secret is None and self.client_secret_file is None):
            raise ValueError("OAuth needs both client_id and client_secret (or client_secret_file)")
        return self
