"""A frozen set of metric families served as is: what scrapes read instead of live data."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry


class FrozenCollector(Collector):
    """Yields the families it was built with; building a new one is how a snapshot is swapped."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class SnapshotCollector(FrozenCollector):
    """The daemon's collector: a swap replaces one tuple reference, so a scrape sees one whole snapshot."""

    def swap(self, families: Iterable[Metric]) -> None:
        self._families = tuple(families)


def snapshot_registry(families: Iterable[Metric]) -> CollectorRegistry:
    """A private registry (no process or platform metrics) holding exactly these families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrozenCollector(list(families)))
    return registry
