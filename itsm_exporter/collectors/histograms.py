"""Gauge histograms per label set, counted with searchsorted and bincount instead of per-row loops."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from itsm_exporter.collectors.arrays import FloatArray, IntArray
from itsm_exporter.collectors.durations import Elapsed


@dataclass(frozen=True)
class GroupHistograms:
    """Cumulative bucket counts per label set (last column is +Inf, the count) and sums of observations."""

    cumulative: IntArray
    sums: FloatArray

    @property
    def counts(self) -> IntArray:
        counts: IntArray = self.cumulative[:, -1]
        return counts


def histogram_by_group(groups: IntArray, durations: Elapsed, n_groups: int, bounds: FloatArray) -> GroupHistograms:
    """Histogram of the durations per group; `groups` gives the group of each row `durations.rows` refers to
    (one column per grouping view, or one group per row)."""
    group_of = groups[durations.rows]
    width = len(bounds) + 1
    # side="left": a value equal to a bound belongs to that bound's bucket (le means <=).
    bins = np.searchsorted(bounds, durations.seconds, side="left")
    seconds = durations.seconds
    keys = group_of * width
    if group_of.ndim > 1:  # one column per grouping view: each observation counts once in each view
        keys += bins[:, np.newaxis]
        seconds = np.repeat(seconds, group_of.shape[1])
        group_of = group_of.ravel()
    else:
        keys += bins
    counts = np.bincount(keys.ravel(), minlength=n_groups * width).reshape(n_groups, width)
    sums = np.bincount(group_of, weights=seconds, minlength=n_groups).astype(np.float64)
    return GroupHistograms(cumulative=np.cumsum(counts, axis=1).astype(np.int64), sums=sums)
