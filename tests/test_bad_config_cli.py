"""Every malformed config makes every command exit non-zero with the path of the problem, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from itsm_exporter.cli import main

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

GOOD_SOURCE = "sources:\n  - {name: demo, kind: demo}\n"
CASES = {
    "wrong type": (
        "refresh_interval: 5m\nmax_label_values: many\n" + GOOD_SOURCE,
        "max_label_values: Input should be a valid integer",
    ),
    "unknown top-level key": (
        "refresh_intervall: 5m\n" + GOOD_SOURCE,
        "refresh_intervall: unknown key; did you mean refresh_interval?",
    ),
    "unknown source key": (
        "sources:\n  - {name: demo, kind: demo, sed: 4}\n",
        "sources[0].sed: unknown key; did you mean seed?",
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
    "password in the url": (
        "sources:\n  - name: sn\n    kind: servicenow\n    url: http://u:SeCrEt-URL-777@127.0.0.1:47071\n"
        "    username: u\n    password: p\n",
        "sources[0].url: holds a user name or password: remove it from the URL and set username and password "
        "(or password_file) instead",
    ),
    "key set twice": (
        GOOD_SOURCE + "refresh_interval: 5m\nrefresh_interval: 1m\n",
        "refresh_interval: set twice, at lines 3 and 4",
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
    assert "SeCrEt" not in captured.err
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


@pytest.mark.parametrize("address", ["notanaddress", "127.0.0.1", "127.0.0.1:99999", "127.0.0.1:http", ":-1"])
@pytest.mark.parametrize("command", ["demo", "run"])
def test_a_bad_listen_address_flag_is_one_line_and_exit_2(
    command: str, address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The flag gets the `listen` key's check before anything starts (it used to raise from the server)."""
    path = tmp_path / "config.yaml"
    path.write_text(GOOD_SOURCE, encoding="utf-8")
    config = ["--config", str(path)] if command == "run" else ["--store", str(tmp_path / "demo.db")]
    assert main([command, *config, "--web.listen-address", address]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "error: --web.listen-address: not HOST:PORT, e.g. 0.0.0.0:8837\n")
    assert list(tmp_path.iterdir()) == [path]  # no store was opened


@pytest.mark.parametrize("command", ["check-config", "once", "run", "discover"])
def test_a_config_file_that_is_not_utf8_is_named_with_its_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(GOOD_SOURCE.encode() + b"# \xff\xfe caf\xe9 in Latin-1\n")
    assert main([command, "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"{path}: invalid configuration",
        f"  {path}: not UTF-8 text (line 3): save the file as UTF-8",
    ]
