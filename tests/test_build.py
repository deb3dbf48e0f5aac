"""Which build is running: the revision and branch come from Git in a checkout, from the stamp setup.py writes
into a built package, or read "unknown"; `itsm_build_info` and `--version` show them."""

from __future__ import annotations

import os
import platform
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from setuptools import Distribution

from itsm_exporter.build import UNKNOWN, build_info, from_git, stamp
from tests.tools import missing

ROOT = Path(__file__).resolve().parent.parent


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()


def checkout() -> tuple[str, str]:
    """The revision and branch of this checkout, as Git says."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        missing("a Git checkout with git", "CI runs the suite in a Git clone")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    return git("rev-parse", "HEAD"), branch if branch != "HEAD" else UNKNOWN


@pytest.mark.integration  # runs git
def test_a_checkout_reports_its_head() -> None:
    revision, branch = checkout()
    info = build_info()
    assert (info.revision, info.branch, info.python_version) == (revision, branch, platform.python_version())
    assert from_git(ROOT) == (revision, branch)


def test_a_directory_that_is_not_a_checkout_has_no_git_build(tmp_path: Path) -> None:
    assert from_git(tmp_path) is None


def test_the_stamp_takes_the_variables_then_git_then_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ITSM_EXPORTER_REVISION", raising=False)
    monkeypatch.delenv("ITSM_EXPORTER_BRANCH", raising=False)
    assert stamp(tmp_path) == {"revision": UNKNOWN, "branch": UNKNOWN}
    monkeypatch.setenv("ITSM_EXPORTER_REVISION", "0123abc")
    monkeypatch.setenv("ITSM_EXPORTER_BRANCH", "release-1")
    assert stamp(tmp_path) == {"revision": "0123abc", "branch": "release-1"}
    monkeypatch.setenv("ITSM_EXPORTER_BRANCH", "")
    assert stamp(tmp_path) == {"revision": "0123abc", "branch": UNKNOWN}


def built_package(target: Path) -> Path:
    """itsm_exporter as setup.py's build_py writes it under `target` (what a wheel and `pip install .` carry)."""
    command = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_under_test")["StampedBuild"]
    distribution = Distribution(
        {"name": "itsm-exporter", "script_name": str(ROOT / "setup.py"), "packages": ["itsm_exporter"],
         "package_dir": {"": str(ROOT)}}
    )  # fmt: skip
    build = command(distribution)
    build.build_lib = str(target)
    build.ensure_finalized()
    build.run()
    return target / "itsm_exporter"


def installed_build(lib: Path) -> str:
    """`--version`'s first line of the package under `lib`, imported from there (not from a checkout)."""
    code = "from itsm_exporter.build import build_info; print(build_info().describe().splitlines()[0])"
    environment = {**os.environ, "PYTHONPATH": str(lib)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=lib, env=environment, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


@pytest.mark.integration
def test_a_built_package_carries_its_stamp_and_reads_unknown_without_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITSM_EXPORTER_REVISION", "0123abc")
    monkeypatch.setenv("ITSM_EXPORTER_BRANCH", "release-1")
    package = built_package(tmp_path / "lib")
    assert (package / "_build.json").read_text() == '{"revision": "0123abc", "branch": "release-1"}\n'
    assert installed_build(tmp_path / "lib") == "itsm-exporter, version 0.1.0 (branch: release-1, revision: 0123abc)"
    (package / "_build.json").unlink()
    assert installed_build(tmp_path / "lib") == "itsm-exporter, version 0.1.0 (branch: unknown, revision: unknown)"


@pytest.mark.integration
def test_version_prints_the_build_and_the_python_version() -> None:
    revision, branch = checkout()
    result = subprocess.run(
        [sys.executable, "-m", "itsm_exporter", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        f"itsm-exporter, version 0.1.0 (branch: {branch}, revision: {revision})",
        f"  python version:   {platform.python_version()}",
        f"  platform:         {platform.system().lower()}/{platform.machine()}",
    ]
