"""Survey questions are stored by upstream identity; their roles come from the config at compute time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config, parse_config
from itsm_exporter.frames import Frames
from itsm_exporter.records import Answer, Batch, SurveyResponse, Ticket
from itsm_exporter.store import Store
from tests.test_collectors import AS_OF, HOUR, ticket, value

# Two ServiceNow metrics asked with the same text (two surveys reuse it): both answers are kept.
OVERALL = Answer("m-overall", 5.0, name="overall", text="How satisfied are you?")
SPEED = Answer("m-speed", 2.0, name="speed", text="Was it quick?")
TWIN = Answer("m-twin", 1.0, name="overall_v2", text="How satisfied are you?")


def config(surveys: dict[str, Any], kind: str = "demo") -> Config:
    source: dict[str, Any] = {"name": "sn", "kind": kind, "surveys": surveys}
    if kind == "jira":
        source.update(url="http://127.0.0.1:9", token="t")
    return parse_config({"sources": [source]}, check_files=False)


def responses(*answers: Answer, source: str = "sn") -> tuple[list[Ticket], list[SurveyResponse]]:
    tickets = [ticket(f"t{n}", AS_OF - 48 * HOUR, state="resolved", resolved_at=AS_OF - 24 * HOUR) for n in range(3)]
    surveys = [
        SurveyResponse(source=source, id=f"s{n}", submitted_at=AS_OF - 2 * HOUR, answers=answers, ticket_id=f"t{n}")
        for n in range(3)
    ]
    return tickets, surveys


def stored_frames(tmp_path: Path, tickets: list[Ticket], surveys: list[SurveyResponse]) -> Frames:
    store = Store(tmp_path / "store.db")
    store.commit_batch("sn", Batch(kind="ticket", tickets=tuple(tickets)))
    store.commit_batch("sn", Batch(kind="survey", surveys=tuple(surveys)))
    frames = store.load_frames(["sn"], since=AS_OF - timedelta(days=30))
    store.close()
    return frames


def score(frames: Frames, cfg: Config, dimension: str = "overall") -> float | None:
    return value(
        compute_metrics(frames, AS_OF, cfg),
        "itsm_survey_score",
        dimension=dimension,
        window="30d",
        group="desk",
        source="sn",
    )


def test_a_mapping_edited_after_the_sync_applies_to_the_stored_answers(tmp_path: Path) -> None:
    frames = stored_frames(tmp_path, *responses(OVERALL, SPEED))
    before = config({"overall": ["How satisfied are you?"]})
    after = config({"overall": ["Was it quick?"], "dimensions": {"responsiveness": ["How satisfied are you?"]}})
    assert score(frames, before) == 1.0
    # No re-sync: the same stored answers, read under the new mapping, give the new mapping's numbers ...
    assert (score(frames, after), score(frames, after, "responsiveness")) == (0.25, 1.0)
    # ... exactly those of a fresh sync made with it.
    fresh = Frames.from_records(*responses(OVERALL, SPEED))
    assert compute_metrics(frames, AS_OF, after) == compute_metrics(fresh, AS_OF, after)


def test_a_question_is_named_by_its_text_its_name_or_its_id() -> None:
    frames = Frames.from_records(*responses(OVERALL, SPEED))
    for name in ("How satisfied are you?", "overall", "m-overall", "  how SATISFIED   are you? ", "Overall"):
        assert score(frames, config({"overall": [name]})) == 1.0, name  # case and spacing forgiven
    assert score(frames, config({"overall": ["Overal"]})) is None  # a misspelling is not guessed


def test_two_questions_with_one_text_are_two_questions() -> None:
    frames = Frames.from_records(*responses(OVERALL, TWIN))
    assert sorted(frames.answers["question_id"].unique()) == ["m-overall", "m-twin"]
    # Both are answers to the configured text: the response's overall score is their mean.
    assert score(frames, config({"overall": ["How satisfied are you?"]})) == 0.5
    assert score(frames, config({"overall": ["overall_v2"]})) == 0.0


def test_the_jsm_csat_rating_is_overall_when_an_overall_question_is_mapped_or_nothing_is(tmp_path: Path) -> None:
    rating = Answer("csat", 4.0, name="Satisfaction", text="How satisfied are you with this request?")
    frames = stored_frames(tmp_path, *responses(rating))
    # Before survey identity the rating was stored under overall[0]: any overall name counted it.
    assert score(frames, config({"overall": ["Customer satisfaction"]}, kind="jira")) == 0.75
    assert score(frames, config({"overall": ["Satisfaction"]}, kind="jira")) == 0.75
    # No surveys block: CSAT is the only question JSM asks, so it is the overall one.
    assert score(frames, config({}, kind="jira")) == 0.75
    # A mapping that names only other questions is taken at its word.
    assert score(frames, config({"dimensions": {"empathy": ["Did we care?"]}}, kind="jira")) is None
    # A demo source's question named "csat" is no JSM rating: only a matching mapping counts it.
    assert score(frames, config({"overall": ["Customer satisfaction"]})) is None
