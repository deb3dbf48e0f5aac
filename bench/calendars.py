"""The business clock: 1,000,000 intervals through a calendar, against the wall clock on the same intervals.

python -m bench.calendars            # 1,000,000 intervals over two years, three calendars
python -m bench.calendars --smoke    # tiny sizes, what CI runs

Each interval starts at a random second of two years and lasts a lognormal time (median about 3 hours,
a few last months); each belongs to one of three calendars (a 9-to-5 desk in Berlin with Bavaria's
holidays, a desk in Sao Paulo, a 24x7 centre), as the tickets of a source and its groups would. The
expansion of the calendars into UTC intervals is timed apart from the durations.
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np

from itsm_exporter.calendar_config import Calendar
from itsm_exporter.collectors.calendars import BusinessClock, working_time
from itsm_exporter.collectors.durations import WALL_CLOCK

CALENDARS = (
    Calendar.model_validate(
        {
            "timezone": "Europe/Berlin",
            "hours": {"mon-thu": ["08:30-12:30", "13:30-17:30"], "fri": ["08:30-15:00"]},
            "holidays": {"country": "DE", "subdivision": "BY"},
        }
    ),
    Calendar.model_validate(
        {"timezone": "America/Sao_Paulo", "hours": {"mon-fri": ["09:00-18:00"]}, "holidays": {"country": "BR"}}
    ),
    Calendar.model_validate({"timezone": "UTC", "hours": {"mon-sun": ["00:00-24:00"]}}),
)
FIRST = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
SPAN = 2 * 365 * 86400.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intervals", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="runs; the best is reported")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for CI: checks it runs")
    args = parser.parse_args()
    if args.smoke:
        args.intervals, args.repeat = 10_000, 1

    rng = np.random.default_rng(26)
    start = np.floor(FIRST + rng.uniform(0, SPAN, args.intervals))
    end = start + np.floor(rng.lognormal(9.3, 1.8, args.intervals))
    rows = np.arange(args.intervals, dtype=np.int64)
    calendar_of = rng.integers(0, len(CALENDARS), args.intervals)

    expansions, elapsed, wall = [], [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        clock = BusinessClock(
            calendars=tuple(working_time(c, float(start.min()), float(end.max())) for c in CALENDARS),
            calendar_of=calendar_of,
        )
        expansions.append(time.perf_counter() - started)
        started = time.perf_counter()
        business = clock.elapsed(start, end, rows)
        elapsed.append(time.perf_counter() - started)
        started = time.perf_counter()
        seconds = WALL_CLOCK.elapsed(start, end, rows)
        wall.append(time.perf_counter() - started)
    if not ((business >= 0) & (business <= seconds)).all():
        print("business time outside [0, wall time]")
        return 1
    intervals = sum(len(w.starts) for w in clock.calendars)
    print(
        f"{args.intervals} intervals over {(end.max() - start.min()) / 86400:.0f} days, {len(CALENDARS)} calendars "
        f"({intervals} working intervals): expansion best {min(expansions) * 1000:.1f} ms; business clock best "
        f"{min(elapsed):.3f} s ({min(elapsed) / args.intervals * 1e9:.0f} ns an interval); wall clock best "
        f"{min(wall):.4f} s; best of {args.repeat}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
