"""The collectors of this checkout against another's (main), side by side on one saved snapshot.

    python -m bench.collectors --save /tmp/frames.pkl
    git archive main | tar -x -C /tmp/main
    python -m bench.against --other /tmp/main --load /tmp/frames.pkl

Each round runs `bench.collectors --load --vectorized-only` once per variant, in turn, each in its own process:
the other checkout, then this one with --trends off, default and all. Rounds interleave the variants so that a
machine shared with other work slows them alike; the best of every run's repeats is kept, and the table gives
each variant's best and median over the rounds and its ratio to the other checkout's.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("off", "default", "all")
BEST = re.compile(r"vectorized snapshot: best ([0-9.]+) s of \d+ \((\d+) samples\)")
PEAK = re.compile(r"peak RSS while computing (\d+) MB")


def run(checkout: Path, load: Path, repeat: int, trends: str | None) -> tuple[float, int, int]:
    """Best seconds of `repeat` snapshots, the samples, and the peak RSS while computing (MB, data held included),
    from `bench.collectors` run in `checkout`."""
    command = [sys.executable, "-m", "bench.collectors", "--load", str(load), "--vectorized-only"]
    command += ["--repeat", str(repeat), *(["--trends", trends] if trends else [])]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    result = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=1800, check=True)
    match, peak = BEST.search(result.stdout), PEAK.search(result.stdout)
    if match is None or peak is None:
        raise RuntimeError(f"no timing or peak RSS in the output of {command}: {result.stdout}{result.stderr}")
    return float(match.group(1)), int(match.group(2)), int(peak.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", type=Path, required=True, help="the checkout to compare with (main)")
    parser.add_argument("--load", type=Path, required=True, help="frames saved by bench.collectors --save")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3, help="snapshots per run; the best is kept")
    args = parser.parse_args()
    names = ["other", *(f"trends {v}" for v in VARIANTS)]
    times: dict[str, list[float]] = {name: [] for name in names}
    samples: dict[str, int] = {}
    peaks: dict[str, list[int]] = {name: [] for name in names}
    for round_number in range(1, args.rounds + 1):
        for name in names:
            checkout, trends = (args.other, None) if name == "other" else (ROOT, name.removeprefix("trends "))
            seconds, samples[name], peak = run(checkout, args.load, args.repeat, trends)
            times[name].append(seconds)
            peaks[name].append(peak)
        print(f"round {round_number}: " + ", ".join(f"{n} {times[n][-1]:.3f} s" for n in names), flush=True)
    base = min(times["other"])
    print("\n| variant | samples | best | median | best / other's best | peak RSS computing |")
    print("|---|---|---|---|---|---|")
    for name in names:
        best, median, peak = min(times[name]), statistics.median(times[name]), max(peaks[name])
        print(f"| {name} | {samples[name]} | {best:.3f} s | {median:.3f} s | {best / base:.2f}x | {peak} MB |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
