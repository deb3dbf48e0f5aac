"""The built-in demo service desk with a planted watermelon: `itsm-exporter demo`, no account needed.

Registers the `demo` source kind, and the source block the `demo` command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from itsm_exporter.connectors.base import RequestObserver
from itsm_exporter.connectors.demo.config import DemoSource
from itsm_exporter.connectors.demo.connector import (
    DEMO_CALENDAR_KEYS,
    DEMO_CALENDARS,
    DEMO_COMPLAINTS,
    DEMO_SEGMENTS,
    DEMO_SURVEYS,
    DEMO_URL,
)
from itsm_exporter.connectors.demo.links import DemoLinks
from itsm_exporter.kinds import Capabilities, SourceKind, register

if TYPE_CHECKING:
    from itsm_exporter.connectors.base import Connector


def _build(source: DemoSource, *, observe_request: RequestObserver, now: Callable[[], datetime] | None) -> Connector:
    from itsm_exporter.connectors.demo.connector import DemoConnector

    return DemoConnector(source, now=now, observe_request=observe_request)


def _capabilities(_source: DemoSource) -> Capabilities:
    return Capabilities(live_state=True)  # generated whole at each sync: nothing lags, nothing is deleted


KIND = register(
    SourceKind(
        links=DemoLinks(),
        name="demo",
        config=DemoSource,
        build=_build,
        capabilities=_capabilities,
        # 400 days: the 30-day window a year back too, for the year-over-year trend the demo turns on.
        demo_source={
            "name": "demo",
            "kind": "demo",
            "days": 400,
            "surveys": DEMO_SURVEYS,
            "complaints": DEMO_COMPLAINTS,
            "segments": DEMO_SEGMENTS,
            # No upstream: a reserved name (RFC 2606) stands for the instance, so the drill-down links show their form.
            "url": DEMO_URL,
            **DEMO_CALENDAR_KEYS,
        },
        demo_calendars=DEMO_CALENDARS,
    )
)
