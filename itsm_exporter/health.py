"""Exporter-health state per source and its metric families (shared by `once` and the daemon)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from itsm_exporter.build import build_info
from itsm_exporter.records import RECORD_KINDS


@dataclass
class SourceHealth:
    """What the exporter knows about one source's syncs; counters only ever grow."""

    up: bool = False
    last_success_timestamp: float | None = None
    last_sync_duration_seconds: float | None = None
    last_error: str | None = None
    records_synced: Counter[str] = field(default_factory=Counter)
    records_skipped: Counter[tuple[str, str]] = field(default_factory=Counter)
    api_requests: Counter[str] = field(default_factory=Counter)
    records_deleted: Counter[str] = field(default_factory=Counter)
    last_reconcile_timestamp: float | None = None

    def copy(self) -> SourceHealth:
        return SourceHealth(
            up=self.up,
            last_success_timestamp=self.last_success_timestamp,
            last_sync_duration_seconds=self.last_sync_duration_seconds,
            last_error=self.last_error,
            records_synced=Counter(self.records_synced),
            records_skipped=Counter(self.records_skipped),
            api_requests=Counter(self.api_requests),
            records_deleted=Counter(self.records_deleted),
            last_reconcile_timestamp=self.last_reconcile_timestamp,
        )


def health_metrics(health: Mapping[str, SourceHealth], refresh_note: str) -> Iterable[Metric]:
    """Health families for every configured source, pre-created so dashboards never see gaps."""
    up = GaugeMetricFamily(
        "itsm_source_up", f"1 if the last sync of the source succeeded. {refresh_note}", labels=["source"]
    )
    last_success = GaugeMetricFamily(
        "itsm_source_last_success_timestamp_seconds",
        "Unix time at the end of the last successful sync of the source.",
        labels=["source"],
    )
    duration = GaugeMetricFamily(
        "itsm_source_sync_duration_seconds", "Duration of the last sync of the source.", labels=["source"]
    )
    synced = CounterMetricFamily(
        "itsm_source_records_synced", "Records fetched from the source since start.", labels=["source", "kind"]
    )
    skipped = CounterMetricFamily(
        "itsm_source_records_skipped",
        "Upstream records that could not be normalized and were skipped, by reason, since start.",
        labels=["source", "kind", "reason"],
    )
    requests = CounterMetricFamily(
        "itsm_source_api_requests",
        "Upstream HTTP requests by status code (error when no response came back), since start.",
        labels=["source", "code"],
    )
    deleted = CounterMetricFamily(
        "itsm_source_records_deleted",
        "Stored records removed because the source deleted them upstream (found by reconciliation), since start.",
        labels=["source", "kind"],
    )
    reconciled = GaugeMetricFamily(
        "itsm_source_last_reconcile_timestamp_seconds",
        "Unix time at the end of the last reconciliation of the source with its upstream's deletions.",
        labels=["source"],
    )
    for name in sorted(health):
        state = health[name]
        deleted.add_metric([name, "ticket"], float(state.records_deleted["ticket"]))
        if state.last_reconcile_timestamp is not None:
            reconciled.add_metric([name], state.last_reconcile_timestamp)
        up.add_metric([name], 1.0 if state.up else 0.0)
        if state.last_success_timestamp is not None:
            last_success.add_metric([name], state.last_success_timestamp)
        if state.last_sync_duration_seconds is not None:
            duration.add_metric([name], state.last_sync_duration_seconds)
        for kind in RECORD_KINDS:
            synced.add_metric([name, kind], float(state.records_synced[kind]))
        for (kind, reason), count in sorted(state.records_skipped.items()):
            skipped.add_metric([name, kind, reason], float(count))
        for code, count in sorted(state.api_requests.items()):
            requests.add_metric([name, code], float(count))
    build = GaugeMetricFamily(
        "itsm_build_info",
        "Build of itsm-exporter (version, Git revision and branch, Python version); always 1.",
        labels=["version", "revision", "branch", "pythonversion"],
    )
    info = build_info()
    build.add_metric([info.version, info.revision, info.branch, info.python_version], 1.0)
    return [up, last_success, duration, synced, skipped, deleted, reconciled, requests, build]


@dataclass(frozen=True)
class ConfigReloads:
    """Outcomes of configuration reloads (SIGHUP, POST /-/reload) since start."""

    success: int = 0
    failure: int = 0
    last_successful: bool = True


def reload_metrics(reloads: ConfigReloads) -> list[Metric]:
    """The daemon's reload families, so a config that no longer applies can be alerted on."""
    total = CounterMetricFamily(
        "itsm_config_reloads",
        "Configuration reloads (SIGHUP or POST /-/reload) by result, since start.",
        labels=["result"],
    )
    total.add_metric(["success"], float(reloads.success))
    total.add_metric(["failure"], float(reloads.failure))
    last = GaugeMetricFamily(
        "itsm_config_last_reload_successful",
        "1 if the last configuration reload succeeded or none was tried; 0 while a rejected file is ignored.",
    )
    last.add_metric([], 1.0 if reloads.last_successful else 0.0)
    return [total, last]
