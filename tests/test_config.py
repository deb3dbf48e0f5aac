"""Config validation: every bad config names the path of its problem; secrets stay hidden."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest

from itsm_exporter.config import (
    DEFAULT_BUCKETS,
    ConfigError,
    load_config,
    parse_config,
    parse_duration,
    warn_insecure_sources,
)
from itsm_exporter.connectors.csv.config import CsvSource
from itsm_exporter.connectors.servicenow.config import ServiceNowSource

ROOT = Path(__file__).resolve().parent.parent


def servicenow(**overrides: Any) -> dict[str, Any]:
    source = {
        "name": "sn",
        "kind": "servicenow",
        "url": "https://acme.service-now.com",
        "username": "itsm-exporter",
        "password": "hunter2-distinctive",
    }
    source.update(overrides)
    return source


def calendar(**overrides: Any) -> dict[str, Any]:
    return {"timezone": "Europe/Berlin", "hours": {"mon-fri": ["09:00-17:00"]}, **overrides}


def config_with(*sources: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"sources": list(sources), **top}


def problems_of(raw: Any, *, check_files: bool = False) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, check_files=check_files)
    return caught.value.problems


def test_example_config_is_valid_and_keeps_the_contract_keys() -> None:
    config = load_config(ROOT / "config.example.yaml")
    assert config.listen == "0.0.0.0:8837"
    assert [w.seconds for w in config.windows] == [7 * 86400, 30 * 86400]
    assert config.group_by == ["group", "department"]
    assert config.segment_labels == ("department",)
    assert (config.max_label_values, config.min_responses) == (50, 10)
    assert (config.targets.sla, config.targets.satisfaction) == (0.90, 0.80)
    assert [(s.name, s.kind, s.enabled) for s in config.sources] == [
        ("demo", "demo", True),
        ("servicenow-prod", "servicenow", False),
        ("jsm", "jira", False),
    ]


def test_defaults() -> None:
    config = parse_config(config_with({"name": "d", "kind": "demo"}), check_files=False)
    assert config.refresh_interval.seconds == 300
    assert config.staleness_seconds == 900
    assert config.buckets == list(DEFAULT_BUCKETS)
    assert str(config.store.path) == "itsm-exporter.db"
    assert [str(w) for w in config.windows] == ["7d", "30d"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("7d", 604800), ("2w", 1209600), ("500ms", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "m5", "5 m", "1.5h", "5x", "0s", "-5m", "5m3"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


BAD_CONFIGS: list[tuple[str, Any, str]] = [
    ("not a mapping", ["a"], "(top level): the configuration must be a mapping of keys to values"),
    ("no sources", {}, "sources: Field required"),
    ("empty sources", {"sources": []}, "sources: List should have at least 1 item after validation, not 0"),
    ("unknown top key", config_with({"name": "d", "kind": "demo"}, scrape=1), "scrape: unknown key"),
    (
        "unknown source key",
        config_with(servicenow(pasword="x")),
        "sources[0].pasword: unknown key; did you mean password?",
    ),
    (
        "unknown kind",
        config_with({"name": "x", "kind": "freshdesk"}),
        "sources[0].kind: not a known source kind: one of 'demo', 'csv', 'servicenow', 'jira', 'zendesk'",
    ),
    (
        "bad duration",
        config_with({"name": "d", "kind": "demo"}, refresh_interval="5 minutes"),
        "refresh_interval: not a duration such as 30s, 5m, 1h or 7d",
    ),
    (
        "bad window",
        config_with({"name": "d", "kind": "demo"}, windows=["7d", "month"]),
        "windows[1]: not a duration such as 30s, 5m, 1h or 7d",
    ),
    (
        "duplicate windows",
        config_with({"name": "d", "kind": "demo"}, windows=["7d", "7d"]),
        "windows: values must be unique",
    ),
    (
        "bad group_by",
        config_with({"name": "d", "kind": "demo"}, group_by=["assignee"]),
        "group_by[0]: 'assignee' is neither a built-in label (group, service, priority, channel) nor a segment of a "
        "source (none has segments:)",
    ),
    (
        "group_by names a segment no source has",
        config_with(
            {"name": "d", "kind": "demo", "segments": {"department": "department"}},
            group_by=["group", "department", "region"],
        ),
        "group_by[2]: 'region' is neither a built-in label (group, service, priority, channel) nor a segment of a "
        "source (segments: department)",
    ),
    (
        "segment not a label name",
        config_with({"name": "d", "kind": "demo", "segments": {"cost-center": "x"}}),
        "sources[0].segments: segment 'cost-center' is not a Prometheus label name: letters, digits and _, not "
        "starting with a digit or __",
    ),
    (
        "segment reserved by Prometheus",
        config_with({"name": "d", "kind": "demo", "segments": {"__name__": "x"}}),
        "sources[0].segments: segment '__name__' is not a Prometheus label name: letters, digits and _, not "
        "starting with a digit or __",
    ),
    (
        "segment clashes with a built-in label",
        config_with({"name": "d", "kind": "demo", "segments": {"window": "x"}}),
        "sources[0].segments: segment 'window' clashes with the built-in label window: choose another name",
    ),
    (
        "segment without a field",
        config_with({"name": "d", "kind": "demo", "segments": {"department": " "}}),
        "sources[0].segments: segment 'department' names no upstream field",
    ),
    (
        "two segments read one field",
        config_with(
            servicenow(segments={"department": "caller_id.department.name", "dept": "caller_id.department.NAME"})
        ),
        "sources[0].segments: segments department and dept read the same upstream field: keep one",
    ),
    (
        "wrong type",
        config_with({"name": "d", "kind": "demo"}, max_label_values="many"),
        "max_label_values: Input should be a valid integer, unable to parse string as an integer",
    ),
    (
        "target above 1",
        config_with({"name": "d", "kind": "demo"}, targets={"sla": 1.5}),
        "targets.sla: Input should be less than or equal to 1",
    ),
    (
        "bad listen",
        config_with({"name": "d", "kind": "demo"}, listen="localhost"),
        "listen: not HOST:PORT, e.g. 0.0.0.0:8837",
    ),
    (
        "listen port out of range",
        config_with({"name": "d", "kind": "demo"}, listen="127.0.0.1:99999"),
        "listen: not HOST:PORT, e.g. 0.0.0.0:8837",
    ),
    (
        "unsorted buckets",
        config_with({"name": "d", "kind": "demo"}, buckets=[60, 30]),
        "buckets: buckets must be positive and strictly increasing (+Inf is implied)",
    ),
    (
        "bad url",
        config_with(servicenow(url="acme.service-now.com")),
        "sources[0].url: not an http:// or https:// URL such as https://acme.service-now.com",
    ),
    ("missing password", config_with(servicenow(password=None)), "sources[0]: password or password_file is required"),
    (
        "password twice",
        config_with(servicenow(password_file="/run/secrets/pw")),
        "sources[0]: set password or password_file, not both",
    ),
    (
        "half oauth",
        config_with(servicenow(client_id="abc")),
        "sources[0]: OAuth needs both client_id and client_secret (or client_secret_file)",
    ),
    (
        "jira without secret",
        config_with({"name": "j", "kind": "jira", "url": "https://x.atlassian.net", "username": "a@b.c"}),
        "sources[0]: token, token_file, password or password_file is required",
    ),
    (
        "duplicate names",
        config_with({"name": "d", "kind": "demo"}, {"name": "d", "kind": "demo"}),
        "(top level): source names must be unique: d",
    ),
    (
        "csv ticket_source unknown",
        config_with({"name": "c", "kind": "csv", "path": "x.csv", "ticket_source": "nope"}),
        "(top level): source c: ticket_source 'nope' is not another configured source",
    ),
    (
        "question mapped twice",
        config_with({"name": "d", "kind": "demo", "surveys": {"overall": ["Q"], "dimensions": {"empathy": ["Q"]}}}),
        "sources[0].surveys: question 'Q' is mapped twice: overall and dimensions.empathy",
    ),
    (
        "unknown dimension",
        config_with({"name": "d", "kind": "demo", "surveys": {"dimensions": {"speed": ["Q"]}}}),
        "sources[0].surveys.dimensions.speed.[key]: Input should be 'reliability', 'assurance', 'tangibles', "
        "'empathy' or 'responsiveness'",
    ),
    (
        "unknown time zone",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(timezone="Europe/Berlln")}),
        "calendars.desk.timezone: 'Europe/Berlln' is not an IANA time zone such as Europe/Berlin or UTC",
    ),
    (
        "overlapping spans",
        config_with(
            {"name": "d", "kind": "demo"}, calendars={"desk": calendar(hours={"mon": ["09:00-13:00", "12:00-17:00"]})}
        ),
        "calendars.desk.hours: mon 09:00-13:00 overlaps mon 12:00-17:00",
    ),
    (
        "span across midnight overlaps the next day",
        config_with(
            {"name": "d", "kind": "demo"},
            calendars={"desk": calendar(hours={"sun": ["22:00-06:00"], "mon-fri": ["05:00-09:00"]})},
        ),
        "calendars.desk.hours: sun 22:00-06:00 overlaps mon 05:00-09:00",
    ),
    (
        "empty week",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(hours={"mon-fri": []})}),
        "calendars.desk.hours: no working span in the week",
    ),
    (
        "bad span",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(hours={"mon": ["9-17"]})}),
        "calendars.desk.hours.mon[0]: not a span such as 09:00-17:00 (22:00-06:00 crosses midnight)",
    ),
    (
        "empty span",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(hours={"mon": ["09:00-09:00"]})}),
        "calendars.desk.hours.mon[0]: an empty span: write 00:00-24:00 for a whole day",
    ),
    (
        "24:00 starting a span",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(hours={"mon": ["24:00-02:00"]})}),
        "calendars.desk.hours.mon[0]: not a span such as 09:00-17:00 (24:00 may only end a span)",
    ),
    (
        "unknown day",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(hours={"monday": ["09:00-17:00"]})}),
        "calendars.desk.hours: 'monday' is not a day or a range of days such as mon or mon-fri",
    ),
    (
        "day given twice",
        config_with(
            {"name": "d", "kind": "demo"},
            calendars={"desk": calendar(hours={"mon-fri": ["09:00-17:00"], "fri": ["18:00-20:00"]})},
        ),
        "calendars.desk.hours: fri is given twice: in mon-fri and in fri",
    ),
    (
        "unknown holiday country",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(holidays={"country": "XX"})}),
        "calendars.desk.holidays.country: 'XX' is not a country the holidays package knows "
        "(ISO 3166-1 alpha-2, e.g. DE)",
    ),
    (
        "unknown holiday subdivision",
        config_with(
            {"name": "d", "kind": "demo"}, calendars={"desk": calendar(holidays={"country": "AT", "subdivision": "BY"})}
        ),
        "calendars.desk.holidays.subdivision: 'BY' is not a subdivision of AT: one of 1, 2, 3, 4, 5, 6, 7, 8, 9",
    ),
    (
        "subdivision without a country",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(holidays={"subdivision": "BY"})}),
        "calendars.desk.holidays.subdivision: a subdivision needs its country",
    ),
    (
        "bad holiday date",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar(holidays={"dates": ["2025-12-32"]})}),
        "calendars.desk.holidays.dates[0]: Input should be a valid date or datetime, "
        "day value is outside expected range",
    ),
    (
        "unknown calendar at the top level",
        config_with({"name": "d", "kind": "demo"}, calendars={"desk": calendar()}, calendar="office"),
        "calendar: no calendar named 'office' in calendars (defined: desk)",
    ),
    (
        "unknown calendar of a source",
        config_with({"name": "d", "kind": "demo", "calendar": "office"}),
        "sources[0].calendar: no calendar named 'office' in calendars (defined: none)",
    ),
    (
        "unknown calendar of a group",
        config_with(
            {"name": "d", "kind": "demo", "calendar_by_group": {"Network Operations": "noc"}},
            calendars={"desk": calendar()},
        ),
        "sources[0].calendar_by_group.Network Operations: no calendar named 'noc' in calendars (defined: desk)",
    ),
    (
        "bad source name",
        config_with({"name": "my source", "kind": "demo"}),
        "sources[0].name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'",
    ),
]


@pytest.mark.parametrize(("case", "raw", "message"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_names_the_problem(case: str, raw: Any, message: str) -> None:
    assert message in problems_of(raw)


def test_every_problem_is_reported_at_once() -> None:
    problems = problems_of(config_with(servicenow(pasword="x"), refresh_interval="soon", max_label_values=0))
    assert problems == [
        "refresh_interval: not a duration such as 30s, 5m, 1h or 7d",
        "max_label_values: Input should be greater than or equal to 1",
        "sources[0].pasword: unknown key; did you mean password?",
    ]


def test_env_secret_is_expanded_and_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SN_PASSWORD", "s3cr3t-from-env")
    config = parse_config(config_with(servicenow(password="${SN_PASSWORD}")), check_files=False)
    source = config.sources[0]
    assert isinstance(source, ServiceNowSource)
    assert source.password is not None and source.password.get_secret_value() == "s3cr3t-from-env"
    assert "s3cr3t-from-env" not in repr(config)
    assert "s3cr3t-from-env" not in str(config.model_dump())


def test_unset_env_variable_names_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SN_PASSWORD", raising=False)
    assert problems_of(config_with(servicenow(password="${SN_PASSWORD}"))) == [
        "sources[0].password: environment variable SN_PASSWORD is not set"
    ]


def test_disabled_source_needs_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SN_PASSWORD", raising=False)
    config = parse_config(config_with(servicenow(password="${SN_PASSWORD}", enabled=False)), check_files=False)
    assert config.enabled_sources == []


def test_bad_value_is_not_echoed_in_errors() -> None:
    problems = problems_of(config_with(servicenow(password=["hunter2-distinctive"])))
    assert problems == ["sources[0].password: Input should be a valid string"]
    assert all("hunter2" not in p for p in problems)


def test_files_are_checked(tmp_path: Path) -> None:
    raw = config_with(
        servicenow(password=None, password_file=str(tmp_path / "missing")),
        {"name": "c", "kind": "csv", "path": str(tmp_path / "none.csv")},
        store={"path": str(tmp_path / "no-such-dir" / "x.db")},
    )
    assert problems_of(raw, check_files=True) == [
        f"sources[0].password_file: {tmp_path / 'missing'} is not a readable file",
        f"sources[1].path: {tmp_path / 'none.csv'} does not exist",
        f"store.path: directory {tmp_path / 'no-such-dir'} does not exist",
    ]


def test_csv_source(tmp_path: Path) -> None:
    (tmp_path / "s.csv").write_text("ticket,submitted_at\n")
    config = parse_config(
        config_with(servicenow(), {"name": "c", "kind": "csv", "path": str(tmp_path / "s.csv"), "ticket_source": "sn"}),
        check_files=True,
    )
    source = config.source("c")
    assert isinstance(source, CsvSource) and source.ticket_source == "sn"


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("sources:\n  - name: [demo\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems[0].startswith(f"{path}: invalid YAML at line 3")


def test_missing_file() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config("/nonexistent/itsm.yaml")
    assert caught.value.problems == ["/nonexistent/itsm.yaml: cannot read: No such file or directory"]


def test_tls_verification_is_on_by_default_and_turning_it_off_warns(caplog: pytest.LogCaptureFixture) -> None:
    secure = parse_config(config_with(servicenow()), check_files=False)
    insecure = parse_config(
        config_with(
            servicenow(),
            servicenow(name="lab", verify_tls=False),
            servicenow(name="off", verify_tls=False, enabled=False),
        ),
        check_files=False,
    )
    logger = logging.getLogger("test-tls")
    with caplog.at_level(logging.WARNING, logger="test-tls"):
        assert warn_insecure_sources(secure, logger) == []
        assert caplog.records == []
        assert warn_insecure_sources(insecure, logger) == ["lab"]
    assert [(r.levelno, r.getMessage(), getattr(r, "source", None)) for r in caplog.records] == [
        (
            logging.WARNING,
            "TLS certificate verification is off for this source: its credentials can be intercepted",
            "lab",
        )
    ]


def test_one_question_mapped_twice_is_refused_whatever_its_case_or_spacing() -> None:
    from itsm_exporter.config import ConfigError

    raw = {"sources": [{"name": "sn", "kind": "demo", "surveys": {
        "overall": ["Overall satisfaction"], "dimensions": {"empathy": ["overall  SATISFACTION"]},
    }}]}  # fmt: skip
    with pytest.raises(ConfigError) as error:
        parse_config(raw, check_files=False)
    assert error.value.problems == [
        "sources[0].surveys: question 'overall  SATISFACTION' is mapped twice: overall and dimensions.empathy"
    ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (
            config_with({"name": "d", "kind": "demo"}, refresh_intervall="5m"),
            "refresh_intervall: unknown key; did you mean refresh_interval?",
        ),
        (
            config_with({"name": "d", "kind": "demo"}, store={"paht": "x.db"}),
            "store.paht: unknown key; did you mean path?",
        ),
        (
            config_with({"name": "d", "kind": "demo"}, targets={"first_responce": "5m"}),
            "targets.first_responce: unknown key; did you mean first_response?",
        ),
        (config_with({"name": "d", "kind": "demo", "seeed": 1}), "sources[0].seeed: unknown key; did you mean seed?"),
        (
            config_with({"name": "d", "kind": "demo", "surveys": {"overal": ["Q"]}}),
            "sources[0].surveys.overal: unknown key; did you mean overall?",
        ),
        (
            config_with({"name": "j", "kind": "jira", "url": "https://x.atlassian.net", "token": "t", "sla_field": {}}),
            "sources[0].sla_field: unknown key; did you mean sla_fields?",
        ),
        (config_with(servicenow(tabel="incident")), "sources[0].tabel: unknown key; did you mean table?"),
        (config_with({"name": "d", "kind": "demo"}, zzzz=1), "zzzz: unknown key"),
    ],
)
def test_a_misspelt_key_gets_the_closest_known_key_of_its_block(raw: Any, problem: str) -> None:
    assert problems_of(raw) == [problem]


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (5, "targets.first_response: not a duration such as 30s, 5m, 1h or 7d: a number needs a unit"),
        (1.5, "targets.first_response: not a duration such as 30s, 5m, 1h or 7d: a number needs a unit"),
        (["5m"], "targets.first_response: not a duration such as 30s, 5m, 1h or 7d"),
        (True, "targets.first_response: not a duration such as 30s, 5m, 1h or 7d"),
        ("5 minutes", "targets.first_response: not a duration such as 30s, 5m, 1h or 7d"),
    ],
)
def test_a_duration_that_is_not_a_string_gets_the_duration_message(value: Any, problem: str) -> None:
    assert problems_of(config_with({"name": "d", "kind": "demo"}, targets={"first_response": value})) == [problem]


@pytest.mark.parametrize(
    ("source", "where_it_goes"),
    [
        (servicenow(url="http://u:SeCrEt-URL-777@127.0.0.1:47071"), "username and password (or password_file)"),
        (servicenow(url="https://SeCrEt-URL-777@acme.service-now.com"), "username and password (or password_file)"),
        (
            {"name": "j", "kind": "jira", "url": "https://bot:SeCrEt-URL-777@x.atlassian.net", "token": "t"},
            "username and token (or token_file)",
        ),
    ],
)
def test_a_url_with_credentials_is_refused_without_quoting_them(source: dict[str, Any], where_it_goes: str) -> None:
    assert problems_of(config_with(source)) == [
        f"sources[0].url: holds a user name or password: remove it from the URL and set {where_it_goes} instead"
    ]


@pytest.mark.parametrize("url", ["acme.service-now.com", "ftp://acme", "https://", "https://acme:99999", "http://a b"])
def test_a_url_that_is_not_http_names_an_example_not_a_regex(url: str) -> None:
    assert problems_of(config_with(servicenow(url=url))) == [
        "sources[0].url: not an http:// or https:// URL such as https://acme.service-now.com"
    ]


def test_a_key_set_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(
        "refresh_interval: 5m\n"
        "sources:\n"
        "  - name: demo\n"
        "    kind: demo\n"
        "    surveys: {overall: [A], overall: [B]}\n"
        "refresh_interval: 1m\n"
        "defaults: &d {seed: 1}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.problems == [
        "sources[0].surveys.overall: set twice, at lines 5 and 5",
        "refresh_interval: set twice, at lines 1 and 6",
    ]


def test_yaml_merge_keys_are_not_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text("sources:\n  - &demo {name: a, kind: demo}\n  - {<<: *demo, name: b}\n", encoding="utf-8")
    assert [s.name for s in load_config(path, check_files=False).sources] == ["a", "b"]


def store_problems(tmp_path: Path, store: Path) -> list[str]:
    try:
        parse_config(config_with({"name": "d", "kind": "demo"}, store={"path": str(store)}), check_files=True)
    except ConfigError as error:
        return error.problems
    return []


def test_a_store_under_a_file_says_it_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "hostname").write_text("box\n")
    assert store_problems(tmp_path, tmp_path / "hostname" / "itsm.db") == [
        f"store.path: {tmp_path / 'hostname'} is a file, not a directory"
    ]
    assert store_problems(tmp_path, tmp_path / "hostname" / "sub" / "itsm.db") == [
        f"store.path: directory {tmp_path / 'hostname' / 'sub'} does not exist ({tmp_path / 'hostname'} is a file)"
    ]


def test_a_store_path_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    assert store_problems(tmp_path, tmp_path) == [
        f"store.path: {tmp_path} is a directory: name a file in it, such as {tmp_path / 'itsm-exporter.db'}"
    ]


def test_a_store_that_is_not_sqlite_or_not_ours_is_refused(tmp_path: Path) -> None:
    import sqlite3

    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    assert store_problems(tmp_path, text) == [
        f"store.path: {text} is not an SQLite file: point store.path at an itsm-exporter store or a new file"
    ]
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    assert store_problems(tmp_path, other) == [
        f"store.path: {other} is an SQLite database of another application: point store.path at a new file"
    ]


def test_a_new_empty_or_itsm_store_passes(tmp_path: Path) -> None:
    import sqlite3

    from itsm_exporter.config import STORE_APPLICATION_ID
    from itsm_exporter.store import APPLICATION_ID, Store

    assert APPLICATION_ID.to_bytes(4, "big") == STORE_APPLICATION_ID
    assert store_problems(tmp_path, tmp_path / "new.db") == []
    (tmp_path / "empty.db").write_bytes(b"")
    assert store_problems(tmp_path, tmp_path / "empty.db") == []
    with sqlite3.connect(tmp_path / "blank.db") as db:
        db.execute("PRAGMA user_version = 0")
        db.execute("VACUUM")  # a header, no table: Store takes it
    db.close()
    assert store_problems(tmp_path, tmp_path / "blank.db") == []
    Store(tmp_path / "ours.db").close()
    assert store_problems(tmp_path, tmp_path / "ours.db") == []


def test_a_store_that_cannot_be_written_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.access is the check itself; it is answered here because the suite may run as root, who may write anything."""
    import itsm_exporter.config as config_module
    from itsm_exporter.store import Store

    Store(tmp_path / "ours.db").close()
    read_only = {tmp_path / "ours.db"}
    monkeypatch.setattr(config_module.os, "access", lambda path, mode: not (mode & os.W_OK and Path(path) in read_only))
    assert store_problems(tmp_path, tmp_path / "ours.db") == [f"store.path: {tmp_path / 'ours.db'} is not writable"]
    read_only = {tmp_path}
    assert store_problems(tmp_path, tmp_path / "ours.db") == [f"store.path: directory {tmp_path} is not writable"]
    assert store_problems(tmp_path, tmp_path / "new.db") == [f"store.path: directory {tmp_path} is not writable"]


