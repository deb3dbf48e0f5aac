"""Store: upsert throughput and loading the window frames back, on a million tickets.

    python -m bench.store                 # 1,000,000 tickets
    python -m bench.store --segments 5    # each with a value of 5 segments (200 values each)
    python -m bench.store --smoke         # tiny sizes, what CI runs

Side by side in the same run: a bare executemany of the same rows into a table without an index
or upsert clause, i.e. the floor for this machine's SQLite.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.datagen import AS_OF, bench_config, ticket_records
from itsm_exporter.records import TICKET_COLUMNS, TICKETS, Batch, PhaseState
from itsm_exporter.store import Store
from itsm_exporter.store.schema import row_builder


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000, help="records per committed batch, as a sync pages")
    parser.add_argument("--segments", type=int, default=0, help="segments of every ticket (ticket_segments rows)")
    parser.add_argument("--segment-values", type=int, default=200, help="distinct values of each segment")
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        args.tickets = 5_000

    with tempfile.TemporaryDirectory() as tmp:
        chunks = list(
            ticket_records(args.tickets, chunk=args.batch, segments=args.segments, segment_values=args.segment_values)
        )
        store = Store(Path(tmp) / "store.db")
        started = time.perf_counter()
        for chunk in chunks:
            store.commit_batch(
                "bench",
                Batch(
                    kind="ticket", tickets=tuple(chunk), state=PhaseState("incremental", "ticket", token=chunk[-1].id)
                ),
            )
        insert = time.perf_counter() - started
        started = time.perf_counter()
        for chunk in chunks[: max(1, len(chunks) // 10)]:
            store.commit_batch(
                "bench",
                Batch(
                    kind="ticket", tickets=tuple(chunk), state=PhaseState("incremental", "ticket", token=chunk[-1].id)
                ),
            )
        update_rows = sum(len(c) for c in chunks[: max(1, len(chunks) // 10)])
        update = time.perf_counter() - started

        ticket_row = row_builder(TICKETS)
        labels = store._labels  # the store's codes for the label columns: the bare loop writes the same rows
        bare = sqlite3.connect(Path(tmp) / "bare.db", isolation_level=None)
        bare.execute("PRAGMA journal_mode=WAL")
        bare.execute("PRAGMA synchronous=NORMAL")
        bare.execute(f"CREATE TABLE t ({', '.join(f'c{i}' for i in range(len(TICKET_COLUMNS)))})")
        placeholders = ", ".join("?" * len(TICKET_COLUMNS))
        started = time.perf_counter()
        for chunk in chunks:
            bare.execute("BEGIN")
            bare.executemany(f"INSERT INTO t VALUES ({placeholders})", [ticket_row(t, labels) for t in chunk])
            bare.execute("COMMIT")
        floor = time.perf_counter() - started

        store_bytes = sum(f.stat().st_size for f in Path(tmp).glob("store.db*"))
        started = time.perf_counter()
        everything = store.load_frames(["bench"])
        load_all = time.perf_counter() - started
        started = time.perf_counter()
        recent = store.load_frames(["bench"], since=AS_OF - timedelta(days=30))
        load_window = time.perf_counter() - started
        # What pipeline.compute loads with the default trends: the look-back, twice the longest window.
        lookback = bench_config().lookback
        started = time.perf_counter()
        compared = store.load_frames(["bench"], since=AS_OF - lookback)
        load_lookback = time.perf_counter() - started

    n = args.tickets
    print(f"upsert (insert) {n} tickets in batches of {args.batch}: {insert:.2f} s = {n / insert:,.0f} records/s")
    print(f"upsert (update) {update_rows} tickets: {update:.2f} s = {update_rows / update:,.0f} records/s")
    print(
        f"bare executemany, no key, no upsert: {floor:.2f} s = {n / floor:,.0f} records/s "
        f"(store/bare time ratio {insert / floor:.2f})"
    )
    print(f"store file with its WAL: {store_bytes / 2**20:,.0f} MiB ({store_bytes / n:,.0f} bytes per ticket)")
    print(f"load_frames, all {len(everything.tickets)} tickets: {load_all:.2f} s")
    print(f"load_frames since as_of - 30d, {len(recent.tickets)} tickets: {load_window:.2f} s")
    what = f"since as_of - {lookback.days}d (the look-back), {len(compared.tickets)} tickets"
    print(f"load_frames {what}: {load_lookback:.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
