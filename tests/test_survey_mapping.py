"""A misnamed survey question is visible while the exporter runs: a WARNING naming it, and
itsm_survey_mapping_answers{role="unmapped"} (issue 16 §3), through `once` against the ServiceNow fake."""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from itsm_exporter.cli import main
from itsm_exporter.config import SurveyMapping
from itsm_exporter.records import QuestionUse
from itsm_exporter.survey_mapping import check_mapping
from tests.fakes.servicenow import FakeServiceNow, source_settings
from tests.test_servicenow_sync import samples

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    """One resolved incident with two responses, each answering a scale question and a yes/no one."""
    with FakeServiceNow() as instance:
        desk = instance.add("sys_user_group", name="Service Desk")
        incident = instance.add(
            "incident",
            number="INC1",
            state="6",
            assignment_group=desk,
            opened_at="2026-03-09 08:00:00",
            resolved_at="2026-03-09 10:00:00",
            sys_updated_on="2026-03-09 10:00:00",
        )
        overall = instance.add("asmt_metric", name="overall", question="Overall satisfaction", datatype="scale")
        care = instance.add("asmt_metric", name="care", question="Did we care about you?", datatype="scale")
        for taken, scores in (("2026-03-09 12:00:00", ("5", "4")), ("2026-03-01 12:00:00", ("1", "2"))):
            survey = instance.add(
                "asmt_assessment_instance",
                state="complete",
                taken_on=taken,
                trigger_table="incident",
                trigger_id=incident,
            )
            instance.add("asmt_metric_result", instance=survey, metric=overall, actual_value=scores[0])
            instance.add("asmt_metric_result", instance=survey, metric=care, actual_value=scores[1])
        yield instance


def once(
    fake: FakeServiceNow, tmp_path: Path, surveys: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> tuple[str, str]:
    config = {
        "store": {"path": str(tmp_path / "once.db")},
        "windows": ["7d"],  # the 2026-03-01 response is outside it
        "sources": [source_settings(fake, surveys=surveys)],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    code = main(["once", "--config", str(tmp_path / "config.yaml"), "--as-of", "2026-03-10T12:00:00Z"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, err


def mapping(out: str) -> dict[str, float]:
    return {key.split('"')[1]: value for key, value in samples(out, "itsm_survey_mapping_answers").items()}


def test_a_misnamed_question_is_warned_about_and_counted_unmapped(
    fake: FakeServiceNow, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = once(fake, tmp_path, {"overall": ["Overal satisfaction"]}, capsys)
    # Answers of the one response in the window: neither question plays a role.
    assert mapping(out) == {"overall": 0.0, "dimension": 0.0, "expectation": 0.0, "unmapped": 2.0}
    assert samples(out, "itsm_survey_satisfied_ratio") == {}  # no overall answer: no ratio, rather than 0
    warnings = [_fields(line) for line in err.splitlines() if "level=warn" in line]
    assert len(warnings) == 3, err
    assert (
        warnings[0].items()
        >= {
            "msg": "configured survey question matches no question upstream",
            "source": "sn",
            "config_path": "sources[0].surveys.overall[0]",
            "question": "Overal satisfaction",
            "closest": "Overall satisfaction",
            "closest_name": "overall",
        }.items()
    )
    assert {w["msg"] for w in warnings[1:]} == {"answered survey question is unmapped"}
    assert sorted((w["question_name"], w["question"], w["answers"]) for w in warnings[1:]) == [
        ("care", "Did we care about you?", "1"),
        ("overall", "Overall satisfaction", "1"),
    ]


@pytest.mark.parametrize("written", ["Overall satisfaction", "overall", "  OVERALL   Satisfaction "])
def test_a_question_named_by_text_or_name_is_overall_and_quiet(
    fake: FakeServiceNow, tmp_path: Path, capsys: pytest.CaptureFixture[str], written: str
) -> None:
    out, err = once(fake, tmp_path, {"overall": [written], "dimensions": {"empathy": ["care"]}}, capsys)
    assert mapping(out) == {"overall": 1.0, "dimension": 1.0, "expectation": 0.0, "unmapped": 0.0}
    assert samples(out, "itsm_survey_satisfied_ratio") == {'group="Service Desk",source="sn",window="7d"': 1.0}
    assert "level=warn" not in err


def _fields(line: str) -> dict[str, str]:
    """logfmt fields of one line (values quoted when they hold spaces)."""
    return dict(part.split("=", 1) for part in shlex.split(line) if "=" in part)


def test_check_mapping_suggests_the_nearest_question_and_lists_answered_unmapped_ones() -> None:
    questions = [
        QuestionUse("m1", "overall", "Overall satisfaction", 10),
        QuestionUse("m2", "speed", "How quickly did we respond?", 7),
        QuestionUse("m3", "legacy", "Old question", 0),
    ]
    check = check_mapping(
        questions,
        SurveyMapping(overall=["overall satisfaction"], dimensions={"responsiveness": ["How quick did we respond"]}),
        implicit_overall=None,
        path="sources[2].surveys",
    )
    assert [(u.path, u.configured, u.closest) for u in check.unmatched] == [
        ("sources[2].surveys.dimensions.responsiveness[0]", "How quick did we respond", questions[1])
    ]
    # m2 is answered and unnamed; m3 is unnamed but has no answers in the span, so it is no news.
    assert check.unmapped == [questions[1]]
    assert (check.roles["m1"], "m2" in check.roles, "m3" in check.roles) == (("perception", "overall"), False, False)


def test_a_configured_question_with_nothing_stored_yet_has_no_suggestion() -> None:
    check = check_mapping(
        [], SurveyMapping(overall=["Satisfaction"]), implicit_overall="csat", path="sources[0].surveys"
    )
    assert [(u.path, u.closest) for u in check.unmatched] == [("sources[0].surveys.overall[0]", None)]
