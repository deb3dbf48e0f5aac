"""Issue 2's acceptance: `itsm-exporter once` on the example config prints the whole contract, cleanly."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools import tool

ROOT = Path(__file__).resolve().parent.parent
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
AS_OF = "2026-11-20T12:00:00Z"

CONTRACT = (
    "itsm_tickets_opened",
    "itsm_tickets_resolved",
    "itsm_resolution_time_seconds",
    "itsm_first_response_time_seconds",
    "itsm_sla_tickets",
    "itsm_sla_met_ratio",
    "itsm_backlog_tickets",
    "itsm_backlog_age_seconds",
    "itsm_tickets_reopened",
    "itsm_tickets_first_contact_resolved",
    "itsm_reassignments",
    "itsm_reopened_ratio",
    "itsm_first_contact_resolution_ratio",
    "itsm_survey_responses",
    "itsm_survey_satisfied_responses",
    "itsm_survey_dissatisfied_responses",
    "itsm_survey_satisfied_ratio",
    "itsm_survey_score",
    "itsm_servqual_gap",
    "itsm_trust_balance",
    "itsm_survey_response_ratio",
    "itsm_complaints_opened",
    "itsm_complaint_resolution_time_seconds",
    "itsm_watermelon_gap_ratio",
    "itsm_watermelon",
    "itsm_target_ratio",
    "itsm_source_up",
    "itsm_source_last_success_timestamp_seconds",
    "itsm_source_sync_duration_seconds",
    "itsm_source_records_synced_total",
    "itsm_source_api_requests_total",
    "itsm_build_info",
)
GAUGE_HISTOGRAMS = (
    "itsm_resolution_time_seconds",
    "itsm_first_response_time_seconds",
    "itsm_backlog_age_seconds",
    "itsm_complaint_resolution_time_seconds",
)


@pytest.fixture(scope="module")
def exposition(tmp_path_factory: pytest.TempPathFactory) -> str:
    workdir = tmp_path_factory.mktemp("once")
    shutil.copy(ROOT / "config.example.yaml", workdir / "config.yaml")
    result = subprocess.run(
        [sys.executable, "-m", "itsm_exporter", "once", "--config", "config.yaml", "--as-of", AS_OF],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["config.yaml"]  # the store was temporary
    return result.stdout


def samples(text: str, name: str) -> dict[str, float]:
    """`{labels}` -> value for every sample of `name` (exact name, no suffix)."""
    found = {}
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(\{{.*\}})? (\S+)", line)
        if match:
            found[match.group(1) or ""] = float(match.group(2))
    return found


def test_every_contract_metric_is_printed_for_the_demo_source(exposition: str) -> None:
    for name in CONTRACT:
        series = f"{name}_gcount" if name in GAUGE_HISTOGRAMS else name
        values = samples(exposition, series)
        assert values, f"{series} missing"
        if name != "itsm_build_info":
            assert all('source="demo"' in labels for labels in values), series
    dimensions = {re.search(r'dimension="(\w+)"', k).group(1) for k in samples(exposition, "itsm_survey_score")}  # type: ignore[union-attr]
    assert dimensions == {"overall", "reliability", "assurance", "tangibles", "empathy", "responsiveness"}
    gaps = {re.search(r'dimension="(\w+)"', k).group(1) for k in samples(exposition, "itsm_servqual_gap")}  # type: ignore[union-attr]
    assert gaps == {"reliability", "assurance", "tangibles", "empathy", "responsiveness"}
    slas = samples(exposition, "itsm_sla_tickets")
    assert any('sla="response"' in k and 'outcome="breached"' in k for k in slas)
    assert any('sla="resolution"' in k and 'outcome="met"' in k for k in slas)
    assert samples(exposition, "itsm_source_up") == {'{source="demo"}': 1.0}


def test_the_planted_watermelon_is_flagged_and_only_it(exposition: str) -> None:
    flagged = {labels for labels, value in samples(exposition, "itsm_watermelon").items() if value == 1.0}
    assert flagged == {
        '{group="Network Operations",source="demo",window="30d"}',
        '{group="Network Operations",source="demo",window="7d"}',
        # The planted department: a watermelon that no team view shows (tests/test_demo.py).
        '{department="Warehouse",segment="department",source="demo",window="30d"}',
        '{department="Warehouse",segment="department",source="demo",window="7d"}',
    }
    sla = samples(exposition, "itsm_sla_met_ratio")[
        '{group="Network Operations",sla="resolution",source="demo",window="30d"}'
    ]
    satisfied = samples(exposition, "itsm_survey_satisfied_ratio")[
        '{group="Network Operations",source="demo",window="30d"}'
    ]
    assert sla >= 0.90 and satisfied < 0.60


@pytest.mark.integration
def test_promtool_accepts_the_exposition(exposition: str) -> None:
    result = subprocess.run(
        [tool(PROMTOOL), "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout + result.stderr == ""
