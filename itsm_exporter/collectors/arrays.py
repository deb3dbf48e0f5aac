"""Array type aliases and the vectorized (source, key) join shared by the collector modules."""

from __future__ import annotations

from typing import TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray: TypeAlias = npt.NDArray[np.float64]
IntArray: TypeAlias = npt.NDArray[np.int64]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
ObjectArray: TypeAlias = npt.NDArray[np.object_]

FEW = 1024
"""Hash table size hint for label values, label sets and questions: few; pandas grows the table when not."""


def source_codes(values: pd.Series, names: tuple[str, ...]) -> IntArray:
    """Index of each row's source in `names`, -1 for a source that is not configured."""
    codes, uniques = pd.factorize(values.to_numpy(dtype=object), size_hint=FEW)
    position = {name: index for index, name in enumerate(names)}
    # The extra last slot answers code -1 (no source).
    to_name = np.array([*(position.get(value, -1) for value in uniques), -1], dtype=np.int64)
    return to_name[codes]


def lookup(
    table_sources: IntArray, table_keys: ObjectArray, probe_sources: IntArray, probe_keys: ObjectArray
) -> IntArray:
    """Row of the table matching each probe's (source, key), -1 when none; the first row wins on duplicates."""
    found_rows = np.full(len(probe_keys), -1, dtype=np.int64)
    for source in np.flatnonzero(np.bincount(probe_sources[probe_sources >= 0])):
        table_rows = np.flatnonzero(table_sources == source)
        probe_rows = np.flatnonzero(probe_sources == source)
        index = pd.Index(table_keys[table_rows], dtype=object)
        if index.is_unique:
            # The common case (ids are unique per source): one hash table over the table, probed once.
            matched = index.get_indexer(probe_keys[probe_rows])
            found_rows[probe_rows] = np.where(matched >= 0, table_rows[matched], -1)
            continue
        # Duplicate keys (ticket keys can repeat): hash the distinct probe keys, stream the table through them.
        probe_codes, wanted = pd.factorize(probe_keys[probe_rows], size_hint=min(len(probe_rows), len(table_rows)) + 1)
        table_codes = pd.Index(wanted, dtype=object).get_indexer(table_keys[table_rows])
        hit = table_codes >= 0
        codes, first = np.unique(table_codes[hit], return_index=True)
        row_of_code = np.full(len(wanted) + 1, -1, dtype=np.int64)  # the extra slot answers code -1 (no key)
        row_of_code[codes] = table_rows[hit][first]
        found_rows[probe_rows] = row_of_code[probe_codes]
    return found_rows


def ratio(numerator: FloatArray | IntArray, denominator: FloatArray | IntArray) -> FloatArray:
    """numerator / denominator where the denominator is positive, NaN elsewhere (never emitted)."""
    return np.divide(numerator, denominator, out=np.full(len(denominator), np.nan), where=np.asarray(denominator) > 0)
