"""Shared pytest options, and the Hypothesis profiles: derandomized in CI, exploratory elsewhere."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.fakes.servicenow import FakeServiceNow

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


@pytest.fixture(autouse=True)
def _integration_marker_is_honest(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A test not marked `integration` may neither listen on a socket nor start a process: it fails if it does.

    `python -m pytest -m "not integration"` is the fast loop; this keeps the marker true instead of a convention.
    """
    if request.node.get_closest_marker("integration") is not None:
        return
    name = request.node.nodeid

    def no_server(*_args: object, **_kwargs: object) -> None:
        pytest.fail(f"{name} listens on a socket: mark it @pytest.mark.integration")

    def no_process(*_args: object, **_kwargs: object) -> None:
        pytest.fail(f"{name} starts a process: mark it @pytest.mark.integration")

    monkeypatch.setattr(socket.socket, "listen", no_server)
    monkeypatch.setattr(subprocess.Popen, "__init__", no_process)


@pytest.fixture
def fake() -> Iterator[FakeServiceNow]:
    """An empty ServiceNow fake on loopback; a module that needs one seeded overrides this fixture."""
    with FakeServiceNow() as instance:
        yield instance
