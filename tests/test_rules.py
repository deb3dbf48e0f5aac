"""The Prometheus rules of alerts/: promtool's verdict, unit tests that can fail, metadata and runbooks."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.tools import tool

ROOT = Path(__file__).resolve().parent.parent
ALERTS_DIR = ROOT / "alerts"
RECORDING_RULES = ALERTS_DIR / "itsm-exporter.rules.yaml"
ALERTING_RULES = ALERTS_DIR / "itsm-exporter.alerts.yaml"
RULE_TESTS = sorted((ALERTS_DIR / "tests").glob("*.test.yaml"))
RUNBOOKS = ROOT / "docs" / "alerts.md"
METRICS_DOC = ROOT / "docs" / "metrics.md"
GOLDEN = ROOT / "tests" / "golden" / "collectors.prom"
PROMTOOL = "/usr/bin/promtool"

_PROMQL_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset"}
_PROMQL_KEYWORDS |= {"bool", "inf", "nan"}


def load_rules(path: Path) -> list[dict[str, Any]]:
    """Every rule of a rule file, in order."""
    return [rule for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]]


def alerting_rules() -> list[dict[str, Any]]:
    return load_rules(ALERTING_RULES)


def recording_rules() -> list[dict[str, Any]]:
    return load_rules(RECORDING_RULES)


def metric_names(expr: str) -> set[str]:
    """Metric names selected by a PromQL (or Grafana-templated PromQL) expression."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])[A-Za-z_:][\w:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group() in _PROMQL_KEYWORDS:
            continue
        names.add(match.group())
    return names


PER_SOURCE = re.compile(r"itsm_(target_|source_|build_info|survey_mapping_answers)")
"""Families without grouping labels: no view to choose (docs/metrics.md)."""


def viewless_selectors(expr: str) -> list[str]:
    """The selectors of grouped itsm_ families in `expr` that choose no view: with a customer segment in group_by
    every family also has a segment's series (docs/metrics.md, "Segments"), so a sum over them counts a ticket once
    per view unless it selects `segment=""` (the team view) or a segment's."""
    found = re.finditer(r"(?<![\w:])(itsm_\w+)(?![\w:])(\{[^}]*\})?", expr)
    return [m.group(0) for m in found if not PER_SOURCE.match(m.group(1)) and "segment=" not in (m.group(2) or "")]


def test_every_rule_reads_one_view() -> None:
    """Rules and alerts read the team view (segment=""): a department's series would count its tickets twice."""
    for rule in [*recording_rules(), *alerting_rules()]:
        assert viewless_selectors(rule["expr"]) == [], rule.get("record") or rule.get("alert")


def _documented_metrics() -> Iterator[str]:
    for name, kind in re.findall(r"^\| `(itsm_\w+)` \| ([a-z ]+) \|", METRICS_DOC.read_text(), re.MULTILINE):
        if kind == "gauge histogram":
            yield from (f"{name}_bucket", f"{name}_gcount", f"{name}_gsum")
        else:
            yield name


def known_metric_names() -> set[str]:
    """What an expression may select: the exporter's metrics, the recording rules, and Prometheus' `up`."""
    golden = {line.split("{")[0].split(" ")[0] for line in GOLDEN.read_text().splitlines() if line[:1].isalpha()}
    return set(_documented_metrics()) | golden | {rule["record"] for rule in recording_rules()} | {"up"}


def promtool() -> str:
    return tool(PROMTOOL)


def run_promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=60, check=False, cwd=ROOT
    )


def _rule_tests() -> Iterator[dict[str, Any]]:
    for path in RULE_TESTS:
        yield from yaml.safe_load(path.read_text())["tests"]


def test_metric_names_reads_promql() -> None:
    expr = (
        'sum by (le, group) (rate(itsm_x_total{code=~"5..", a="b{c}"}[$__rate_interval])) / on (source) '
        "group_left (objective) itsm_y offset 1d > 1e-9 and time() - itsm_z:ratio:sum"
    )
    assert metric_names(expr) == {"itsm_x_total", "itsm_y", "itsm_z:ratio:sum"}


@pytest.mark.integration
def test_promtool_check_rules_accepts_both_files() -> None:
    result = run_promtool("check", "rules", RECORDING_RULES.relative_to(ROOT), ALERTING_RULES.relative_to(ROOT))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.split("\n\n") == [
        "Checking alerts/itsm-exporter.rules.yaml\n  SUCCESS: 19 rules found",
        "Checking alerts/itsm-exporter.alerts.yaml\n  SUCCESS: 12 rules found",
        "",
    ]


