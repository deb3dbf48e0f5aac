"""Collectors: a full snapshot on a large store, against a per-ticket Python loop computing the same values.

python -m bench.collectors                      # 1,000,000 tickets, 200,000 responses, 50 groups
python -m bench.collectors --smoke              # tiny sizes, what CI runs
python -m bench.collectors --load /tmp/frames.pkl --calendar   # with business hours against without, side by side
python -m bench.collectors --trends off         # the windows alone, as before issue 27 (--trends all: year over year)

Peak RSS as the OS sees it, without the generator's temporaries:

    python -m bench.collectors --save /tmp/frames.pkl
    /usr/bin/time -v python -m bench.collectors --load /tmp/frames.pkl --vectorized-only

`time -v` reports the whole process, loading the pickle included. The script also resets the kernel's
peak-RSS mark (VmHWM, via /proc/self/clear_refs) once the data is loaded and reads it after computing:
that is the peak of the computation itself, data held included.
"""

from __future__ import annotations

import argparse
import gc
import pickle
import resource
import time
from pathlib import Path

from bench.datagen import AS_OF, TRENDS, bench_config, frames
from bench.reference import differences, reference_metrics, sample_map
from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config
from itsm_exporter.frames import Frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--surveys", type=int, default=200_000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--segments", type=int, default=0, help="segments of every ticket, all in group_by")
    parser.add_argument("--segment-values", type=int, default=200, help="distinct values of each segment")
    parser.add_argument("--cap", type=int, help="max_label_values (default: --groups)")
    parser.add_argument("--repeat", type=int, default=3, help="vectorized runs; the best is reported")
    parser.add_argument("--vectorized-only", action="store_true", help="skip the loop (for memory measurement)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for CI: checks it runs and agrees")
    parser.add_argument("--save", type=Path, help="write the generated frames to this file and stop")
    parser.add_argument("--load", type=Path, help="read frames written by --save instead of generating")
    parser.add_argument(
        "--calendar", action="store_true", help="time the snapshot with business-hours calendars against without"
    )
    parser.add_argument(
        "--trends",
        choices=sorted(TRENDS),
        default="default",
        help="off: the windows alone; default: the previous period and the impact analysis; all: year over year too",
    )
    args = parser.parse_args()
    if args.smoke:
        args.tickets, args.surveys, args.groups, args.repeat = 3_000, 600, 5, 1

    config = bench_config(args.groups, args.trends, segments=args.segments, cap=args.cap)
    started = time.perf_counter()
    if args.load:
        with args.load.open("rb") as file:  # streamed: no second copy of the data as bytes
            data = pickle.load(file)
    else:
        data = frames(
            args.tickets, args.surveys, args.groups, segments=args.segments, segment_values=args.segment_values
        )
    if args.save:
        args.save.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
        return 0
    print(
        f"data: {args.tickets} tickets, {args.surveys} responses, {len(data.answers)} answers, "
        f"{args.groups} groups, generated in {time.perf_counter() - started:.1f} s"
    )
    gc.collect()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    resident = int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20
    peak_reset = reset_peak_rss()
    timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        families = compute_metrics(data, AS_OF, config)
        timings.append(time.perf_counter() - started)
    vectorized = min(timings)
    series = sum(len(f.samples) for f in families)
    label_sets = len({(s.labels.get("source"), tuple(sorted(s.labels.items()))) for f in families if f.name ==
                      "itsm_tickets_opened" for s in f.samples if s.labels.get("window") == "30d"})  # fmt: skip
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    computing = f"peak RSS while computing {peak_rss_mb():.0f} MB" if peak_reset else "peak RSS could not be reset"
    print(
        f"vectorized snapshot: best {vectorized:.3f} s of {args.repeat} ({series} samples, {label_sets} label sets); "
        f"RSS {resident:.0f} MB holding the data; {computing}; "
        f"process peak RSS {rss_before:.0f} MB before computing, {rss_after:.0f} MB after"
    )
    if args.calendar:
        compare_calendars(data, config, args.groups, args.trends, args.repeat)
    if args.vectorized_only:
        return 0

    started = time.perf_counter()
    expected = reference_metrics(data, AS_OF, config)
    loop = time.perf_counter() - started
    names = {key[0].removesuffix("_bucket").removesuffix("_gcount").removesuffix("_gsum") for key in expected}
    problems = differences(expected, sample_map(families, names))
    print(
        f"per-ticket loop: {loop:.3f} s; speed-up {loop / vectorized:.1f}x; "
        f"{len(expected)} samples compared, {len(problems)} differ"
    )
    for problem in problems[:20]:
        print(f"  {problem}")
    return 1 if problems else 0


def compare_calendars(data: Frames, config: Config, groups: int, trends: str, repeat: int) -> None:
    """The snapshot without and with calendars (the desk's for the source, the 24x7 one for two groups), runs
    interleaved so that both see the same machine; the best of each, in wall-clock and in CPU time (the
    process's own: steadier than the wall clock on a machine shared with other work)."""
    with_calendars = bench_config(groups, trends, calendars=True)
    timings: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(repeat):
        for calendars, cfg in ((False, config), (True, with_calendars)):
            wall, cpu = time.perf_counter(), time.process_time()
            families = compute_metrics(data, AS_OF, cfg)
            timings[calendars].append((time.perf_counter() - wall, time.process_time() - cpu))
    business = sum(len(f.samples) for f in families if "business" in f.name or f.name == "itsm_calendar_info")
    (wall_without, cpu_without), (wall_with, cpu_with) = (
        (min(w for w, _ in timings[c]), min(p for _, p in timings[c])) for c in (False, True)
    )
    print(
        f"calendars: without best {wall_without:.3f} s (CPU {cpu_without:.3f} s), with best {wall_with:.3f} s "
        f"(CPU {cpu_with:.3f} s) of {repeat} each, interleaved; ratio {wall_with / wall_without:.2f}x "
        f"(CPU {cpu_with / cpu_without:.2f}x); {business} business-hours samples more"
    )


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False where that is not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """VmHWM: the peak resident set since start or since the last reset_peak_rss()."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


if __name__ == "__main__":
    raise SystemExit(main())
