"""The ServiceNow connector against the fake instance: wire helpers, mapping, paging, SLAs, surveys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from itsm_exporter.config import parse_config
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from itsm_exporter.connectors.servicenow.wire import (
    display,
    error_message,
    keyset_query,
    map_state,
    parse_count,
    parse_duration,
    parse_time,
    value,
)
from itsm_exporter.records import Answer, Batch, Segment, SkippedRecord, SlaClock, SurveyResponse, Ticket
from tests.fakes.servicenow import FakeServiceNow, add_incident, source_settings
from tests.plans import glide, run_plan

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)


def source(fake: FakeServiceNow, **settings: Any) -> ServiceNowSource:
    config = parse_config({"sources": [source_settings(fake, **settings)]}, check_files=False)
    result = config.sources[0]
    assert isinstance(result, ServiceNowSource)
    return result


def connector(fake: FakeServiceNow, **settings: Any) -> ServiceNowConnector:
    return ServiceNowConnector(source(fake, **settings), sleep=lambda _s: None, jitter=lambda: 0.5)


def fetch(fake: FakeServiceNow, ticket: str | None = None, survey: str | None = None, **settings: Any) -> list[Batch]:
    sn = connector(fake, **settings)
    try:
        overlap = timedelta(seconds=source(fake, **settings).overlap.seconds)
        return run_plan(sn, {"ticket": ticket, "survey": survey}, overlap=overlap)
    finally:
        sn.close()


# ----- wire helpers -----


def test_glide_times_and_durations() -> None:
    assert parse_time("2026-03-01 08:15:00") == datetime(2026, 3, 1, 8, 15, tzinfo=UTC)
    assert parse_time("") is None
    with pytest.raises(ValueError):
        parse_time("03/01/2026 08:15:00 AM")
    assert parse_duration("1970-01-02 04:23:17") == timedelta(days=1, hours=4, minutes=23, seconds=17)
    assert parse_duration("1970-01-01 00:00:45") == timedelta(seconds=45)
    assert parse_duration("") is None


def test_counts_states_and_field_shapes() -> None:
    assert (parse_count(""), parse_count("3")) == (0, 3)
    with pytest.raises(ValueError):
        parse_count("-1")
    assert [map_state(c) for c in ("1", "2", "3", "4", "5", "6", "7", "8", "9")] == [
        "open",
        "open",
        "on_hold",
        "on_hold",
        "on_hold",
        "resolved",
        "closed",
        "canceled",
        None,
    ]
    assert map_state("", "4") == "on_hold"
    assert map_state("99", "7") == "closed"
    record = {"a": {"display_value": "Service Desk", "value": "abc"}, "b": "plain", "c": ""}
    assert (value(record, "a"), display(record, "a")) == ("abc", "Service Desk")
    assert (value(record, "b"), value(record, "c"), value(record, "missing")) == ("plain", "", "")
    assert error_message({"error": {"message": "Invalid table x", "detail": None}, "status": "failure"}) == (
        "Invalid table x"
    )
    assert error_message({"error": {"message": "User Not Authenticated", "detail": "Required"}}) == (
        "User Not Authenticated (Required)"
    )
    assert error_message(["not", "an", "envelope"]) == ""


def test_keyset_queries_repeat_the_filter_in_each_nq_subquery() -> None:
    order = "^ORDERBYsys_updated_on^ORDERBYsys_id"
    assert keyset_query("", "sys_updated_on", None, None) == order[1:]
    assert keyset_query("active=true", "sys_updated_on", "2026-01-01 00:00:00", None) == (
        "active=true^sys_updated_on>=2026-01-01 00:00:00" + order
    )
    assert keyset_query("priority=1^ORpriority=2", "sys_updated_on", "x", ("2026-01-02 03:04:05", "ab12")) == (
        "priority=1^ORpriority=2^sys_updated_on>2026-01-02 03:04:05"
        "^NQpriority=1^ORpriority=2^sys_updated_on=2026-01-02 03:04:05^sys_id>ab12" + order
    )
    # A filter with its own ^NQ is distributed: (A OR B) AND cursor.
    assert keyset_query("a=1^NQb=2", "t", None, ("T", "I")) == (
        "a=1^t>T^NQa=1^t=T^sys_id>I^NQb=2^t>T^NQb=2^t=T^sys_id>I^ORDERBYt^ORDERBYsys_id"
    )


def test_fake_query_engine_binds_or_to_one_term_and_ignores_invalid_terms(fake: FakeServiceNow) -> None:
    a = fake.add("incident", number="A", priority="1", state="2")
    b = fake.add("incident", number="B", priority="2", state="7")
    c = fake.add("incident", number="C", priority="3", state="2")
    numbers = lambda q: sorted(r["number"] for r in fake.query("incident", q))  # noqa: E731
    assert numbers("priority=1^ORpriority=2^state=2") == ["A"]
    assert numbers("priority=1^NQpriority=3") == ["A", "C"]
    assert numbers("no_such_field=1") == ["A", "B", "C"]
    assert numbers(f"sys_idIN{a},{c}") == ["A", "C"]
    assert [r["sys_id"] for r in fake.query("incident", "ORDERBYDESCnumber")] == [c, b, a]


# ----- incidents -----


def seed_reference_data(fake: FakeServiceNow) -> dict[str, str]:
    return {
        "desk": fake.add("sys_user_group", name="Service Desk"),
        "network": fake.add("sys_user_group", name="Network Operations"),
        "email": fake.add("cmn_service", name="Email"),
        "response": fake.add("contract_sla", name="P3 response 4h", target="response"),
        "resolution": fake.add("contract_sla", name="P3 resolution 3d", target="resolution"),
    }


def test_an_incident_maps_to_a_ticket_from_values_and_display_names(fake: FakeServiceNow) -> None:
    ref = seed_reference_data(fake)
    sys_id = fake.add(
        "incident",
        number="INC0010001",
        state="6",
        incident_state="6",
        opened_at="2026-03-01 08:00:00",
        resolved_at="2026-03-01 10:30:00",
        sys_updated_on="2026-03-01 10:30:05",
        priority="2",
        assignment_group=ref["network"],
        business_service=ref["email"],
        contact_type="phone",
        category="Complaint",
        reassignment_count="2",
        reopen_count="",
        made_sla="true",
    )
    (batch,) = fetch(fake, complaints={"category": ["complaint"]})
    assert batch.tickets == (
        Ticket(
            source="sn",
            id=sys_id,
            key="INC0010001",
            opened_at=at("2026-03-01 08:00:00"),
            state="resolved",
            updated_at=at("2026-03-01 10:30:05"),
            resolved_at=at("2026-03-01 10:30:00"),
            priority="p2",
            group="Network Operations",
            service="Email",
            channel="phone",
            reassignments=2,
            reopens=0,
            sla_response="unknown",
            sla_resolution="met",
            complaint=True,
        ),
    )
    assert (batch.kind, glide(batch), batch.fetched_so_far, batch.total_expected) == (
        "ticket",
        "2026-03-01 10:30:05",
        1,
        1,
    )
    params = fake.table_requests("incident")[0].params
    assert params["sysparm_display_value"] == "all"
    assert params["sysparm_exclude_reference_link"].lower() == "true"
    assert params["sysparm_fields"].split(",")[:3] == ["sys_id", "number", "state"]
    assert params["sysparm_fields"].endswith(",made_sla,category")


def test_legacy_states_open_sla_and_empty_references(fake: FakeServiceNow) -> None:
    fake.add(
        "incident",
        number="INC1",
        state="",
        incident_state="4",
        opened_at="2026-03-01 08:00:00",
        sys_updated_on="2026-03-01 09:00:00",
        made_sla="true",
        priority="",
    )
    fake.add(
        "incident",
        number="INC2",
        state="2",
        opened_at="2026-03-01 08:00:00",
        sys_updated_on="2026-03-01 09:00:01",
        made_sla="false",
        contact_type="email",
    )
    (batch,) = fetch(fake, complaints={"contact_type": ["phone"]})
    one, two = batch.tickets
    assert (one.state, one.sla_resolution, one.priority, one.group, one.channel) == (
        "on_hold",
        "unknown",
        None,
        None,
        None,
    )
    assert (two.state, two.sla_resolution, two.complaint) == ("open", "breached", False)


def test_bad_records_are_skipped_with_a_reason_not_a_crash(fake: FakeServiceNow) -> None:
    fake.add(
        "incident", number="GOOD", state="1", opened_at="2026-03-01 08:00:00", sys_updated_on="2026-03-01 09:00:00"
    )
    fake.add(
        "incident",
        number="NOID",
        sys_id="",
        state="1",
        opened_at="2026-03-01 08:00:00",
        sys_updated_on="2026-03-01 09:00:01",
    )
    fake.add("incident", number="BADTIME", state="1", opened_at="yesterday", sys_updated_on="2026-03-01 09:00:02")
    fake.add(
        "incident", number="WEIRD", state="42", opened_at="2026-03-01 08:00:00", sys_updated_on="2026-03-01 09:00:03"
    )
    fake.add(
        "incident",
        number="COUNT",
        state="1",
        opened_at="2026-03-01 08:00:00",
        sys_updated_on="2026-03-01 09:00:04",
        reopen_count="many",
    )
    (batch,) = fetch(fake)
    assert [t.key for t in batch.tickets] == ["GOOD"]
    assert [(s.kind, s.record_id, s.reason) for s in batch.skipped] == [
        ("ticket", "NOID", "missing_sys_id"),
        ("ticket", "BADTIME", "bad_time"),
        ("ticket", "WEIRD", "unknown_state"),
        ("ticket", "COUNT", "bad_count"),
    ]
    assert batch.skipped[1].detail == "opened_at 'yesterday' is not YYYY-MM-DD HH:MM:SS"
    assert glide(batch) == "2026-03-01 09:00:04"


def add_incidents(fake: FakeServiceNow, count: int, day: str = "2026-03-01") -> list[str]:
    return [
        fake.add(
            "incident",
            number=f"INC{n:07d}",
            state="2",
            opened_at=f"{day} 08:00:00",
            sys_updated_on=f"{day} 09:{n // 120:02d}:{n // 2 % 60:02d}",  # pairs share a second: sys_id breaks ties
        )
        for n in range(count)
    ]


def test_keyset_paging_with_the_filter_anded_and_one_batch_per_page(fake: FakeServiceNow) -> None:
    add_incidents(fake, 7)
    fake.add(
        "incident",
        number="INC-FILTERED",
        state="7",
        opened_at="2026-03-01 08:00:00",
        sys_updated_on="2026-03-01 09:00:01",
    )
    batches = fetch(fake, page_size=3, filter="state=2^ORstate=1")
    assert [len(b.tickets) for b in batches] == [3, 3, 1]
    assert [(b.fetched_so_far, b.total_expected) for b in batches] == [(3, 7), (6, 7), (7, 7)]
    assert sorted(t.key for b in batches for t in b.tickets) == [f"INC{n:07d}" for n in range(7)]
    queries = [r.params["sysparm_query"] for r in fake.table_requests("incident")]
    assert queries[0] == "state=2^ORstate=1^ORDERBYsys_updated_on^ORDERBYsys_id"
    last = batches[0].tickets[-1]
    assert queries[1] == (
        f"state=2^ORstate=1^sys_updated_on>2026-03-01 09:00:01^NQstate=2^ORstate=1"
        f"^sys_updated_on=2026-03-01 09:00:01^sys_id>{last.id}^ORDERBYsys_updated_on^ORDERBYsys_id"
    )
    # Only the first page is counted; the others ask for no count.
    assert [r.params.get("sysparm_no_count") for r in fake.table_requests("incident")] == [None, "true", "true"]
    assert [glide(b) for b in batches] == ["2026-03-01 09:00:01", "2026-03-01 09:00:02", "2026-03-01 09:00:03"]


def test_rows_updated_or_inserted_between_pages_are_neither_lost_nor_repeated(fake: FakeServiceNow) -> None:
    ids = add_incidents(fake, 9)
    inserted: list[str] = []

    def churn(request: Any) -> None:
        if request.table == "incident" and len(fake.table_requests("incident")) == 2:
            # Between page 1 and page 2: a row already read and a row not read yet both change,
            # and a new one arrives. The changed rows move behind the cursor's end.
            fake.update("incident", ids[0], sys_updated_on="2026-03-01 10:00:00", state="6")
            fake.update("incident", ids[8], sys_updated_on="2026-03-01 10:00:01", state="3")
            inserted.append(
                fake.add(
                    "incident",
                    number="INC-NEW",
                    state="1",
                    opened_at="2026-03-01 09:30:00",
                    sys_updated_on="2026-03-01 09:59:59",
                )
            )

    fake.on_request = churn
    batches = fetch(fake, page_size=3)
    yielded = [(t.id, t.updated_at) for b in batches for t in b.tickets]
    assert len(yielded) == len(set(yielded))
    latest = {t.id: t for b in batches for t in b.tickets}
    assert set(latest) == {*ids, *inserted}
    assert {i: latest[i].state for i in (ids[0], ids[8], inserted[0])} == {
        ids[0]: "resolved",
        ids[8]: "on_hold",
        inserted[0]: "open",
    }
    assert sum(1 for i, _ in yielded if i == ids[0]) == 2  # its new version is read again, later
    assert glide(batches[-1]) == "2026-03-01 10:00:01"


@pytest.mark.parametrize(("overlap", "start"), [("1s", "2026-03-01 09:00:00"), ("5m", "2026-03-01 08:55:01")])
def test_an_incremental_fetch_starts_the_overlap_before_the_watermark(
    fake: FakeServiceNow, overlap: str, start: str
) -> None:
    ids = add_incidents(fake, 4)  # 09:00:00 twice, 09:00:01 twice
    add_incidents(fake, 2, day="2026-02-28")  # a day before: outside any overlap
    (first,) = fetch(fake, overlap=overlap)
    assert glide(first) == "2026-03-01 09:00:01"
    fake.update("incident", ids[1], sys_updated_on="2026-03-02 12:00:00", state="6", resolved_at="2026-03-02 12:00:00")
    fake.requests.clear()
    (second,) = fetch(fake, ticket=glide(first), overlap=overlap)
    # Rows of the overlap are read again in keyset order; the changed row comes last.
    assert [t.id for t in second.tickets] == [ids[0], *sorted([ids[2], ids[3]]), ids[1]]
    assert fake.table_requests("incident")[0].params["sysparm_query"] == (
        f"sys_updated_on>={start}^ORDERBYsys_updated_on^ORDERBYsys_id"
    )
    assert glide(second) == "2026-03-02 12:00:00"


def test_a_page_read_inside_the_overlap_never_moves_the_watermark_back(fake: FakeServiceNow) -> None:
    add_incidents(fake, 2)  # both at 09:00:00
    (batch,) = fetch(fake, ticket="2026-03-01 09:03:00")
    assert len(batch.tickets) == 2
    assert glide(batch) == "2026-03-01 09:03:00"
    assert fetch(fake, ticket="2026-03-02 12:00:01") == []


# ----- task_sla -----


def test_task_sla_outcomes_and_first_response(fake: FakeServiceNow) -> None:
    ref = seed_reference_data(fake)

    def incident(number: str) -> str:
        return fake.add(
            "incident",
            number=number,
            state="6",
            opened_at="2026-03-01 08:00:00",
            resolved_at="2026-03-01 12:00:00",
            sys_updated_on="2026-03-01 12:00:00",
            made_sla="true",
        )

    def sla(task: str, target: str, stage: str, breached: str, **times: str) -> None:
        fake.add("task_sla", task=task, sla=ref[target], stage=stage, has_breached=breached, **times)

    met = incident("MET")
    sla(met, "response", "completed", "false", start_time="2026-03-01 08:00:00", end_time="2026-03-01 08:20:00")
    sla(met, "response", "completed", "false", start_time="2026-03-01 08:00:00", end_time="2026-03-01 08:10:00")
    sla(met, "resolution", "completed", "false")
    breached = incident("BREACHED")
    sla(breached, "response", "in_progress", "true")
    sla(breached, "resolution", "completed", "false")
    sla(breached, "resolution", "completed", "true")
    open_ = incident("OPEN")
    sla(open_, "response", "completed", "false", start_time="2026-03-01 08:00:00", duration="1970-01-01 00:45:30")
    sla(open_, "resolution", "in_progress", "false")
    sla(open_, "resolution", "cancelled", "true")
    none = incident("NONE")
    batches = fetch(fake, sla_source="task_sla")
    got = {t.key: (t.sla_response, t.sla_resolution, t.first_response_at) for t in batches[0].tickets}
    assert got == {
        "MET": ("met", "met", at("2026-03-01 08:10:00")),
        "BREACHED": ("breached", "breached", None),
        "OPEN": ("met", "unknown", at("2026-03-01 08:45:30")),
        "NONE": ("unknown", "unknown", None),
    }
    (request,) = fake.table_requests("task_sla")
    assert request.params["sysparm_query"].startswith("taskIN")
    assert set(request.params["sysparm_query"].split("^")[0][6:].split(",")) == {met, breached, open_, none}
    assert "sla.target" in request.params["sysparm_fields"].split(",")


def test_running_task_slas_become_clocks_from_the_utc_planned_end_time(fake: FakeServiceNow) -> None:
    """planned_end_time is displayed in the API user's zone (the fake's is UTC-5 with a 12-hour clock);
    the clock takes the stored UTC value. Paused, breached and two definitions of one target."""
    response = fake.add("contract_sla", name="P1 response 15m", target="response", duration="1970-01-01 00:15:00")
    resolution = fake.add("contract_sla", name="P1 resolution 4h", target="resolution", duration="1970-01-01 04:00:00")
    vip = fake.add("contract_sla", name="VIP resolution 2h", target="resolution", duration="1970-01-01 02:00:00")

    def incident(number: str, state: str = "2") -> str:
        return fake.add(
            "incident", number=number, state=state, opened_at="2026-03-01 08:00:00",
            sys_updated_on="2026-03-01 08:05:00", **({"resolved_at": "2026-03-01 09:00:00"} if state == "6" else {}),
        )  # fmt: skip

    def sla(task: str, definition: str, stage: str, planned_end: str, breached: str = "false") -> None:
        fake.add(
            "task_sla", task=task, sla=definition, stage=stage, has_breached=breached, planned_end_time=planned_end,
            start_time="2026-03-01 08:00:00",
        )  # fmt: skip

    running = incident("RUNNING")
    sla(running, response, "in_progress", "2026-03-01 08:15:00")
    sla(running, resolution, "in_progress", "2026-03-01 12:00:00")
    sla(running, vip, "in_progress", "2026-03-01 10:00:00")  # two definitions apply: the sooner breach is the clock
    late = incident("LATE")
    sla(late, response, "completed", "2026-03-01 08:15:00")  # a completed row is an outcome, not a clock
    sla(late, resolution, "in_progress", "2026-03-01 12:00:00", breached="true")
    waiting = incident("WAITING", state="3")
    sla(waiting, resolution, "paused", "2026-03-01 12:00:00")
    resolved = incident("RESOLVED", state="6")
    sla(resolved, resolution, "in_progress", "2026-03-01 12:00:00")  # not yet completed upstream: still no clock
    batches = fetch(fake, sla_source="task_sla")
    got = {t.key: t.sla_clocks for t in batches[0].tickets}
    assert got == {
        "RUNNING": (
            SlaClock("response", at("2026-03-01 08:15:00"), goal_seconds=900.0),
            SlaClock("resolution", at("2026-03-01 10:00:00"), goal_seconds=7200.0),
        ),
        "LATE": (SlaClock("resolution", at("2026-03-01 12:00:00"), goal_seconds=14400.0, breached=True),),
        "WAITING": (SlaClock("resolution", at("2026-03-01 12:00:00"), paused=True, goal_seconds=14400.0),),
        "RESOLVED": (),
    }
    # With made_sla there is no clock at all.
    assert all(not t.sla_clocks for t in fetch(fake)[0].tickets)


def test_task_sla_lookups_are_chunked_to_keep_urls_short(fake: FakeServiceNow) -> None:
    ids = add_incidents(fake, 230)
    (batch,) = fetch(fake, sla_source="task_sla")
    assert len(batch.tickets) == 230
    in_lists = [r.params["sysparm_query"].split("^")[0][6:].split(",") for r in fake.table_requests("task_sla")]
    assert [len(ids_) for ids_ in in_lists] == [100, 100, 30]
    assert sorted(i for ids_ in in_lists for i in ids_) == sorted(ids)
    assert max(len(r.path) + len(str(r.params)) for r in fake.table_requests("task_sla")) < 4000


# ----- surveys -----


def seed_survey(fake: FakeServiceNow, *, bounds: bool = True) -> dict[str, str]:
    incident = fake.add(
        "incident",
        number="INC0020001",
        state="7",
        opened_at="2026-03-01 08:00:00",
        closed_at="2026-03-02 08:00:00",
        sys_updated_on="2026-03-02 08:00:00",
    )
    bounds_1_10 = {"min": "1", "max": "10"} if bounds else {}
    metrics = {
        "overall": fake.add("asmt_metric", name="overall", question="Overall satisfaction", datatype="scale"),
        "ten": fake.add("asmt_metric", name="recommend", question="", datatype="numericscale", **bounds_1_10),
        "text": fake.add("asmt_metric", name="comment", question="Anything else?", datatype="string"),
        "fixed": fake.add("asmt_metric", name="fixed", question="Was it fixed?", datatype="boolean"),
    }
    done = fake.add(
        "asmt_assessment_instance",
        number="AINST001",
        state="complete",
        taken_on="2026-03-05 16:00:00",
        trigger_table="incident",
        trigger_id=incident,
        metric_type="Customer Satisfaction",
    )
    fake.add(
        "asmt_assessment_instance",
        number="AINST002",
        state="wip",
        taken_on="2026-03-05 17:00:00",
        trigger_table="incident",
        trigger_id=incident,
    )
    fake.add(
        "asmt_assessment_instance",
        number="AINST003",
        state="complete",
        taken_on="2026-03-05 18:00:00",
        trigger_table="change_request",
        trigger_id="",
    )
    for metric, actual in (("overall", "4"), ("ten", "9"), ("text", "-1"), ("fixed", "1")):
        fake.add("asmt_metric_result", instance=done, metric=metrics[metric], actual_value=actual)
    return {"incident": incident, "done": done, **metrics}


def answers(ids: dict[str, str], **values: tuple[float, float, float]) -> tuple[Answer, ...]:
    """Answers as the connector stores them: under the metric's sys_id with its name and question, by id."""
    names = {
        "overall": ("overall", "Overall satisfaction"),
        "ten": ("recommend", None),
        "fixed": ("fixed", "Was it fixed?"),
    }
    found = [Answer(ids[key], *value, name=names[key][0], text=names[key][1]) for key, value in values.items()]
    return tuple(sorted(found, key=lambda answer: answer.question_id))


