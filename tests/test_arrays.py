"""The (source, key) join under the collectors: unique keys, duplicate keys (first row wins), misses."""

from __future__ import annotations

import numpy as np

from itsm_exporter.collectors.arrays import lookup


def objects(*values: str | None) -> np.ndarray:
    return np.array(values, dtype=object)


def test_lookup_with_unique_keys_per_source() -> None:
    table_sources = np.array([0, 0, 1, 1])
    table_keys = objects("a", "b", "a", "c")
    probe_sources = np.array([1, 0, 0, 1, -1, 0])
    probe_keys = objects("a", "a", "z", "c", "a", None)
    assert lookup(table_sources, table_keys, probe_sources, probe_keys).tolist() == [2, 0, -1, 3, -1, -1]


def test_lookup_with_duplicate_keys_takes_the_first_row() -> None:
    table_sources = np.array([0, 0, 0, 1])
    table_keys = objects("k1", "k2", "k1", "k1")
    probe_sources = np.array([0, 0, 1, 0])
    probe_keys = objects("k1", "k2", "k1", "k3")
    assert lookup(table_sources, table_keys, probe_sources, probe_keys).tolist() == [0, 1, 3, -1]
