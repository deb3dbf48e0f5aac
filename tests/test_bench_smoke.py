"""The benchmarks run in CI at tiny sizes so they cannot rot; no timing is asserted here (see BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "script",
    [
        "bench.collectors",
        "bench.store",
        "bench.ingest",
        "bench.scrape",
        "bench.burst",
        "bench.backfill",
        "bench.backfill_http",
    ],
)
def test_benchmark_runs_at_smoke_size(script: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", script, "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if script == "bench.collectors":
        # The smoke run also checks the vectorized collectors against the per-ticket loop.
        assert ", 0 differ" in result.stdout, result.stdout
    if script == "bench.burst":
        # Every burst size was measured (64 concurrent connections to the exporter included).
        assert result.stdout.count("concurrent x 1 bursts") == 3, result.stdout
    if script == "bench.ingest":
        # Exit 0 also means: every incident stored, and an unchanged upstream costs one request per table.
        assert "requests per table {'incident': 1, 'asmt_assessment_instance': 1}" in result.stdout, result.stdout
    if script == "bench.backfill":
        # The bounded first sync reads a small part of what the unbounded one reads.
        assert "bounded / unbounded: records read 0.0" in result.stdout, result.stdout
    if script == "bench.backfill_http":
        # The bounded store gives the full store's metrics, and the model counts the reads the syncs made.
        assert "of the bounded store equal the full store's: yes" in result.stdout, result.stdout
        assert "the counted reads match the measured ones" in result.stdout, result.stdout
