"""The source-kind registry: each connector package registers one SourceKind, and nothing else names a kind.

Modelled on node_exporter's collector registry: a kind registers itself when its package is imported
(connectors/__init__.py imports the built-in ones: one line each), and every other layer asks the
registry what a configured source can do (`capabilities`) instead of testing its class. Config
parsing builds its discriminated union of source models from `kinds()`; the sync plans read the
overlap, backfill and reconciliation policy; the collectors whether the source knows first responses
and running SLA clocks, and which question plays `overall` without a mapping; `discover` runs the
kind's probe; `demo` runs the kinds that offer a demo source.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from itsm_exporter.source_config import SourceBase

if TYPE_CHECKING:
    from itsm_exporter.connectors.base import Connector, RequestObserver
    from itsm_exporter.connectors.links import ListLinks
    from itsm_exporter.connectors.probe import Probe


@dataclass(frozen=True)
class Capabilities:
    """What a configured source's upstream offers, as the layers above the connectors need to know it."""

    overlap: timedelta = timedelta(0)
    """How far behind its watermark the incremental plan re-reads (an upstream whose update times can lag)."""
    bounded_backfill: bool = False
    """A first sync can be bounded by `history`: scans from a time, the open backlog (OpenBacklog), tickets
    by id (RecordLookup). Without it a first sync reads everything the source holds."""
    reconcile_interval: timedelta | None = None
    """How often a sync also looks for tickets deleted upstream (None: never). How: a DeletionLog when the
    connector has a readable one, else an id sweep through RecordLookup (sync/plans.py ReconcilePlan)."""
    live_state: bool = False
    """The upstream tells first responses and running SLA clocks, so the live series (awaiting a first
    response, clocks by state) are published; without, they are absent rather than falsely waiting."""
    implicit_overall: str | None = None
    """Id of the question that plays `overall` when the source maps an overall question or has no
    `surveys` block (JSM's one CSAT question); None: only the configured mapping applies."""


class ConnectorBuilder(Protocol):
    """Builds the connector of one configured source for one sync (imports its client lazily)."""

    def __call__(
        self, source: Any, *, observe_request: RequestObserver, now: Callable[[], datetime] | None
    ) -> Connector: ...


class Prober(Protocol):
    """`discover`'s read-only look at one source: it fills `probe.facts` (connectors/probe.py) through the
    connector's client; discover.py holds them against the config and renders them."""

    def __call__(self, source: Any, probe: Probe) -> None: ...


@dataclass(frozen=True)
class SourceKind:
    """One upstream kind: its config model (with `kind: Literal[name]`), its connector and what it can do."""

    name: str
    config: type[SourceBase]
    build: ConnectorBuilder
    capabilities: Callable[[Any], Capabilities]
    """The capabilities of one configured source of this kind (they may follow its settings)."""
    secret_files: tuple[str, ...] = ()
    """Keys naming a file that holds a secret: checked readable when the config is loaded."""
    required_files: tuple[str, ...] = ()
    """Keys naming a data file that must exist when the config is loaded (a CSV export)."""
    probe: Prober | None = None
    demo_source: Mapping[str, Any] | None = None
    """A source block that runs this kind with no account at all (`itsm-exporter demo`)."""
    demo_calendars: Mapping[str, Any] | None = None
    """The business-hours calendars (`calendars:` entries) that its demo source names."""
    page: str = ""
    """Its page under docs/, for messages that send the user there."""
    links: ListLinks | None = None
    """The URLs of its list views behind a number (connectors/links.py): the dashboard's drill-down links, and
    the list field of each grouping label (`itsm_source_label_info`). None: no list view to open."""


_KINDS: dict[str, SourceKind] = {}


def register(kind: SourceKind) -> SourceKind:
    """Add a kind; its config model must say `kind: Literal[<its name>]` so the union can tell it apart."""
    if kind.name in _KINDS:
        raise ValueError(f"source kind {kind.name!r} is registered twice")
    literal = kind.config.model_fields["kind"].annotation
    if getattr(literal, "__args__", None) != (kind.name,):
        raise ValueError(f"source kind {kind.name!r}: {kind.config.__name__}.kind must be Literal[{kind.name!r}]")
    _KINDS[kind.name] = kind
    return kind


def kinds() -> tuple[SourceKind, ...]:
    """Every registered kind, in registration order."""
    return tuple(_KINDS.values())


def kind_of(source: SourceBase) -> SourceKind:
    """The registered kind of a configured source."""
    try:
        return _KINDS[source.kind]
    except KeyError:
        raise LookupError(f"source {source.name}: kind {source.kind!r} is not registered") from None


def capabilities(source: SourceBase) -> Capabilities:
    """What the upstream of `source` offers (see Capabilities)."""
    return kind_of(source).capabilities(source)
