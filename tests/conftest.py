"""Shared pytest options, and the Hypothesis profiles: derandomized in CI, exploratory elsewhere."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI runs the README's command (`python -m pytest`) with CI=true: one fixed sequence of examples per
# test, so a landing never fails on a draw nobody can reproduce; the statistics show what ran.
# Elsewhere the examples are random (and remembered in .hypothesis/) to find what CI never tries.
# No deadline in either: a 2-core machine running the suite beside other work is slow at random,
# and a deadline would turn that into a failure. Select one with HYPOTHESIS_PROFILE=ci|dev|thorough.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.register_profile("thorough", deadline=None, print_blob=True, max_examples=2000)
_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if _CI else "dev"))


def pytest_configure(config: pytest.Config) -> None:
    if settings().derandomize:
        config.option.hypothesis_show_statistics = True


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite the golden exposition files under tests/golden/ from the current output",
    )
