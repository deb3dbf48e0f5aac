"""Zendesk Support: tickets with their SLA states, and CSAT ratings (docs/zendesk.md).

Registers the `zendesk` source kind. Its client is imported only when a connector is built.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from itsm_exporter.connectors.base import RequestObserver
from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.connectors.zendesk.links import ZendeskLinks
from itsm_exporter.connectors.zendesk.mapping import CSAT_QUESTION_ID
from itsm_exporter.kinds import Capabilities, SourceKind, register

if TYPE_CHECKING:
    from itsm_exporter.connectors.base import Connector
    from itsm_exporter.connectors.probe import Probe

OVERLAP: Final = timedelta(minutes=1)
"""Re-read behind the watermark. Tickets need none (the export is inclusive of start_time and holds the last
minute back until it is settled, and later syncs go on from the stored cursor); the ratings list has no such
hold-back, so a rating committed late with an earlier updated_at is read on the next sync."""


def _build(source: ZendeskSource, *, observe_request: RequestObserver, now: Callable[[], datetime] | None) -> Connector:
    from itsm_exporter.connectors.zendesk.connector import ZendeskConnector

    return ZendeskConnector(source, observe_request=observe_request)


def _capabilities(source: ZendeskSource) -> Capabilities:
    return Capabilities(
        overlap=OVERLAP,
        bounded_backfill=True,
        # Deleted tickets come in the export itself: there is nothing left to reconcile.
        reconcile_interval=None,
        live_state=True,
        implicit_overall=CSAT_QUESTION_ID,
    )


def _probe(source: ZendeskSource, probe: Probe) -> None:
    from itsm_exporter.connectors.zendesk.probe import discover

    discover(source, probe)


KIND = register(
    SourceKind(
        name="zendesk",
        config=ZendeskSource,
        build=_build,
        capabilities=_capabilities,
        secret_files=("token_file", "oauth_token_file"),
        probe=_probe,
        page="docs/zendesk.md",
        links=ZendeskLinks(),
    )
)
