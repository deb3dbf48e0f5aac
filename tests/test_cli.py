"""The command line as users and outside tests call it: exit codes and messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
