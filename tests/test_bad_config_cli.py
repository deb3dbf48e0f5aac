"""Every malformed config makes every command exit non-zero with the path of the problem, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from itsm_exporter.cli import main

GOOD_SOURCE = "sources:\n  - {name: demo, kind: demo}\n"
CASES = {
    "wrong type": (
        "refresh_interval: 5m\nmax_label_values: many\n" + GOOD_SOURCE,
        "max_label_values: Input should be a valid integer",
    ),
    "unknown top-level key": (
        "refresh_intervall: 5m\n" + GOOD_SOURCE,
        "refresh_intervall: Extra inputs are not permitted",
    ),
    "unknown source key": (
        "sources:\n  - {name: demo, kind: demo, sed: 4}\n",
        "sources[0].sed: Extra inputs are not permitted",
    ),
    "bad duration": ("refresh_interval: 5 minutes\n" + GOOD_SOURCE, "refresh_interval: not a duration"),
    "bad window": ("windows: [7d, fortnight]\n" + GOOD_SOURCE, "windows[1]: not a duration"),
    "missing secret variable": (
        "sources:\n  - name: sn\n    kind: servicenow\n    url: https://x.service-now.com\n"
        "    username: u\n    password: ${ITSM_TEST_UNSET_SECRET}\n",
        "sources[0].password: environment variable ITSM_TEST_UNSET_SECRET is not set",
    ),
    "missing secret file": (
        "sources:\n  - name: sn\n    kind: servicenow\n    url: https://x.service-now.com\n"
        "    username: u\n    password_file: /nonexistent/sn-password\n",
        "sources[0].password_file: /nonexistent/sn-password is not a readable file",
    ),
    "no secret at all": (
        "sources:\n  - {name: j, kind: jira, url: 'https://x.atlassian.net', username: u}\n",
        "sources[0]: token, token_file, password or password_file is required",
    ),
    "unreachable store path": (
        "store: {path: /nonexistent/dir/itsm.db}\n" + GOOD_SOURCE,
        "store.path: directory /nonexistent/dir does not exist",
    ),
    "unknown source kind": (
        "sources:\n  - {name: x, kind: zendesk}\n",
        "sources[0].kind: not a known source kind: one of 'demo', 'csv', 'servicenow', 'jira'",
    ),
    "unknown time zone": (
        "calendars:\n  desk: {timezone: Europe/Berlln, hours: {mon-fri: ['09:00-17:00']}}\n" + GOOD_SOURCE,
        "calendars.desk.timezone: 'Europe/Berlln' is not an IANA time zone such as Europe/Berlin or UTC",
    ),
    "overlapping spans": (
        "calendars:\n  desk: {timezone: UTC, hours: {mon: ['09:00-13:00', '12:00-17:00']}}\n" + GOOD_SOURCE,
        "calendars.desk.hours: mon 09:00-13:00 overlaps mon 12:00-17:00",
    ),
    "empty week": (
        "calendars:\n  desk: {timezone: UTC, hours: {mon-fri: []}}\n" + GOOD_SOURCE,
        "calendars.desk.hours: no working span in the week",
    ),
    "unknown holiday country": (
        "calendars:\n  desk: {timezone: UTC, hours: {mon: ['09:00-17:00']}, holidays: {country: XX}}\n" + GOOD_SOURCE,
        "calendars.desk.holidays.country: 'XX' is not a country the holidays package knows",
    ),
    "unknown holiday subdivision": (
        "calendars:\n  desk: {timezone: UTC, hours: {mon: ['09:00-17:00']}, holidays: {country: DE, subdivision: XX}}\n"
        + GOOD_SOURCE,
        "calendars.desk.holidays.subdivision: 'XX' is not a subdivision of DE: one of BB, BE, BW, BY",
    ),
    "unknown calendar name": (
        "sources:\n  - {name: demo, kind: demo, calendar_by_group: {Network Operations: noc}}\n",
        "sources[0].calendar_by_group.Network Operations: no calendar named 'noc' in calendars (defined: none)",
    ),
    "not a mapping": ("- just\n- a list\n", "(top level): the configuration must be a mapping"),
    "broken YAML": ("sources: [\n", "line 2"),
}


@pytest.mark.parametrize("command", ["check-config", "once", "run"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_names_its_problem(
    case: str, command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ITSM_TEST_UNSET_SECRET", raising=False)
    text, expected = CASES[case]
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    assert main([command, "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert expected in captured.err
    assert f"{path}: invalid configuration" in captured.err or f"{path}:" in captured.err
    assert "Traceback" not in captured.err


def test_a_bad_config_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("refresh_interval: 5 minutes\nsources: [{name: demo, kind: demo, seed: x}]\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "itsm_exporter", "run", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}: invalid configuration",
        "  refresh_interval: not a duration such as 30s, 5m, 1h or 7d",
        "  sources[0].seed: Input should be a valid integer, unable to parse string as an integer",
    ]