def test_completed_surveys_with_numeric_answers_linked_to_their_incident(fake: FakeServiceNow) -> None:
    ids = seed_survey(fake)
    surveys = [b for b in fetch(fake) if b.kind == "survey"]
    assert [b.surveys for b in surveys] == [
        (
            SurveyResponse(
                source="sn",
                id=ids["done"],
                submitted_at=at("2026-03-05 16:00:00"),
                answers=answers(ids, overall=(4.0, 1.0, 5.0), fixed=(1.0, 0.0, 1.0), ten=(9.0, 1.0, 10.0)),
                ticket_id=ids["incident"],
                ticket_key="INC0020001",
            ),
        )
    ]
    assert glide(surveys[0]) == "2026-03-05 16:00:00"
    (request,) = fake.table_requests("asmt_assessment_instance")
    assert request.params["sysparm_query"] == "state=complete^trigger_table=incident^ORDERBYtaken_on^ORDERBYsys_id"
    assert fake.table_requests("asmt_metric_result")[0].params["sysparm_query"] == (
        f"instanceIN{ids['done']}^ORDERBYsys_id"
    )


def test_without_scale_bounds_answers_default_to_one_to_five_and_outliers_are_skipped() -> None:
    with FakeServiceNow(metric_bounds=False) as fake:
        ids = seed_survey(fake, bounds=False)
        (batch,) = [b for b in fetch(fake) if b.kind == "survey"]
    (survey,) = batch.surveys
    assert survey.answers == answers(ids, overall=(4.0, 1.0, 5.0), fixed=(1.0, 0.0, 1.0))
    results = fake.tables["asmt_metric_result"]
    nine = next(k for k, r in results.items() if r["metric"] == ids["ten"])
    assert batch.skipped == (
        SkippedRecord("survey", f"{ids['done']}/{nine}", "answer_out_of_scale", "'recommend': 9 outside 1..5"),
    )


