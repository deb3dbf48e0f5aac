"""Config validation: every bad config names the path of its problem; secrets stay hidden."""

from __future__ import annotations

import logging
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
    assert config.group_by == ["group"]
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
    ("unknown top key", config_with({"name": "d", "kind": "demo"}, scrape=1), "scrape: Extra inputs are not permitted"),
    (
        "unknown source key",
        config_with(servicenow(pasword="x")),
        "sources[0].pasword: Extra inputs are not permitted",
    ),
    (
        "unknown kind",
        config_with({"name": "x", "kind": "zendesk"}),
        "sources[0].kind: not a known source kind: one of 'demo', 'csv', 'servicenow', 'jira'",
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
        "group_by[0]: Input should be 'group', 'service', 'priority' or 'channel'",
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
        "unsorted buckets",
        config_with({"name": "d", "kind": "demo"}, buckets=[60, 30]),
        "buckets: buckets must be positive and strictly increasing (+Inf is implied)",
    ),
    (
        "bad url",
        config_with(servicenow(url="acme.service-now.com")),
        "sources[0].url: String should match pattern '^https?://[^\\s/]+(/[^\\s]*)?$'",
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
        "sources[0].pasword: Extra inputs are not permitted",
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