@pytest.mark.integration
def test_promtool_unit_tests_pass() -> None:
    assert [path.name for path in RULE_TESTS] == [
        "business-hours.test.yaml",
        "itsm-exporter.test.yaml",
        "trends.test.yaml",
    ]
    result = run_promtool("test", "rules", *RULE_TESTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("  SUCCESS") == len(RULE_TESTS)


# Each mutation breaks one rule the way a careless edit would; the unit tests must then fail, naming it.
MUTATIONS = {
    "watermelon not sustained": ("for: 6h", "for: 4h", "ITSMWatermelon"),
    "satisfaction without the fall against the previous period": (
        '          and\n          (\n              itsm_survey_satisfied_ratio{segment=""}\n'
        "            < ignoring (period)\n"
        '              itsm_earlier_survey_satisfied_ratio{segment="", period="previous"} - 0.05\n          )\n',
        "",
        "ITSMSatisfactionBelowPreviousPeriod",
    ),
    "satisfaction against the year before": (
        'period="previous"} - 0.05',
        'period="year_ago"} - 0.05',
        ("ITSMSatisfactionBelowPreviousPeriod"),
    ),
    "satisfaction without the response guard": (
        '          and\n            itsm_survey_responses{segment=""} >= 10\n',
        "",
        "ITSMSatisfactionBelowPreviousPeriod",
    ),
    "satisfaction without the previous period's response guard": (
        "          and ignoring (period)\n"
        '            itsm_earlier_survey_responses{segment="", period="previous"} >= 10\n',
        "",
        "ITSMSatisfactionBelowPreviousPeriod",
    ),
    "satisfaction drop not sustained": (
        'period="previous"} >= 10\n        for: 30m',
        'period="previous"} >= 10\n        for: 20m',
        "ITSMSatisfactionBelowPreviousPeriod",
    ),
    "first response overdue on the wall clock where a calendar applies": (
        "itsm_awaiting_first_response_business_age_seconds_bucket",
        "itsm_awaiting_first_response_age_seconds_bucket",
        "ITSMFirstResponseOverdue",
    ),
    "first response overdue only where a calendar applies": (
        "            or\n              histogram_quantile(1, sum by (le, source, group) "
        '(itsm_awaiting_first_response_age_seconds_bucket{segment=""}))\n',
        "",
        "ITSMFirstResponseOverdue",
    ),
    "backlog growth absolute bound": (") >= 20", ") >= 5", "ITSMBacklogGrowing"),
    "backlog growth relative bound": (">= 1.5 *", ">= 1.2 *", "ITSMBacklogGrowing"),
    "backlog age bound": ("> 14 * 86400", "> 30 * 86400", "ITSMBacklogAgeing"),
    "source down too early": (
        "itsm_source_up == 0\n        for: 15m",
        "itsm_source_up == 0\n        for: 5m",
        "ITSMSourceDown",
    ),
    "stale also when down": ("          and on (source)\n          itsm_source_up == 1\n", "", "ITSMSourceStale"),
    "exporter down of any job": ('up{job="itsm-exporter"} == 0', "up == 0", "ITSMExporterDown"),
    "exporter absent of another job": (
        'absent(up{job="itsm-exporter"})',
        'absent(up{job="itsm"})',
        "ITSMExporterAbsent",
    ),
}


@pytest.mark.integration
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_unit_tests_fail_when_an_alert_breaks(mutation: str, tmp_path: Path) -> None:
    old, new, alert = MUTATIONS[mutation]
    copy = shutil.copytree(ALERTS_DIR, tmp_path / "alerts")
    rules = copy / ALERTING_RULES.name
    text = rules.read_text()
    assert text.count(old) == 1, f"mutation {mutation!r} no longer applies"
    rules.write_text(text.replace(old, new))
    result = run_promtool("test", "rules", *(copy / "tests" / path.name for path in RULE_TESTS))
    assert result.returncode == 1, result.stdout
    assert f"alertname: {alert}," in result.stdout + result.stderr


@pytest.mark.integration
def test_unit_tests_fail_when_a_ratio_yields_nan(tmp_path: Path) -> None:
    copy = shutil.copytree(ALERTS_DIR, tmp_path / "alerts")
    rules = copy / RECORDING_RULES.name
    guard = '/ (sum by (source, window, sla) (itsm_sla_tickets{segment=""}) > 0)'
    assert rules.read_text().count(guard) == 1
    rules.write_text(rules.read_text().replace(guard, "/ sum by (source, window, sla) (itsm_sla_tickets)"))
    result = run_promtool("test", "rules", copy / "tests" / "itsm-exporter.test.yaml")
    assert result.returncode == 1
    assert 'expr: "source_window:itsm_sla_met:ratio"' in result.stderr + result.stdout


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    for test in _rule_tests():
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    assert {rule["alert"]: {True, False} for rule in alerting_rules()} == cases


def test_every_recording_rule_is_checked_by_value() -> None:
    tested = {
        metric
        for test in _rule_tests()
        for case in test.get("promql_expr_test", [])
        for metric in metric_names(case["expr"])
    }
    assert {rule["record"] for rule in recording_rules()} <= tested


def test_recording_rules_follow_the_naming_convention() -> None:
    for rule in recording_rules():
        level, metric, operation = rule["record"].split(":")
        assert metric.startswith("itsm_"), rule["record"]
        assert set(level.split("_")) <= {"source", "group", "window"}, rule["record"]
        assert operation in {"histogram_quantile", "ratio", "sum"}, rule["record"]
        assert (operation == "histogram_quantile") == ("quantile" in rule.get("labels", {})), rule["record"]


def test_alerts_carry_severity_summary_description_and_runbook() -> None:
    headings = re.findall(r"^### (\w+)$", RUNBOOKS.read_text(), re.MULTILINE)
    names = [rule["alert"] for rule in alerting_rules()]
    assert len(set(names)) == len(names) == 12
    assert sorted(headings) == sorted(names)
    for rule in alerting_rules():
        assert rule["labels"] == {"severity": rule["labels"]["severity"]}
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"] == f"docs/alerts.md#{rule['alert'].lower()}"
        assert rule["for"], rule["alert"]


def test_rules_select_only_known_metrics() -> None:
    known = known_metric_names()
    for rule in recording_rules() + alerting_rules():
        assert metric_names(rule["expr"]) - known == set(), rule.get("record") or rule.get("alert")
