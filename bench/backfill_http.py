"""Time to first dashboard: a first ServiceNow sync bounded by `history` against the whole history.

    python -m bench.backfill_http                       # 50,000 incidents over ten years, latency model on
    python -m bench.backfill_http --incidents 200000    # another scale
    python -m bench.backfill_http --smoke               # tiny, no delay: what CI runs

The upstream is a latency-realistic stand-in for a ServiceNow instance: the Table API wire format
(records rendered once by tests/fakes/servicenow.py's renderer, `display_value=all`), answering
exactly the encoded queries the connector sends (keyset scans on sys_updated_on and taken_on,
`active=true`, `<until`, `sys_idIN` lookups), and holding each answer for `page delay + rows x
record delay` before sending it (BENCHMARKS.md gives the sources of the defaults). Both syncs run
in one process, side by side, on the same data: the incremental plan alone (the first sync before
issue 17: everything) and the plans of a configured source (the bounded backfill first). Each is run
once with no delay (the exporter's own cost per record) and once with the latency model (time to
ready). The same model is then applied, analytically, to a ten-year history of `--model-incidents`
(1,000,000) generated with the same distribution: its reads are counted exactly, not timed.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import re
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client.exposition import generate_latest

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config, parse_config
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import (
    ID_CHUNK,
    METRIC_FIELDS,
    RESULT_FIELDS,
    SURVEY_FIELDS,
    TICKET_FIELDS,
    ServiceNowConnector,
)
from itsm_exporter.snapshot import snapshot_registry
from itsm_exporter.store import Store
from itsm_exporter.sync import plans_for, sync_source
from itsm_exporter.sync.plans import LOOKUP_CHUNK
from tests.fakes.loopback import LoopbackServer, json_get_handler
from tests.fakes.servicenow import FakeServiceNow

NOW = datetime(2026, 11, 1, tzinfo=UTC)
"""When the first sync runs."""
YEARS = 10
DAY = 86400
WINDOWS = ("7d", "30d")
HORIZON = NOW - timedelta(days=30, minutes=5)
"""The default `history`: the longest window plus the source's overlap."""
PAGE = 1000
PAGE_DELAY_MS = 100.0
RECORD_DELAY_MS = 1.9
STALE_OPEN = 0.003
"""Share of incidents left open for good (never resolved): the old backlog a bounded sync still reads."""
SURVEYED = 0.15
"""Share of resolved incidents whose caller answers the satisfaction survey."""
_FIELD_TERM = re.compile(r"^(sys_updated_on|taken_on)(>=|>|<|=)(.+)$")


@dataclass
class History:
    """Incidents and survey responses of `years`, as epoch-second arrays (seeded, vectorized)."""

    updated: np.ndarray
    opened: np.ndarray
    resolved: np.ndarray
    """NaN: never resolved."""
    closed: np.ndarray
    taken: np.ndarray
    """Per incident: when its survey was taken, NaN for none."""

    @classmethod
    def generate(cls, incidents: int, seed: int = 17) -> History:
        rng = np.random.default_rng(seed)
        end = NOW.timestamp()
        opened = end - rng.random(incidents) * YEARS * 365 * DAY
        resolved = opened + rng.exponential(2 * DAY, incidents)
        resolved[rng.random(incidents) < STALE_OPEN] = np.nan
        resolved[resolved > end] = np.nan  # still being worked on
        closed = resolved + 7 * DAY  # auto-closed a week after resolution
        closed[closed > end] = np.nan
        touched = opened + rng.random(incidents) * np.minimum(end - opened, 30 * DAY)  # work notes while open
        updated = np.where(np.isnan(closed), np.where(np.isnan(resolved), touched, resolved), closed)
        taken = resolved + rng.exponential(5 * DAY, incidents)
        taken[(rng.random(incidents) >= SURVEYED) | np.isnan(resolved) | (taken > end)] = np.nan
        return cls(updated, opened, resolved, closed, taken)

    @property
    def open(self) -> np.ndarray:
        return np.isnan(self.closed)

    def reads(self, bounded: bool, page: int = PAGE) -> tuple[int, int, int]:
        """(requests, rows served, records stored) of a first sync, counted from the data, not timed.

        The connector's reads: keyset scans of `page` rows (a scan ends on a short page), ServiceNow's
        surveys with their answers (`instanceIN` chunks of ID_CHUNK) and one question lookup; bounded,
        the span, the open backlog before it, and the surveyed tickets by sys_id.
        """
        horizon = HORIZON.timestamp()
        surveys = self.taken[~np.isnan(self.taken)]
        if not bounded:
            tickets, span_surveys, backlog, lookups = len(self.updated), len(surveys), 0, 0
        else:
            in_span = self.updated >= horizon
            tickets = int(in_span.sum())
            backlog = int((self.open & ~in_span).sum())
            span_surveys = int((surveys >= horizon).sum())
            lookups = int(((self.taken >= horizon) & ~in_span & ~self.open).sum())
        requests = _scan_requests(tickets, page) + _scan_requests(span_surveys, page) + 1
        requests += sum(math.ceil(min(page, span_surveys - at) / ID_CHUNK) for at in range(0, span_surveys, page))
        if bounded:
            requests += _scan_requests(backlog, page)
            requests += sum(
                math.ceil(min(LOOKUP_CHUNK, lookups - at) / ID_CHUNK) for at in range(0, lookups, LOOKUP_CHUNK)
            )
        rows = tickets + backlog + lookups + 2 * span_surveys + (1 if span_surveys else 0)
        return requests, rows, tickets + backlog + lookups + span_surveys


