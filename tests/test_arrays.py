"""The (source, key) join under the collectors: unique keys, duplicate keys (first row wins), misses."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from itsm_exporter.collectors.arrays import KeyIndex, lookup


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


def test_lookup_hashing_the_probes_when_the_table_is_larger() -> None:
    """Fewer probes than table rows: the probes are hashed and the table streamed through them."""
    table_sources = np.array([0, 1, 0, 0, 1, 0, 0, -1])
    table_keys = objects("k1", "k1", "k2", "k1", "k9", None, "k3", "k3")
    probe_sources = np.array([1, 0, 0])
    probe_keys = objects("k1", "k3", "k9")
    assert lookup(table_sources, table_keys, probe_sources, probe_keys).tolist() == [1, 6, -1]


keys = st.sampled_from(["a", "b", "c", "d", None])
sources = st.integers(min_value=-1, max_value=2)


@given(
    table=st.lists(st.tuples(sources, keys), max_size=12),
    probes=st.lists(st.tuples(sources, keys), max_size=12),
)
def test_lookup_and_key_index_agree_with_a_dictionary(
    table: list[tuple[int, str | None]], probes: list[tuple[int, str | None]]
) -> None:
    first_row: dict[tuple[int, str], int] = {}
    for row, (source, key) in enumerate(table):
        if source >= 0 and key is not None:
            first_row.setdefault((source, key), row)
    expected = [first_row.get((s, k), -1) if k is not None else -1 for s, k in probes]
    table_sources = np.array([s for s, _ in table], dtype=np.int64)
    table_keys = objects(*(k for _, k in table))
    probe_sources = np.array([s for s, _ in probes], dtype=np.int64)
    probe_keys = objects(*(k for _, k in probes))
    assert lookup(table_sources, table_keys, probe_sources, probe_keys).tolist() == expected
    assert KeyIndex(table_sources, table_keys).find(probe_sources, probe_keys).tolist() == expected


def test_a_missing_key_matches_no_row_missing_it_too() -> None:
    """A survey without a ticket key must not be joined to a ticket without a key (found by the property test)."""
    table_sources = np.array([0, 0])
    table_keys = objects(None, "k1")
    probe_sources = np.array([0, 0, 0])
    probe_keys = objects(None, "k1", None)
    assert lookup(table_sources, table_keys, probe_sources, probe_keys).tolist() == [-1, 1, -1]
    assert KeyIndex(table_sources, table_keys).find(probe_sources, probe_keys).tolist() == [-1, 1, -1]