def test_a_survey_arriving_days_after_its_ticket_is_fetched_from_the_survey_watermark(fake: FakeServiceNow) -> None:
    ids = seed_survey(fake)
    first = fetch(fake)
    ticket_mark = next(glide(b) for b in first if b.kind == "ticket")
    survey_mark = next(glide(b) for b in first if b.kind == "survey")
    late = fake.add(
        "asmt_assessment_instance",
        number="AINST009",
        state="complete",
        taken_on="2026-03-09 10:00:00",
        trigger_table="incident",
        trigger_id=ids["incident"],
    )
    fake.add("asmt_metric_result", instance=late, metric=ids["overall"], actual_value="2")
    empty = fake.add(
        "asmt_assessment_instance",
        number="AINST010",
        state="complete",
        taken_on="2026-03-09 11:00:00",
        trigger_table="incident",
        trigger_id=ids["incident"],
    )
    fake.add("asmt_metric_result", instance=empty, metric=ids["text"], actual_value="-1", string_value="meh")
    second = fetch(fake, ticket=ticket_mark, survey=survey_mark)
    tickets = [t.key for b in second if b.kind == "ticket" for t in b.tickets]
    assert tickets == ["INC0020001"]  # the boundary second only
    (batch,) = [b for b in second if b.kind == "survey"]
    assert [(s.id, s.answers) for s in batch.surveys] == [
        (ids["done"], answers(ids, overall=(4.0, 1.0, 5.0), fixed=(1.0, 0.0, 1.0), ten=(9.0, 1.0, 10.0))),
        (late, answers(ids, overall=(2.0, 1.0, 5.0))),
    ]
    assert [(s.record_id, s.reason) for s in batch.skipped] == [(empty, "no_answers")]
    assert glide(batch) == "2026-03-09 11:00:00"


