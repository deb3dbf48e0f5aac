"""Connectors: one upstream each, returning canonical records; nothing here knows Prometheus.

Each subpackage is one source kind (its config model, connector, client and discover probe) and
registers itself in the kind registry (itsm_exporter/kinds.py) when it is imported: adding an
upstream is a new package here and its name in the import below (docs/architecture.md, "Add a
source kind").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

# The built-in kinds register themselves on import, in this order: the order config errors list them in.
# isort: off
from itsm_exporter.connectors import demo  # noqa: F401
from itsm_exporter.connectors import csv  # noqa: F401
from itsm_exporter.connectors import servicenow  # noqa: F401
from itsm_exporter.connectors import jira  # noqa: F401
from itsm_exporter.connectors import zendesk  # noqa: F401

# isort: on
from itsm_exporter.connectors.base import (
    AuthError,
    BadRequest,
    Connector,
    ConnectorError,
    RateLimited,
    RequestObserver,
    SchemaError,
    UpstreamUnavailable,
    ignore_request,
)
from itsm_exporter.kinds import kind_of
from itsm_exporter.source_config import SourceBase

__all__ = [
    "AuthError",
    "BadRequest",
    "Connector",
    "ConnectorError",
    "RateLimited",
    "RequestObserver",
    "SchemaError",
    "UpstreamUnavailable",
    "build_connector",
]


def build_connector(
    source: SourceBase,
    *,
    observe_request: RequestObserver = ignore_request,
    now: Callable[[], datetime] | None = None,
) -> Connector:
    """The connector for one configured source, built by its kind (which imports its client lazily).

    `now` pins the demo generator's clock (one-shot runs at --as-of); real upstreams ignore it.
    """
    return kind_of(source).build(source, observe_request=observe_request, now=now)
