"""ServiceNow: incidents, their SLAs and assessment surveys through the Table API (docs/servicenow.md).

Registers the `servicenow` source kind. The client (pysnow) is imported only when a connector is built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from itsm_exporter.connectors.base import RequestObserver
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.links import ServiceNowLinks
from itsm_exporter.kinds import Capabilities, SourceKind, register

if TYPE_CHECKING:
    from itsm_exporter.connectors.base import Connector
    from itsm_exporter.connectors.probe import Probe


def _build(
    source: ServiceNowSource, *, observe_request: RequestObserver, now: Callable[[], datetime] | None
) -> Connector:
    from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector

    return ServiceNowConnector(source, observe_request=observe_request)


def _capabilities(source: ServiceNowSource) -> Capabilities:
    return Capabilities(
        overlap=source.overlap.delta,
        bounded_backfill=True,
        reconcile_interval=None if source.reconcile_interval is None else source.reconcile_interval.delta,
        # made_sla is one outcome per incident: no first response and no running clock to show.
        live_state=source.sla_source == "task_sla",
    )


def _probe(source: ServiceNowSource, probe: Probe) -> None:
    from itsm_exporter.connectors.servicenow.probe import discover

    discover(source, probe)


KIND = register(
    SourceKind(
        links=ServiceNowLinks(),
        name="servicenow",
        config=ServiceNowSource,
        build=_build,
        capabilities=_capabilities,
        secret_files=("password_file", "client_secret_file"),
        probe=_probe,
        page="docs/servicenow.md",
    )
)
