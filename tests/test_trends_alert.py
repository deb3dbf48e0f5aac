"""Issue 27's first 'done when', end to end: a fresh deployment on an upstream with two months of history shows a
30-day satisfaction drop in its first hour, and the drop alert fires on it in promtool.

`itsm-exporter once` syncs a fake ServiceNow into a new store (the bounded backfill reads twice the longest
window) and prints its exposition; every sample becomes a promtool input series held for an hour, as a
Prometheus scraping a new exporter would hold it, and the shipped rules run on them.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from test_rules import ALERTING_RULES, RECORDING_RULES, promtool

from itsm_exporter.cli import main
from tests.fakes.servicenow import FakeServiceNow, add_incident, source_settings

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
PER_DAY = 2
"""Resolved and surveyed incidents a day, over the 58 days before NOW."""


def satisfied(day: int, n: int) -> bool:
    """9 in 10 satisfied over the 30 days before the last 30, 6 in 10 since."""
    return (day * PER_DAY + n) % 10 < (6 if day < 30 else 9)


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    with FakeServiceNow() as instance:
        desk = instance.add("sys_user_group", name="Service Desk")
        overall = instance.add("asmt_metric", name="overall", question="Overall", datatype="scale", min="1", max="5")
        for day in range(1, 59):
            for n in range(PER_DAY):
                opened = NOW - timedelta(days=day, hours=3 + n)
                resolved = (opened + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
                incident = add_incident(
                    instance, f"INC{day:03d}{n}", resolved, state="6", opened_at=opened.strftime("%Y-%m-%d %H:%M:%S"),
                    resolved_at=resolved, assignment_group=desk, made_sla="true",
                )  # fmt: skip
                survey = instance.add(
                    "asmt_assessment_instance", state="complete", trigger_table="incident", trigger_id=incident,
                    taken_on=(opened + timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S"),
                )  # fmt: skip
                score = "5" if satisfied(day, n) else "2"
                instance.add("asmt_metric_result", instance=survey, metric=overall, actual_value=score)
        yield instance


def exposition_of_a_fresh_deployment(fake: FakeServiceNow, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    config = tmp_path / "config.yaml"
    settings = source_settings(fake, max_retries=0, surveys={"overall": ["Overall"]})
    config.write_text(yaml.safe_dump({"store": {"path": str(tmp_path / "new.db")}, "sources": [settings]}))
    assert main(["once", "--config", str(config), "--as-of", NOW.isoformat()]) == 0
    return capsys.readouterr().out


def test_a_fresh_deployment_shows_the_30_day_drop_and_the_alert_fires(
    fake: FakeServiceNow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = exposition_of_a_fresh_deployment(fake, tmp_path, capsys)
    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    desk = {"source": "sn", "group": "Service Desk"}

    def value(name: str, **labels: str) -> float:
        (found,) = [s.value for s in samples if s.name == name and s.labels == {**desk, **labels}]
        return found

    assert value("itsm_survey_satisfied_ratio", window="30d") == pytest.approx(0.6, abs=0.02)
    assert value("itsm_earlier_survey_satisfied_ratio", window="30d", period="previous") == pytest.approx(0.9, abs=0.02)
    # The 7d window fell no further than the week before it: no drop there.
    assert value("itsm_survey_satisfied_ratio", window="7d") == pytest.approx(
        value("itsm_earlier_survey_satisfied_ratio", window="7d", period="previous"), abs=0.1
    )

    # An hour of scrapes of this exposition, every 5 minutes, and the shipped rules.
    series = [
        {
            "series": s.name + "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(s.labels.items())) + "}",
            "values": f"{s.value!r}x12",
        }
        for s in samples
    ]
    ratio = value("itsm_survey_satisfied_ratio", window="30d")
    cases = [
        {"alertname": "ITSMSatisfactionBelowPreviousPeriod", "eval_time": "25m", "exp_alerts": []},
        {
            "alertname": "ITSMSatisfactionBelowPreviousPeriod",
            "eval_time": "35m",
            "exp_alerts": [
                {
                    "exp_labels": {"severity": "warning", **desk, "window": "30d"},
                    "exp_annotations": {
                        "summary": "Customer satisfaction of Service Desk dropped below target",
                        # humanizePercentage: four significant digits.
                        "description": f"{ratio * 100:.4g}% of the survey responses of Service Desk (source sn) "
                        "over the last 30d were satisfied: below the satisfaction target and more than 5 points "
                        "under the 30d before.",
                        "runbook_url": "docs/alerts.md#itsmsatisfactionbelowpreviousperiod",
                    },
                }
            ],
        },
    ]
    tests = {
        "rule_files": [str(RECORDING_RULES), str(ALERTING_RULES)],
        "evaluation_interval": "5m",
        "tests": [{"interval": "5m", "input_series": series, "alert_rule_test": cases}],
    }
    (tmp_path / "fresh.test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run(
        [promtool(), "test", "rules", str(tmp_path / "fresh.test.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
