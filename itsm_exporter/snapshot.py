"""A frozen set of metric families served as is: what scrapes read instead of live data."""

from __future__ import annotations

import gzip
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final

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
    `live` collectors (the process metrics, registered beside it) are read on every scrape and appended
    to that rendering.
    """

    def __init__(self, families: Sequence[Metric], live: Sequence[Collector] = ()) -> None:
        super().__init__(families)
        self._live = tuple(live)
        self._rendered: tuple[tuple[Metric, ...], dict[str, _Rendered]] = (self._families, {})

    def swap(self, families: Iterable[Metric]) -> None:
        snapshot = tuple(families)
        # One assignment each: a concurrent scrape sees the old snapshot or the new one, never a mix.
        self._rendered = (snapshot, {})
        self._families = snapshot

    def exposition(self, variant: str, render: Callable[[CollectorRegistry], bytes]) -> bytes:
        """The current snapshot rendered by `render` (one format and encoding, named by `variant`), cached,
        then the live collectors rendered now."""
        families, cache = self._rendered
        rendered = cache.get(variant)
        if rendered is None:
            # Rendered from the captured tuple, so the cache entry always belongs to its own snapshot.
            rendered = cache[variant] = _Rendered(render(snapshot_registry(families)), bool(self._live))
        if not self._live:
            return rendered.body
        live = CollectorRegistry(auto_describe=False)
        for collector in self._live:
            live.register(collector)
        return rendered.followed_by(render(live))


_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""A gzip member header: deflate, no name, no time, unknown OS."""
_EOF: Final = b"# EOF\n"


class _Rendered:
    """One rendering of a snapshot, and what appending a few live families to it needs.

    An OpenMetrics body must end with one `# EOF`, so the snapshot's is cut off; a gzip body is kept
    as a compressor flushed after the snapshot, copied per scrape, so a scrape compresses only what
    it appends and the answer is still one gzip member.
    """

    def __init__(self, body: bytes, appendable: bool) -> None:
        self.body = body
        if not appendable:
            return
        self.zipped = body[:2] == _GZIP_HEADER[:2]
        text = (gzip.decompress(body) if self.zipped else body).removesuffix(_EOF)
        self.text, self.crc, self.size = text, zlib.crc32(text), len(text)
        if self.zipped:
            self.compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)  # as gzip.compress
            self.deflated = self.compressor.compress(text) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    def followed_by(self, live: bytes) -> bytes:
        if not self.zipped:
            return self.text + live
        tail = gzip.decompress(live)
        compressor = self.compressor.copy()
        deflated = compressor.compress(tail) + compressor.flush()
        trailer = struct.pack("<II", zlib.crc32(tail, self.crc), (self.size + len(tail)) & 0xFFFFFFFF)
        return _GZIP_HEADER + self.deflated + deflated + trailer


def snapshot_registry(families: Iterable[Metric]) -> CollectorRegistry:
    """A private registry (no process or platform metrics) holding exactly these families."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FrozenCollector(list(families)))
    return registry