@pytest.mark.parametrize(
    ("url", "warned"),
    [
        ("http://sn.example.com", True),
        ("http://10.1.2.3:8080", True),
        ("https://sn.example.com", False),
        ("http://127.0.0.1:47071", False),
        ("http://localhost:8080", False),
        ("http://[::1]:8080", False),
    ],
)
def test_credentials_over_plain_http_to_another_machine_are_warned(
    url: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config(config_with(servicenow(url=url)), check_files=False)
    logger = logging.getLogger("test-http")
    with caplog.at_level(logging.WARNING, logger="test-http"):
        assert warn_insecure_sources(config, logger) == (["sn"] if warned else [])
    assert [(r.getMessage(), getattr(r, "source", None)) for r in caplog.records] == (
        [
            (
                "this source sends its credentials over plain http:// to another machine: "
                "anyone on the way can read them; use https://",
                "sn",
            )
        ]
        if warned
        else []
    )


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "source sn: http://u:SeCrEt@127.0.0.1:47071 unreachable",
            "source sn: http://u:xxxxx@127.0.0.1:47071 unreachable",
        ),
        ("https://SeCrEt-token@x.atlassian.net/rest", "https://xxxxx@x.atlassian.net/rest"),
        (
            "a https://u:p@ss:SeCrEt@host/x?q=a@b and http://plain.host/",
            "a https://u:xxxxx@host/x?q=a@b and http://plain.host/",
        ),
        ("mail bot@acme.com at https://acme.atlassian.net", "mail bot@acme.com at https://acme.atlassian.net"),
    ],
)
def test_urls_are_printed_without_their_password(text: str, shown: str) -> None:
    from itsm_exporter.config import redact_urls

    assert redact_urls(text) == shown


