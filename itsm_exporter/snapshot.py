"""A frozen set of metric families served as is: what scrapes read instead of live data."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry


class FrozenCollector(Collector):
    """Yields the families it was built with; building a new one is how a snapshot is swapped."""

    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class SnapshotCollector(FrozenCollector):
    """The daemon's collector: a swap replaces one tuple reference, so a scrape sees one whole snapshot.

    It also keeps each snapshot's rendered exposition: a snapshot never changes, so encoding twenty
    thousand series once per refresh instead of once per scrape keeps scrapes in the milliseconds.
    """

    def __init__(self, families: Sequence[Metric]) -> None:
        super().__init__(families)
        self._rendered: tuple[tuple[Metric, ...], dict[str, bytes]] = (self._families, {})

    def swap(self, families: Iterable[Metric]) -> None:
        snapshot = tuple(families)
        # One assignment each: a concurrent scrape sees the old snapshot or the new one, never a mix.
        self._rendered = (snapshot, {})
        self._families = snapshot

    def exposition(self, variant: str, render: Callable[[CollectorRegistry], bytes]) -> bytes:
        """The current snapshot rendered by `render` (one format and encoding, named by `variant`), cached."""
        families, cache = self._rendered
        body = cache.get(variant)
        if body is None:
            # Rendered from the captured tuple, so the cache entry always belongs to its own snapshot.
            body = cache[variant] = render(snapshot_registry(families))
        return body


def snapshot_registry(families: Iterable[Metric]) -> CollectorRegistry:
    """A private registry (no process or platform metrics) holding exactly these families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrozenCollector(list(families)))
    return registry