def test_surveys_disabled_makes_no_assessment_requests(fake: FakeServiceNow) -> None:
    seed_survey(fake)
    assert [b.kind for b in fetch(fake, surveys_enabled=False)] == ["ticket"]
    assert {r.table for r in fake.requests} == {"incident"}


# ----- lookups: get by sys_id, id-only sweeps (the primitives of the backfill and reconcile plans) -----


def test_get_reads_incidents_by_sys_id_in_chunks_and_ignores_the_missing(fake: FakeServiceNow) -> None:
    ids = add_incidents(fake, 230)
    wanted = [*ids[5:210], "0" * 32, ids[5]]  # one that does not exist, one asked twice
    sn = connector(fake, sla_source="task_sla")
    try:
        page = sn.get("ticket", wanted)
    finally:
        sn.close()
    assert sorted(t.id for t in page.tickets) == sorted(ids[5:210])
    assert page.tickets[0] == Ticket(
        source="sn", id=page.tickets[0].id, key=page.tickets[0].key, opened_at=at("2026-03-01 08:00:00"),
        state="open", updated_at=page.tickets[0].updated_at,
    )  # fmt: skip
    lookups = [r.params for r in fake.table_requests("incident")]
    assert [len(p["sysparm_query"].split("^")[0].removeprefix("sys_idIN").split(",")) for p in lookups] == [100, 100, 6]
    assert all(p["sysparm_query"].endswith("^ORDERBYsys_id") for p in lookups)
    # The SLA outcomes come with them, as in a scan.
    assert len(fake.table_requests("task_sla")) == 3


