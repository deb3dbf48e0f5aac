"""The refresh loop: a `schedule` job per source starts its SourceRunner in a thread; each tick swaps one snapshot."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import schedule
from prometheus_client import ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from itsm_exporter.collectors import refresh_note
from itsm_exporter.config import (
    Config,
    ConfigError,
    load_config,
    warn_insecure_sources,
)
from itsm_exporter.connectors import build_connector
from itsm_exporter.health import ConfigReloads, SourceHealth, health_metrics, reload_metrics
from itsm_exporter.pipeline import compute, sync_one
from itsm_exporter.snapshot import SnapshotCollector
from itsm_exporter.store import Store
from itsm_exporter.sync.runner import ConnectorFactory, SourceRunner

log = logging.getLogger(__name__)

ReloadHook = Callable[[], list[str]]
"""Called on each reload after the config file; returns its problems, and keeps its old state when it has any."""

JITTER: Final = 0.1
"""Each sync waits refresh_interval plus up to 10 %, so sources and replicas drift apart."""
TICK_SECONDS: Final = 1.0
"""The loop wakes at least this often: it answers stop and reload requests and proves it is alive."""
HEARTBEAT_TIMEOUT: Final = 30.0
"""/-/healthy fails when the loop has not ticked for this long."""


@dataclass(frozen=True)
class SourceStatus:
    """One source as the landing page shows it."""

    name: str
    kind: str
    state: str
    """`pending` (never synced), `up`, `down`, or `stale` (down for longer than max_staleness)."""
    last_success: datetime | None
    last_error: str | None


class Daemon:
    """Syncs every enabled source on a schedule and serves the result as one immutable snapshot.

    Time is injected: `clock` (wall time: evaluation instant, last success, staleness) and
    `monotonic` (durations, progress, heartbeat). `schedule` only decides when a sync starts, in
    real time; tests call `sync_all()` (scheduler.run_all) after moving their fake clocks instead.
    A sync that ends marks the snapshot stale and wakes the loop; the loop recomputes at most once
    per tick, however many sources finished since the last one (`recomputes` counts them).
    """

    def __init__(
        self,
        config: Config,
        *,
        config_path: Path | None = None,
        connector_factory: ConnectorFactory = build_connector,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        progress_interval: float = 30.0,
    ) -> None:
        self.config = config
        self._config_path = config_path
        self._factory = connector_factory
        self._clock = clock
        self._monotonic = monotonic
        self._progress_interval = progress_interval
        self._store = Store(config.store.path)
        self._lock = threading.RLock()
        """Guards health, workers, the scheduler's jobs and the config swap; never held during I/O."""
        self._compute_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._health: dict[str, SourceHealth] = {s.name: SourceHealth() for s in config.enabled_sources}
        self._stale: set[str] = set()
        self._served: set[str] = set()
        """Sources whose synced data a published snapshot has included at least once: readiness."""
        self._reloads = ConfigReloads()
        self._domain: tuple[Metric, ...] = ()
        self._workers: dict[str, threading.Thread] = {}
        self._scheduler = schedule.Scheduler()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._stop_requested = False
        self._reload_requested = False
        self._reload_hooks: list[ReloadHook] = []
        self._heartbeat = monotonic()
        self._dirty = threading.Event()
        """Set by a finished sync: the next tick recomputes the snapshot."""
        self.recomputes = 0
        # process_* (memory, CPU, open files, start time) as node_exporter has them: read on each scrape.
        process = ProcessCollector(registry=None)
        self.collector = SnapshotCollector((), live=[process])
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.registry.register(process)
        self._schedule(config)
        self._publish()

    # The loop.

    def sync_all(self) -> None:
        """Start a sync of every enabled source now (start-up; tests: "one refresh interval later")."""
        with self._lock:
            self._scheduler.run_all()

    def run_pending(self) -> None:
        """One tick of the loop: record the heartbeat, honour signal requests, start the syncs that are due."""
        self._heartbeat = self._monotonic()
        if self._stop_requested:
            log.info("stopping on signal")
            self.stop()
            return
        if self._reload_requested:
            self._reload_requested = False
            self.reload()
        self.recompute_if_synced()
        with self._lock:
            self._scheduler.run_pending()

    def recompute_if_synced(self) -> bool:
        """Recompute once when any sync finished since the last recompute; True when it did."""
        if not self._dirty.is_set():
            return False
        self._dirty.clear()
        self._recompute()
        return True

    def run_forever(self) -> None:
        """Tick until `stop()` (or a signal handler's `request_stop()`); the initial syncs are started first."""
        self.sync_all()
        while not self._stopping.is_set():
            self.run_pending()
            idle = self.idle_seconds()
            self._wake.wait(TICK_SECONDS if idle is None else min(TICK_SECONDS, max(0.0, idle)))
            self._wake.clear()

    def idle_seconds(self) -> float | None:
        """Seconds until the next scheduled sync starts (real time, as `schedule` counts); None without sources."""
        with self._lock:
            return self._scheduler.idle_seconds

    def request_stop(self) -> None:
        """Signal-handler safe: only sets a flag (no lock), acted on at the next tick."""
        self._stop_requested = True

    def request_reload(self) -> None:
        """Signal-handler safe: only sets a flag (no lock), acted on at the next tick."""
        self._reload_requested = True

    def stop(self) -> None:
        """Stop starting syncs, tell running ones to stop after their current batch, end the loop."""
        self._stopping.set()
        self._wake.set()

    def wait_for_syncs(self, timeout: float) -> bool:
        """Join the running syncs, then recompute once if they synced; False when one still runs after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        done = not any(worker.is_alive() for worker in workers)
        if not self._stopping.is_set():
            self.recompute_if_synced()
        return done

    def close(self, timeout: float = 5.0) -> None:
        """Stop, wait for the syncs, close the store (left open if a sync is stuck: SQLite survives exit)."""
        self.stop()
        if self.wait_for_syncs(timeout):
            self._store.close()
        else:
            log.warning("a sync did not stop in time; exiting without waiting for it", extra={"timeout": timeout})

    # What the HTTP endpoints ask.

    @property
    def healthy(self) -> bool:
        return not self._stopping.is_set() and self._monotonic() - self._heartbeat <= HEARTBEAT_TIMEOUT

    def pending_sources(self) -> list[str]:
        """Enabled sources whose first successful sync is not in the served metrics yet (/-/ready is 503)."""
        with self._lock:
            return sorted(set(self._health) - self._served)

    def statuses(self) -> list[SourceStatus]:
        with self._lock:
            config, health, stale = self.config, {n: s.copy() for n, s in self._health.items()}, set(self._stale)
        statuses = []
        for source in config.enabled_sources:
            state = health.get(source.name, SourceHealth())
            last = state.last_success_timestamp
            if source.name in stale:
                word = "stale"
            elif state.up:
                word = "up"
            else:
                word = "down" if state.last_error is not None else "pending"
            statuses.append(
                SourceStatus(
                    name=source.name,
                    kind=source.kind,
                    state=word,
                    last_success=None if last is None else datetime.fromtimestamp(last, UTC),
                    last_error=state.last_error,
                )
            )
        return statuses

    # Reload.

    def add_reload_hook(self, hook: ReloadHook) -> None:
        """Also run `hook` on every reload (the web configuration); its problems make the reload a failure."""
        self._reload_hooks.append(hook)

    def reload(self) -> list[str]:
        """Re-read the config file and run the reload hooks; return the problems (empty when all applied).

        A bad file keeps the old config; each hook keeps its own old state. One reload counts once, as a
        failure when anything was rejected.
        """
        if self._config_path is None and not self._reload_hooks:
            log.warning("reload requested, but there is no configuration file to read (demo mode)")
            return ["no configuration file to reload (demo mode)"]
        new: Config | None = None
        added: list[str] = []
        problems: list[str] = []
        with self._reload_lock:
            if self._config_path is not None:
                try:
                    new = load_config(self._config_path)
                except ConfigError as error:
                    log.error(
                        "configuration reload failed; keeping the previous configuration",
                        extra={"path": str(self._config_path), "problems": "; ".join(error.problems)},
                    )
                    problems += error.problems
                else:
                    added = self._apply(new)
            for hook in self._reload_hooks:
                problems += hook()
            with self._lock:
                if problems:
                    self._reloads = replace(self._reloads, failure=self._reloads.failure + 1, last_successful=False)
                else:
                    self._reloads = replace(self._reloads, success=self._reloads.success + 1, last_successful=True)
        if new is None:
            self._publish()
            return problems
        warn_insecure_sources(new, log)
        log.info("configuration reloaded", extra={"path": str(self._config_path), "sources": len(self._health)})
        for name in added:
            self._trigger(name)
        self._recompute()
        return problems

    def _apply(self, new: Config) -> list[str]:
        """Swap in `new`; return the sources it adds. Listen address and store need a restart."""
        old = self.config
        if new.listen != old.listen:
            log.warning("listen changed; restart to apply it", extra={"listen": old.listen})
        if new.store.path != old.store.path:
            log.warning("store.path changed; restart to apply it", extra={"store": str(old.store.path)})
            new = new.model_copy(update={"store": old.store})
        names = [s.name for s in new.enabled_sources]
        with self._lock:
            self.config = new
            for name in set(self._health) - set(names):
                del self._health[name]
                self._stale.discard(name)
                self._served.discard(name)
            added = [name for name in names if name not in self._health]
            for name in added:
                self._health[name] = SourceHealth()
            self._schedule(new)
        return added

    # One sync.

    def _schedule(self, config: Config) -> None:
        interval = max(1, round(config.refresh_interval.seconds))
        latest = interval + round(interval * JITTER)
        with self._lock:
            self._scheduler.clear()
            for source in config.enabled_sources:
                self._scheduler.every(interval).to(latest).seconds.do(self._trigger, source.name).tag(source.name)

    def _trigger(self, name: str) -> None:
        """Start a sync of `name` in its own thread, unless one is still running (a long backfill)."""
        with self._lock:
            if self._stopping.is_set() or name not in self._health:
                return
            running = self._workers.get(name)
            if running is not None and running.is_alive():
                log.debug("previous sync still running; skipping this round", extra={"source": name})
                return
            worker = threading.Thread(target=self._refresh, args=(name,), name=f"sync-{name}", daemon=True)
            self._workers[name] = worker
            worker.start()

    def _refresh(self, name: str) -> None:
        """The refresh job of one source: run its sync, then let the loop recompute the snapshot."""
        with self._lock:
            config = self.config
            state = self._health.get(name)
            source = next((s for s in config.enabled_sources if s.name == name), None)
        if state is None or source is None:  # removed by a reload since this sync was started
            return
        runner = SourceRunner(
            name,
            self._store,
            state,
            connector_factory=self._factory,
            lock=self._lock,
            clock=self._clock,
            monotonic=self._monotonic,
            now=self._now,
            progress_interval=self._progress_interval,
            on_progress=self._publish,
        )
        sync_one(runner, source, config, self._store, self._now, should_stop=self._stopping.is_set)
        if self._stopping.is_set():
            self._publish()  # an interrupted sync is no success: publish its counters, skip pandas
            return
        self._dirty.set()
        self._wake.set()

    # The snapshot.

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _fresh_sources(self, config: Config, now: float) -> list[str]:
        """Sources whose last success is within max_staleness; a newly stale one is logged once."""
        fresh = []
        with self._lock:
            for source in config.enabled_sources:
                state = self._health.get(source.name)
                last = None if state is None else state.last_success_timestamp
                if last is None:
                    continue
                if now - last <= config.staleness_seconds:
                    fresh.append(source.name)
                    self._stale.discard(source.name)
                elif source.name not in self._stale:
                    self._stale.add(source.name)
                    log.warning(
                        "source stale: its metrics are dropped until it syncs again",
                        extra={"source": source.name, "last_success_age_seconds": round(now - last)},
                    )
        return fresh

    def _recompute(self) -> None:
        """Recompute the domain families from the store at the current time and publish them."""
        with self._compute_lock:
            with self._lock:
                config = self.config
            now = self._clock()
            fresh = self._fresh_sources(config, now)
            try:
                as_of = datetime.fromtimestamp(now, UTC)
                domain = tuple(compute(self._store, config, fresh, as_of)) if fresh else ()
            except Exception:
                log.exception("computing the metrics failed; serving the previous values")
            else:
                with self._lock:
                    self._domain = domain
                    self._served.update(fresh)
                    self.recomputes += 1
            self._publish()

    def _publish(self) -> None:
        """Swap in the last domain families with freshly rendered health: cheap, no pandas."""
        with self._lock:
            health = {name: state.copy() for name, state in self._health.items()}
            note = refresh_note(self.config)
            families = [*self._domain, *health_metrics(health, note), *reload_metrics(self._reloads)]
        self.collector.swap(families)
