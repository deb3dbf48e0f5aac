"""Jira Service Management, Cloud and Data Center: issues and their CSAT ratings (docs/jira.md).

Registers the `jira` source kind. The `jira` library is imported only when a connector is built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from itsm_exporter.connectors.base import RequestObserver
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.jira.links import JiraLinks
from itsm_exporter.connectors.jira.mapping import CSAT_QUESTION_ID
from itsm_exporter.kinds import Capabilities, SourceKind, register

if TYPE_CHECKING:
    from itsm_exporter.connectors.base import Connector
    from itsm_exporter.connectors.probe import Probe


def _build(source: JiraSource, *, observe_request: RequestObserver, now: Callable[[], datetime] | None) -> Connector:
    from itsm_exporter.connectors.jira.connector import JiraConnector

    return JiraConnector(source, observe_request=observe_request)


def _capabilities(source: JiraSource) -> Capabilities:
    return Capabilities(
        overlap=source.overlap.delta,
        bounded_backfill=True,
        reconcile_interval=None if source.reconcile_interval is None else source.reconcile_interval.delta,
        live_state=True,
        implicit_overall=CSAT_QUESTION_ID,
    )


def _probe(source: JiraSource, probe: Probe) -> None:
    from itsm_exporter.connectors.jira.probe import discover

    discover(source, probe)


KIND = register(
    SourceKind(
        links=JiraLinks(),
        name="jira",
        config=JiraSource,
        build=_build,
        capabilities=_capabilities,
        secret_files=("token_file", "password_file"),
        probe=_probe,
        page="docs/jira.md",
    )
)
