"""The outside tools and pinned test dependencies tests need: skipped on a developer's machine, required in CI.

CI runs `.ci/run` with CI=true, which installs them all: there a missing one is a failure, never a skip, so a
landing can never pass a check it did not run.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str, hint: str) -> None:
    """Skip the test for want of `what` (`hint` says how to get it), or fail it in CI."""
    message = f"{what} is not available ({hint})"
    if IN_CI:
        pytest.fail(f"{message}: CI must have it")
    pytest.skip(message)


def tool(path: str, hint: str = "Debian package prometheus; .ci/run installs it") -> str:
    """The executable at `path` (or on PATH), else skip or fail (see `missing`)."""
    found = shutil.which(path)
    if found is None:
        missing(path, hint)
    assert found is not None
    return found


def module(name: str) -> ModuleType:
    """A pinned test dependency (pyproject.toml's test extra), else skip or fail (see `missing`)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"Python package {name}", "pip install '.[test]'")
        raise