@pytest.mark.parametrize("built_in", ["source", "group", "service", "priority", "channel", "window", "sla", "outcome",
                                      "state", "dimension", "objective", "role", "le", "segment"])  # fmt: skip
def test_no_segment_takes_the_name_of_a_built_in_label(built_in: str) -> None:
    [problem] = problems_of(config_with({"name": "d", "kind": "demo", "segments": {built_in: "x"}}))
    assert (
        problem == f"sources[0].segments: segment {built_in!r} clashes with the built-in label {built_in}: choose "
        "another name"
    )


def test_segments_are_grouping_labels_every_source_may_define() -> None:
    config = parse_config(
        config_with(
            servicenow(segments={"department": "caller_id.department.name", "company": "company.name"}),
            {"name": "d", "kind": "demo", "segments": {"department": "department"}},
            group_by=["group", "department", "company"],
        ),
        check_files=False,
    )
    assert config.group_by == ["group", "department", "company"]
    assert config.segment_labels == ("department", "company")
    assert config.sources[0].segments == {"department": "caller_id.department.name", "company": "company.name"}
    assert parse_config(config_with({"name": "d", "kind": "demo"}), check_files=False).sources[0].segments == {}


def test_calendars_per_config_source_and_group() -> None:
    raw = config_with(
        {"name": "sn", "kind": "demo", "calendar_by_group": {"Network Operations": "noc"}},
        {"name": "jsm", "kind": "demo", "calendar": "noc"},
        calendar="desk",
        calendars={
            "desk": calendar(
                hours={"mon-thu": ["09:00-12:00", "13:00-17:00"], "fri": ["09:00-15:00"], "sun": ["22:00-06:00"]},
                holidays={"country": "DE", "subdivision": "BY", "dates": ["2025-12-24"]},
            ),
            "noc": {"timezone": "UTC", "hours": {"mon-sun": ["00:00-24:00"]}},
        },
    )
    config = parse_config(raw, check_files=False)
    desk, noc = config.calendars["desk"], config.calendars["noc"]
    assert [str(span) for span in desk.spans] == [
        "mon 09:00-12:00", "mon 13:00-17:00", "tue 09:00-12:00", "tue 13:00-17:00", "wed 09:00-12:00",
        "wed 13:00-17:00", "thu 09:00-12:00", "thu 13:00-17:00", "fri 09:00-15:00", "sun 22:00-06:00",
    ]  # fmt: skip
    assert desk.spans[-1].end == 30 * 60  # crosses midnight: 06:00 on the next day
    assert [str(span) for span in noc.spans] == [
        f"{day} 00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    ]
    assert str(desk.holidays.dates[0]) == "2025-12-24"
    assert [config.calendar_of(source) for source in config.sources] == ["desk", "noc"]
    assert config.sources[0].calendar_by_group == {"Network Operations": "noc"}


def test_ranges_of_days_wrap_around_the_week() -> None:
    raw = config_with(
        {"name": "d", "kind": "demo"}, calendars={"weekend": calendar(hours={"fri-mon": ["10:00-14:00"]})}
    )
    spans = parse_config(raw, check_files=False).calendars["weekend"].spans
    assert [span.weekday for span in spans] == [0, 4, 5, 6]


def test_no_calendar_by_default() -> None:
    config = parse_config(config_with({"name": "d", "kind": "demo"}), check_files=False)
    assert (config.calendars, config.calendar, config.calendar_of(config.sources[0])) == ({}, None, None)