def test_ids_sweeps_sys_ids_alone_in_keyset_pages(fake: FakeServiceNow) -> None:
    ids = add_incidents(fake, 7)
    fake.add(
        "incident", number="INC9", state="2", opened_at="2026-02-01 08:00:00", sys_updated_on="2026-02-01 09:00:00"
    )
    sn = connector(fake, page_size=3)
    try:
        pages = list(sn.ids("ticket", at("2026-03-01 00:00:00")))
    finally:
        sn.close()
    assert [len(p) for p in pages] == [3, 3, 1]
    assert sorted(i for p in pages for i in p) == sorted(ids)
    requests = fake.table_requests("incident")
    assert {r.params["sysparm_fields"] for r in requests} == {"sys_id,sys_updated_on"}
    assert requests[0].params["sysparm_query"] == (
        "sys_updated_on>=2026-03-01 00:00:00^ORDERBYsys_updated_on^ORDERBYsys_id"
    )


# ----- customer segments and comments (issue 28) -----


def seed_customers(fake: FakeServiceNow) -> None:
    """Two incidents called in by users of two departments, companies and sites; one without a caller."""
    finance = fake.add("cmn_department", name="Finance")
    warehouse = fake.add("cmn_department", name="Warehouse")
    acme = fake.add("core_company", name="ACME Retail")
    lyon = fake.add("cmn_location", name="Lyon DC")
    ann = fake.add("sys_user", name="Ann", user_name="ann", department=finance)
    bob = fake.add("sys_user", name="Bob", user_name="bob", department=warehouse)
    for n, (caller, company, location) in enumerate(((ann, acme, ""), (bob, acme, lyon), ("", "", ""))):
        add_incident(fake, f"INC00300{n}", f"2026-03-0{n + 1} 10:00:00", caller_id=caller, company=company,
                     location=location)  # fmt: skip


