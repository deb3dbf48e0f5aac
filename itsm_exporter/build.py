"""Which build is running: version, Git revision and branch, Python version (`itsm_build_info`, `--version`).

The revision and branch come from Git when the package runs from a checkout (its HEAD now), else from
`_build.json`, stamped into the package when it was built (setup.py: Git, or the ITSM_EXPORTER_REVISION
and ITSM_EXPORTER_BRANCH variables where the build has no Git, as in the Docker build), else "unknown".
Standard library only: setup.py loads this file before any dependency is installed.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

UNKNOWN: Final = "unknown"
STAMP: Final = "_build.json"
"""The file setup.py writes beside this module in the built package."""
PACKAGE: Final = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BuildInfo:
    version: str
    revision: str
    branch: str
    python_version: str

    def describe(self) -> str:
        """`--version`, in the layout of the Prometheus tools' own."""
        return (
            f"itsm-exporter, version {self.version} (branch: {self.branch}, revision: {self.revision})\n"
            f"  python version:   {self.python_version}\n"
            f"  platform:         {platform.system().lower()}/{platform.machine()}"
        )


@functools.cache
def build_info() -> BuildInfo:
    """This process's build, looked up once."""
    from itsm_exporter import __version__

    revision, branch = from_git(PACKAGE.parent) or _stamped() or (UNKNOWN, UNKNOWN)
    return BuildInfo(__version__, revision, branch, platform.python_version())


def from_git(root: Path) -> tuple[str, str] | None:
    """(revision, branch) of the checkout at `root`, or None when it is not one (or Git is missing)."""
    if not (root / ".git").exists():  # a directory, or a file in a worktree
        return None
    try:
        revision, branch = (
            subprocess.run(
                ["git", "-C", str(root), "rev-parse", *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()
            for args in (["HEAD"], ["--abbrev-ref", "HEAD"])
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return revision or UNKNOWN, branch if branch and branch != "HEAD" else UNKNOWN  # HEAD: a detached checkout


def stamp(root: Path) -> dict[str, str]:
    """What setup.py writes into a package built from `root`: the variables first, then Git, then unknown."""
    git = from_git(root) or (UNKNOWN, UNKNOWN)
    return {
        "revision": os.environ.get("ITSM_EXPORTER_REVISION") or git[0],
        "branch": os.environ.get("ITSM_EXPORTER_BRANCH") or git[1],
    }


def _stamped() -> tuple[str, str] | None:
    try:
        stamped = json.loads((PACKAGE / STAMP).read_text(encoding="utf-8"))
        return str(stamped["revision"]), str(stamped["branch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
