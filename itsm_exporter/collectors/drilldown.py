"""What the dashboard's drill-down links need from each source: its base URL and its labels' list fields.

The links themselves are built by each kind (connectors/<kind>/links.py) into the dashboard by its generator;
these families tell a panel, row by row, where the source lives and which list field a label filters on.
Neither carries a credential, a query string or free text: configuration only.
"""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from itsm_exporter.config import Config
from itsm_exporter.kinds import kind_of


def families(config: Config, names: tuple[str, ...], note: str) -> list[Metric]:
    """`itsm_source_info` for every enabled source, `itsm_source_label_info` per source and grouping label."""
    info = GaugeMetricFamily(
        "itsm_source_info",
        "Always 1: each source's kind and its upstream's base URL (no credential, no query string; empty for a "
        f"source without one), for drill-down links. {note}",
        labels=["source", "kind", "url"],
    )
    fields = GaugeMetricFamily(
        "itsm_source_label_info",
        f"Always 1: the upstream list field each grouping label of a source filters on, for drill-down links. {note}",
        labels=["source", "label", "field"],
    )
    for name in names:
        source = config.source(name)
        kind = kind_of(source)
        info.add_metric([name, source.kind, source.public_url()], 1.0)
        if kind.links is None:
            continue
        for label in config.group_by:
            if label in config.segment_labels and label not in source.segments:
                continue
            field = kind.links.label_field(source, label)
            if field:
                fields.add_metric([name, label, field], 1.0)
    return [info, fields]
