"""The layers of docs/architecture.md are a checked contract (import-linter, configured in pyproject.toml)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_keeps_every_contract() -> None:
    # lint_imports configures logging with dictConfig, which disables every logger that exists by then
    # (disable_existing_loggers): the later tests that read the exporter's log lines through caplog would
    # see none. Those loggers are enabled again afterwards.
    enabled = [logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)]
    enabled = [logger for logger in enabled if not logger.disabled]
    try:
        assert lint_imports(str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == EXIT_STATUS_SUCCESS
    finally:
        for logger in enabled:
            logger.disabled = False


@pytest.mark.integration
@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("records.py", "import itsm_exporter.frames", "The layers import downwards only"),
        ("connectors/base.py", "import prometheus_client", "Connectors fetch"),
        ("collectors/tickets.py", "import itsm_exporter.store", "Collectors compute"),
        ("connectors/jira/mapping.py", "import itsm_exporter.connectors.servicenow.wire", "Source kinds are plug-ins"),
        ("sync/runner.py", "import itsm_exporter.collectors", "The layers import downwards only"),
    ],
    ids=["records-up", "connectors-prometheus", "collectors-store", "kind-to-kind", "sync-to-collectors"],
)
def test_a_forbidden_import_breaks_its_contract(tmp_path: Path, module: str, line: str, contract: str) -> None:
    """A copy of the package with one import the architecture forbids: the linter names the contract it breaks."""
    shutil.copytree(ROOT / "itsm_exporter", tmp_path / "itsm_exporter", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "itsm_exporter" / module
    target.write_text(target.read_text(encoding="utf-8") + f"\n{line}  # noqa\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
         "--no-cache", "--no-logo"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    broken = [line for line in result.stdout.splitlines() if line.endswith(" BROKEN")]
    assert any(line.startswith(contract) for line in broken), result.stdout