def _scan_requests(rows: int, page: int) -> int:
    return rows // page + 1  # the page that comes back short ends the scan


def _glide(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


class LatentServiceNow:
    """A ServiceNow stand-in holding each answer for `page_delay + rows x record_delay` seconds."""

    def __init__(self, history: History, page_delay: float, record_delay: float) -> None:
        self.page_delay, self.record_delay = page_delay, record_delay
        renderer = FakeServiceNow()
        groups = [renderer.add("sys_user_group", name=f"Group {g:02d}") for g in range(20)]
        metric = renderer.add("asmt_metric", name="overall", question="Overall satisfaction", datatype="scale")
        self.metric = metric
        rng = np.random.default_rng(5)
        count = len(history.updated)
        ids = [f"{i:08x}{rng.integers(0, 2**62):024x}" for i in range(count)]
        incidents: list[tuple[tuple[str, str], bool, bytes]] = []
        surveys: list[tuple[tuple[str, str], bytes]] = []
        self.by_id: dict[str, bytes] = {}
        self.results: dict[str, tuple[str, bytes]] = {}
        for i in range(count):
            state = "7" if not np.isnan(history.closed[i]) else "6" if not np.isnan(history.resolved[i]) else "2"
            record = {
                "sys_id": ids[i], "number": f"INC{i:08d}", "state": state, "incident_state": state,
                "opened_at": _glide(history.opened[i]), "sys_updated_on": _glide(history.updated[i]),
                "resolved_at": "" if np.isnan(history.resolved[i]) else _glide(history.resolved[i]),
                "closed_at": "" if np.isnan(history.closed[i]) else _glide(history.closed[i]),
                "priority": str(1 + i % 5), "assignment_group": groups[i % len(groups)], "contact_type": "email",
                "reassignment_count": str(i % 3), "reopen_count": "", "made_sla": "false" if i % 9 == 0 else "true",
            }  # fmt: skip
            fragment = _json(renderer.render("incident", record, TICKET_FIELDS, "all", links=False))
            incidents.append(((record["sys_updated_on"], ids[i]), state != "7", fragment))
            self.by_id[ids[i]] = fragment
            renderer.tables["incident"][ids[i]] = {"number": record["number"]}
            if not np.isnan(history.taken[i]):
                survey_id = f"{i:08x}{'5' * 24}"
                taken = _glide(history.taken[i])
                renderer.tables["asmt_assessment_instance"][survey_id] = {"number": f"AINST{i:08d}"}
                shown = {"sys_id": survey_id, "trigger_id": ids[i], "taken_on": taken, "state": "complete"}
                instance = renderer.render("asmt_assessment_instance", shown, SURVEY_FIELDS, "all", links=False)
                surveys.append(((taken, survey_id), _json(instance)))
                result = {"sys_id": f"{i:08x}{'7' * 24}", "instance": survey_id, "metric": metric,
                          "actual_value": str(1 + i % 5)}  # fmt: skip
                rendered = _json(renderer.render("asmt_metric_result", result, RESULT_FIELDS, "all", links=False))
                self.results[survey_id] = (result["sys_id"], rendered)
        incidents.sort()
        surveys.sort()
        self.keys = [key for key, _, _ in incidents]
        self.fragments = [fragment for _, _, fragment in incidents]
        self.open_keys = [key for key, is_open, _ in incidents if is_open]
        self.open_fragments = [fragment for _, is_open, fragment in incidents if is_open]
        self.survey_keys = [key for key, _ in surveys]
        self.survey_fragments = [fragment for _, fragment in surveys]
        metric_row = renderer.tables["asmt_metric"][metric]
        self.metric_fragment = _json(renderer.render("asmt_metric", metric_row, METRIC_FIELDS, "all", links=False))
        self.requests: Counter[str] = Counter()
        self.rows = 0
        self.url = ""
        self._server: LoopbackServer | None = None

    def answer(self, table: str, params: dict[str, str]) -> tuple[list[bytes], int]:
        """The rows of one page and the query's total."""
        query, limit = params.get("sysparm_query", ""), int(params.get("sysparm_limit", "10000"))
        if "sys_idIN" in query or "instanceIN" in query:
            return self._lookup(table, query, limit)
        if table == "incident":
            is_open = "active=true" in query
            keys, fragments = (self.open_keys, self.open_fragments) if is_open else (self.keys, self.fragments)
        elif table == "asmt_assessment_instance":
            keys, fragments = self.survey_keys, self.survey_fragments
        else:
            raise ValueError(f"unexpected table {table}")
        ranges = [_keyset_range(keys, sub) for sub in query.split("^NQ")]
        picked: list[bytes] = []
        for low, high in sorted(ranges):
            picked.extend(fragments[low:high][: limit - len(picked)])
        return picked, sum(high - low for low, high in ranges)

    def _lookup(self, table: str, query: str, limit: int) -> tuple[list[bytes], int]:
        terms = [t for t in query.split("^") if t and not t.startswith("ORDERBY")]
        wanted = terms[0].split("IN", 1)[1].split(",")
        after = next((t[len("sys_id>") :] for t in terms[1:] if t.startswith("sys_id>")), "")
        if table == "incident":
            rows = sorted((i, self.by_id[i]) for i in wanted if i in self.by_id)
        elif table == "asmt_metric_result":
            rows = sorted(self.results[i] for i in wanted if i in self.results)
        elif table == "asmt_metric":
            rows = [(self.metric, self.metric_fragment)] if self.metric in wanted else []
        else:
            raise ValueError(f"unexpected lookup of {table}")
        rows = [row for row in rows if row[0] > after]
        return [fragment for _, fragment in rows[:limit]], len(rows)

    def respond(self, table: str, params: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        """One page, held for the instance's time to answer it: the latency model under test."""
        rows, total = self.answer(table, params)
        self.requests[table] += 1
        self.rows += len(rows)
        delay = self.page_delay + self.record_delay * len(rows)
        if delay > 0:
            time.sleep(delay)  # the instance's time to answer: the model under test
        headers = {} if params.get("sysparm_no_count") == "true" else {"X-Total-Count": str(total)}
        return b'{"result":[' + b",".join(rows) + b"]}", headers

    def __enter__(self) -> LatentServiceNow:
        self._server = LoopbackServer(json_get_handler(self.respond))
        self.url = self._server.url()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.stop()


def _json(rendered: dict[str, Any]) -> bytes:
    return json.dumps(rendered, separators=(",", ":")).encode()


def _keyset_range(keys: Sequence[tuple[str, str]], query: str) -> tuple[int, int]:
    """Index range of (time, sys_id) keys matching one `^NQ` part of a keyset query."""
    low, high = 0, len(keys)
    equal: str | None = None
    after: str | None = None
    for term in query.split("^"):
        if not term or term.startswith("ORDERBY") or term in ("active=true", "state=complete"):
            continue
        if term.startswith("trigger_table="):
            continue
        if term.startswith("sys_id>"):
            after = term[len("sys_id>") :]
            continue
        match = _FIELD_TERM.match(term)
        if match is None:
            raise ValueError(f"unexpected term {term!r}")
        _, op, moment = match.groups()
        if op == ">=":
            low = max(low, bisect.bisect_left(keys, (moment, "")))
        elif op == ">":
            low = max(low, bisect.bisect_right(keys, (moment, "~")))
        elif op == "<":
            high = min(high, bisect.bisect_left(keys, (moment, "")))
        else:
            equal = moment
            low = max(low, bisect.bisect_left(keys, (moment, "")))
            high = min(high, bisect.bisect_right(keys, (moment, "~")))
    if equal is not None and after is not None:
        low = max(low, bisect.bisect_right(keys, (equal, after)))
    return low, max(low, high)


@dataclass
class Run:
    label: str
    seconds: float
    ready_seconds: float
    records: int
    requests: int
    rows: int
    exposition: bytes


def first_sync(upstream: LatentServiceNow, config: Config, bounded: bool, path: Path) -> Run:
    """One first sync into a new store, then the first snapshot's load and compute: time to ready."""
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    upstream.requests.clear()
    upstream.rows = 0
    store = Store(path)
    connector = ServiceNowConnector(source)
    started = time.perf_counter()
    try:
        result = sync_source(
            connector, store, plans_for(source, config) if bounded else plans_for(source), now=lambda: NOW
        )
    finally:
        connector.close()
    synced = time.perf_counter() - started
    frames = store.load_frames(["sn"], since=NOW - timedelta(days=30))
    families = compute_metrics(frames, NOW, config)
    ready = time.perf_counter() - started
    store.close()
    return Run(
        "bounded" if bounded else "unbounded",
        synced,
        ready,
        sum(result.records.values()),
        sum(upstream.requests.values()),
        upstream.rows,
        generate_latest(snapshot_registry(families)),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=50_000, help="ten years of them, measured")
    parser.add_argument("--model-incidents", type=int, default=1_000_000, help="ten years of them, modelled")
    parser.add_argument("--page-delay-ms", type=float, default=PAGE_DELAY_MS)
    parser.add_argument("--record-delay-ms", type=float, default=RECORD_DELAY_MS)
    parser.add_argument("--smoke", action="store_true", help="2,000 incidents, no delay, no model at scale")
    args = parser.parse_args()
    if args.smoke:
        args.incidents, args.model_incidents, args.page_delay_ms, args.record_delay_ms = 2_000, 2_000, 0.0, 0.0
    page_delay, record_delay = args.page_delay_ms / 1000, args.record_delay_ms / 1000

    started = time.perf_counter()
    history = History.generate(args.incidents)
    upstream = LatentServiceNow(history, 0.0, 0.0)
    print(f"{args.incidents} incidents over {YEARS} years rendered in {time.perf_counter() - started:.1f} s")
    ok = True
    with upstream, tempfile.TemporaryDirectory() as tmp:
        config = parse_config(
            {
                "windows": list(WINDOWS),
                # The windows alone, as issue 17 measured them: HORIZON is their default history. The previous
                # period of issue 27 (on by default) doubles the span a bounded first sync reads.
                "trends": {"previous_period": False},
                "sources": [
                    {"name": "sn", "kind": "servicenow", "url": upstream.url, "username": "bench", "password": "bench",
                     "page_size": PAGE, "surveys": {"overall": ["Overall satisfaction"]}},
                ],
            }
        )  # fmt: skip
        runs: dict[tuple[str, bool], Run] = {}
        delays = [(0.0, 0.0)] + ([(page_delay, record_delay)] if page_delay or record_delay else [])
        for latency in delays:
            upstream.page_delay, upstream.record_delay = latency
            for bounded in (False, True):
                name = f"{'bounded' if bounded else 'unbounded'}-{latency[1] > 0 or latency[0] > 0}.db"
                runs[(("latency" if latency != (0.0, 0.0) else "none"), bounded)] = first_sync(
                    upstream, config, bounded, Path(tmp) / name
                )
    none_full, none_bounded = runs[("none", False)], runs[("none", True)]
    same = none_full.exposition == none_bounded.exposition
    ok = ok and same
    print(f"metrics at {NOW:%Y-%m-%d} of the bounded store equal the full store's: {'yes' if same else 'NO'}")
    local = none_full.seconds / none_full.records
    print(f"the exporter's own cost with no delay: {local * 1e6:.1f} us per record (unbounded first sync)")
    print()
    print(f"latency model: {args.page_delay_ms:g} ms per page + {args.record_delay_ms:g} ms per row served")
    print(f"{'first sync':<28}{'records':>10}{'requests':>10}{'rows':>10}{'model s':>10}{'sync s':>10}{'ready s':>10}")
    for bounded in (False, True):
        run = runs.get(("latency", bounded), runs[("none", bounded)])
        requests, rows, records = history.reads(bounded)
        ok = ok and (requests, rows, records) == (run.requests, run.rows, run.records)
        model = requests * page_delay + rows * record_delay + records * local
        print(
            f"{'measured, ' + run.label:<28}{run.records:>10,}{run.requests:>10,}{run.rows:>10,}"
            f"{model:>10.1f}{run.seconds:>10.1f}{run.ready_seconds:>10.1f}"
        )
    if args.model_incidents != args.incidents:
        big = History.generate(args.model_incidents)
        for bounded in (False, True):
            requests, rows, records = big.reads(bounded)
            model = requests * page_delay + rows * record_delay + records * local
            label = f"modelled {args.model_incidents:,}, {'bounded' if bounded else 'unbounded'}"
            print(f"{label:<28}{records:>10,}{requests:>10,}{rows:>10,}{model:>10.1f}{'-':>10}{'-':>10}")
    counted = "the counted reads match the measured ones" if ok else "MISMATCH between counted and measured reads"
    print(counted)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
