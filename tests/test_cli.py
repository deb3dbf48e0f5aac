"""The command line as users and outside tests call it: exit codes and messages, no tracebacks."""

from __future__ import annotations

import argparse
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # starts servers or subprocesses on loopback

ROOT = Path(__file__).resolve().parent.parent


def itsm_exporter(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itsm_exporter", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def test_check_config_accepts_the_example() -> None:
    result = itsm_exporter("check-config", "--config", str(ROOT / "config.example.yaml"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(
        "valid; sources: demo (demo), servicenow-prod (servicenow, disabled), jsm (jira, disabled)"
    )


def test_check_config_lists_every_problem_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "refresh_interval: often\n"
        "sources:\n"
        "  - name: sn\n"
        "    kind: servicenow\n"
        "    url: https://acme.service-now.com\n"
        "    username: bot\n"
        "    password: hunter2-distinctive\n"
        "    page_size: lots\n"
    )
    result = itsm_exporter("check-config", "--config", str(bad))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{bad}: invalid configuration",
        "  refresh_interval: not a duration such as 30s, 5m, 1h or 7d",
        "  sources[0].page_size: Input should be a valid integer, unable to parse string as an integer",
    ]
    assert "hunter2" not in result.stderr


def test_check_config_on_missing_file(tmp_path: Path) -> None:
    result = itsm_exporter("check-config", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "cannot read: No such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_once_with_bad_config_fails_cleanly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("sources: {}\n")
    result = itsm_exporter("once", "--config", str(bad))
    assert result.returncode == 1
    assert "sources: Input should be a valid list" in result.stderr
    assert "Traceback" not in result.stderr


def test_as_of_needs_a_time_zone() -> None:
    result = itsm_exporter("once", "--config", "config.example.yaml", "--as-of", "2026-11-24T12:00:00")
    assert result.returncode == 2
    assert "has no time zone: add Z or an offset such as +01:00" in result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = itsm_exporter("serve")
    assert result.returncode == 2
    assert "invalid choice: 'serve'" in result.stderr


def test_config_file_is_the_prometheus_spelling_of_config(capsys: pytest.CaptureFixture[str]) -> None:
    from itsm_exporter.cli import main

    assert main(["check-config", "--config.file", str(ROOT / "config.example.yaml")]) == 0
    assert capsys.readouterr().out.endswith("jsm (jira, disabled)\n")


def test_every_flag_says_its_default_in_its_help() -> None:
    from itsm_exporter.cli import _parser

    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [
        f"{name} {action.option_strings[0]}"
        for name, command in commands.choices.items()
        for action in command._actions
        if action.option_strings and action.dest != "help" and "default" not in (action.help or "")
    ]
    assert missing == []
    assert set(commands.choices) == {"run", "once", "discover", "check-config", "healthcheck", "demo"}


def test_once_without_a_store_path_keeps_nothing_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from itsm_exporter.cli import main

    config = tmp_path / "config.yaml"
    config.write_text("sources: [{name: demo, kind: demo, days: 3}]\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    try:
        assert main(["once", "--config", str(config)]) == 0
    finally:
        logging.getLogger().handlers.clear()
    out, err = capsys.readouterr()
    assert 'itsm_source_up{source="demo"} 1.0' in out
    (line,) = [line for line in err.splitlines() if "the store is temporary" in line]
    store = Path(re.search(r" path=(\S+)", line).group(1))  # type: ignore[union-attr]
    assert store.name == "once.db" and not store.parent.exists()  # removed at exit
    assert 'to_keep_it="set store.path in the config"' in line
    assert list(work.iterdir()) == []


def test_demo_without_store_uses_a_temporary_one_printed_at_start_and_removed_at_exit(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "itsm_exporter", "demo", "--web.listen-address", f"127.0.0.1:{port}"],
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=out,
        )
    try:
        pause = threading.Event()
        for _ in range(600):  # until it serves: its signal handlers are in place then
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/healthy", timeout=5):
                    break
            except OSError:
                assert process.poll() is None, log.read_text()
                pause.wait(0.1)
        (line,) = [line for line in log.read_text().splitlines() if "the store is temporary" in line]
        store = Path(re.search(r" path=(\S+)", line).group(1))  # type: ignore[union-attr]
        assert store.name == "demo.db" and store.parent.is_dir()
        assert 'to_keep_it="--store FILE"' in line
    finally:
        process.terminate()
        assert process.wait(60) == 0, log.read_text()
    assert not store.parent.exists()
    assert list(tmp_path.iterdir()) == [log]
