"""Connectors: one upstream each, returning canonical records; nothing here knows Prometheus."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from itsm_exporter.config import Config, CsvSource, DemoSource, JiraSource, ServiceNowSource
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
    source: DemoSource | CsvSource | ServiceNowSource | JiraSource,
    config: Config,
    *,
    observe_request: RequestObserver = ignore_request,
    now: Callable[[], datetime] | None = None,
) -> Connector:
    """The connector for one configured source (imports are lazy: each pulls its own client).

    `now` pins the demo generator's clock (one-shot runs at --as-of); real upstreams ignore it.
    """
    if isinstance(source, DemoSource):
        from itsm_exporter.connectors.demo import DemoConnector

        return DemoConnector(source, now=now, observe_request=observe_request)
    if isinstance(source, CsvSource):
        from itsm_exporter.connectors.csv_surveys import CsvSurveyConnector

        return CsvSurveyConnector(source)
    if isinstance(source, ServiceNowSource):
        from itsm_exporter.connectors.servicenow import ServiceNowConnector

        return ServiceNowConnector(source, observe_request=observe_request)
    if isinstance(source, JiraSource):
        from itsm_exporter.connectors.jira_sm import JiraConnector

        return JiraConnector(source, observe_request=observe_request)
    raise TypeError(f"no connector for {type(source).__name__}")