SEGMENTS = {"department": "caller_id.department.name", "company": "company.name", "site": "location.name"}


def test_segments_are_dot_walked_in_the_incidents_own_request(fake: FakeServiceNow) -> None:
    seed_customers(fake)
    tickets = [t for b in fetch(fake, segments=SEGMENTS) if b.kind == "ticket" for t in b.tickets]
    assert {t.key: t.segments for t in tickets} == {
        "INC003000": (Segment("company", "ACME Retail"), Segment("department", "Finance")),
        "INC003001": (
            Segment("company", "ACME Retail"), Segment("department", "Warehouse"), Segment("site", "Lyon DC"),
        ),
        "INC003002": (),
    }  # fmt: skip
    [request] = fake.table_requests("incident")
    fields = request.params["sysparm_fields"].split(",")
    assert fields[-3:] == ["caller_id.department.name", "company.name", "location.name"]
    assert request.params["sysparm_display_value"] == "all"


def test_segments_cost_no_request(fake: FakeServiceNow) -> None:
    seed_customers(fake)
    seed_survey(fake)
    fetch(fake, sla_source="task_sla")
    without = [(r.table, r.params.get("sysparm_query")) for r in fake.requests]
    fake.requests.clear()
    fetch(fake, sla_source="task_sla", segments=SEGMENTS)
    assert [(r.table, r.params.get("sysparm_query")) for r in fake.requests] == without
    # incident, task_sla, asmt_assessment_instance, asmt_metric_result, asmt_metric: the same five with segments
    assert [table for table, _query in without] == [
        "incident", "task_sla", "asmt_assessment_instance", "asmt_metric_result", "asmt_metric",
    ]  # fmt: skip


def test_a_survey_with_a_written_answer_is_commented_and_its_text_is_not_kept(fake: FakeServiceNow) -> None:
    ids = seed_survey(fake)
    text = next(k for k, r in fake.tables["asmt_metric_result"].items() if r["metric"] == ids["text"])
    fake.update("asmt_metric_result", text, string_value="The VPN drops every hour. Nobody called back.")
    [survey] = [s for b in fetch(fake) if b.kind == "survey" for s in b.surveys]
    assert survey.commented
    assert "VPN" not in repr(survey)
    assert fake.table_requests("asmt_metric_result")[0].params["sysparm_fields"].endswith("string_value")
    fake.update("asmt_metric_result", text, string_value="  ")
    [survey] = [s for b in fetch(fake) if b.kind == "survey" for s in b.surveys]
    assert not survey.commented
