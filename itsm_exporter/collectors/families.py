"""Turn per-label-set arrays into fresh metric families; the only place that builds samples."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Sample
from prometheus_client.utils import floatToGoString

from itsm_exporter.collectors.arrays import BoolArray, FloatArray, IntArray
from itsm_exporter.collectors.histograms import GroupHistograms
from itsm_exporter.collectors.windows import Window


@dataclass(frozen=True)
class Part:
    """Values of one combination of extra labels: one array per column (window), shown where the mask is set."""

    extra: tuple[str, ...]
    values: Sequence[FloatArray | IntArray]
    shown: Sequence[BoolArray]


class FamilyBuilder:
    """Knows the label sets, the windows and the refresh note every HELP text ends with."""

    def __init__(
        self,
        label_names: Sequence[str],
        label_values: Sequence[tuple[str, ...]],
        windows: Sequence[Window],
        note: str,
        set_names: Sequence[tuple[str, ...]] = (),
        visible: BoolArray | None = None,
    ) -> None:
        self.label_names = list(label_names)
        self.label_values = label_values
        self.windows = windows
        self.note = note
        self.set_names = set_names
        """Each label set's own label names, when views differ in them (labels.Grouping.set_names)."""
        self.visible = visible
        """Label sets that may have series at all (labels.Grouping.visible); None: every one."""
        self._extra_names: tuple[str, ...] = ()
        """The labels the family being built adds after the label set's (window, sla, ...)."""

    def _labels(self, group: int, values: Sequence[str]) -> dict[str, str]:
        """The labels of a sample of label set `group` with the family's other label `values` appended."""
        return {**self._set_labels[group], **dict(zip(self._extra_names, values, strict=True))}

    @cached_property
    def _set_labels(self) -> list[dict[str, str]]:
        """Each label set's own labels, built once for all the families (a segment view's differ from the team's)."""
        names = self.set_names or [tuple(self.label_names)] * len(self.label_values)
        return [dict(zip(n, v, strict=True)) for n, v in zip(names, self.label_values, strict=True)]

    def gauge(self, name: str, doc: str, parts: Sequence[Part], extra_names: Sequence[str] = ()) -> GaugeMetricFamily:
        """A windowed gauge; samples ordered by label set, then window, then part."""
        return self._gauge(name, doc, parts, extra_names, [window.name for window in self.windows])

    def unwindowed_gauge(
        self, name: str, doc: str, values: FloatArray | IntArray, shown: BoolArray
    ) -> GaugeMetricFamily:
        """A gauge of the state at as_of, without a window label."""
        return self._gauge(name, doc, [Part((), [values], [shown])], (), [])

    def state_gauge(self, name: str, doc: str, parts: Sequence[Part], extra_names: Sequence[str]) -> GaugeMetricFamily:
        """A gauge of the state at as_of with extra labels (one value array per part), without a window label."""
        return self._gauge(name, doc, parts, extra_names, [])

    def _gauge(
        self, name: str, doc: str, parts: Sequence[Part], extra_names: Sequence[str], columns: list[str]
    ) -> GaugeMetricFamily:
        window_names = ["window"] if columns else []
        family = GaugeMetricFamily(name, f"{doc} {self.note}", labels=[*self.label_names, *window_names, *extra_names])
        shown = np.stack([np.stack(part.shown, axis=1) for part in parts], axis=2)
        if self.visible is not None:
            shown &= self.visible[:, np.newaxis, np.newaxis]
        values = np.stack([np.stack(part.values, axis=1) for part in parts], axis=2).astype(np.float64)
        self._extra_names = (*window_names, *extra_names)
        # Python ints and floats, in the order of np.nonzero (C order, as a mask selects): no numpy scalar per sample.
        found = zip(*(axis.tolist() for axis in np.nonzero(shown)), values[shown].tolist(), strict=True)
        if self.set_names:
            # The labels after the label set's, built once per (column, part) instead of once per sample.
            extras = [
                [
                    dict(zip(self._extra_names, [*([column] if columns else []), *part.extra], strict=True))
                    for part in parts
                ]
                for column in (columns or [""])
            ]
            # Samples as add_sample makes them, without its call per sample (93,000 of them with 5 segments).
            family.samples.extend(
                Sample(name, {**self._set_labels[group], **extras[column][index]}, value, None, None, None)
                for group, column, index, value in found
            )
            return family
        for group, column, index, value in found:
            window_value = [columns[column]] if columns else []
            family.add_metric([*self.label_values[group], *window_value, *parts[index].extra], value)
        return family

    def histogram(
        self,
        name: str,
        doc: str,
        histograms: Sequence[GroupHistograms],
        bounds: FloatArray,
        windowed: bool = True,
        *,
        by: tuple[str, Sequence[str]] | None = None,
    ) -> GaugeHistogramMetricFamily:
        """A gauge histogram with a series for each label set (and window, or value of the `by` label, one
        histogram each) holding at least one observation."""
        column_label, column_values = ("window", [w.name for w in self.windows]) if windowed else by or ("", [])
        column_names = [column_label] if column_label else []
        family = GaugeHistogramMetricFamily(name, f"{doc} {self.note}", labels=[*self.label_names, *column_names])
        bucket_names = [*(floatToGoString(bound) for bound in bounds), "+Inf"]
        shown = np.stack([histogram.counts > 0 for histogram in histograms], axis=1)
        if self.visible is not None:
            shown &= self.visible[:, np.newaxis]
        self._extra_names = tuple(column_names)
        for group, column in zip(*np.nonzero(shown), strict=True):
            histogram = histograms[column]
            window_value = [column_values[column]] if column_label else []
            counts = histogram.cumulative[group].tolist()
            if self.set_names:
                # A label set whose names are not the family's (a segment view): its samples as add_metric makes them.
                labels = self._labels(group, window_value)
                for bucket, count in zip(bucket_names, counts, strict=True):
                    family.add_sample(f"{name}_bucket", {**labels, "le": bucket}, count)
                family.add_sample(f"{name}_gcount", labels, counts[-1])
                family.add_sample(f"{name}_gsum", labels, float(histogram.sums[group]))
                continue
            family.add_metric(
                [*self.label_values[group], *window_value],
                list(zip(bucket_names, counts, strict=True)),
                float(histogram.sums[group]),
            )
        return family
