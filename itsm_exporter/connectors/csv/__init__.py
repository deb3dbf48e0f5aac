"""Survey results exported as CSV from an external survey tool (docs/csv.md).

Registers the `csv` source kind: surveys only, about the tickets of another source.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from itsm_exporter.connectors.base import RequestObserver
from itsm_exporter.connectors.csv.config import CsvSource
from itsm_exporter.kinds import Capabilities, SourceKind, register

if TYPE_CHECKING:
    from itsm_exporter.connectors.base import Connector


def _build(source: CsvSource, *, observe_request: RequestObserver, now: Callable[[], datetime] | None) -> Connector:
    from itsm_exporter.connectors.csv.connector import CsvSurveyConnector

    return CsvSurveyConnector(source)


def _capabilities(_source: CsvSource) -> Capabilities:
    return Capabilities()  # a local file read whole when it changes: no overlap, backfill, deletions or clocks


KIND = register(
    SourceKind(
        name="csv",
        config=CsvSource,
        build=_build,
        capabilities=_capabilities,
        required_files=("path",),
        page="docs/csv.md",
    )
)
