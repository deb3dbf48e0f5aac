"""The one HTTP layer: the status-to-error table and the retry loop every upstream request goes through."""

from __future__ import annotations

import socket

import pytest
import requests

from itsm_exporter.connectors.base import CredentialsRefused, SchemaError, UpstreamUnavailable
from itsm_exporter.connectors.http import (
    Backoff,
    Classifier,
    Retry,
    after,
    honoured_retry_after,
    status_class,
    with_retries,
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, "auth"), (403, "auth"),
        (408, "retry"), (429, "retry"), (500, "retry"), (502, "retry"), (503, "retry"), (504, "retry"), (599, "retry"),
        (400, "bad_request"), (404, "bad_request"), (405, "bad_request"), (410, "bad_request"), (302, "bad_request"),
    ],
)  # fmt: skip
def test_the_status_table(status: int, expected: str) -> None:
    assert status_class(status) == expected


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "7", 7.0), (503, "7", 7.0), (503, "Thu, 01 Jan 1970 00:05:00 GMT", 100.0), (429, "86400", 300.0),
        (429, None, None), (503, "soon", None),
        (500, "7", None), (502, "7", None), (504, "7", None), (408, "7", None),
    ],
)  # fmt: skip
def test_retry_after_is_honoured_on_429_and_503_only(status: int, header: str | None, expected: float | None) -> None:
    headers = {} if header is None else {"Retry-After": header}
    assert honoured_retry_after(status, headers, now=lambda: 200.0) == expected


def test_a_retried_failure_waits_its_retry_after_or_backs_off_then_raises_the_last_error_chained() -> None:
    waits: list[float] = []
    backoff = Backoff(max_retries=3, base_seconds=1.0, cap_seconds=30.0, sleep=waits.append, jitter=lambda: 0.5)
    tries: list[int] = []

    def attempt(retries: int) -> str:
        tries.append(retries)
        cause = ValueError(f"cut short {retries}")
        raise Retry(SchemaError(f"page not JSON after {retries} retries"), 9.0 if retries == 1 else None) from cause

    with pytest.raises(SchemaError, match="after 3 retries") as raised:
        with_retries(attempt, backoff)
    assert tries == [0, 1, 2, 3]
    assert waits == [1.0, 9.0, 4.0]  # 1 x 2^n x (0.7 + 0.6 x 0.5), except where the upstream said how long
    assert str(raised.value.__cause__) == "cut short 3"


def test_a_final_error_is_not_retried_and_a_success_ends_the_loop() -> None:
    waits: list[float] = []
    backoff = Backoff(max_retries=5, sleep=waits.append, jitter=lambda: 0.5)
    with pytest.raises(UpstreamUnavailable):
        with_retries(lambda _n: (_ for _ in ()).throw(UpstreamUnavailable("hibernating")), backoff)
    assert waits == []

    def flaky(retries: int) -> str:
        if retries < 2:
            raise Retry(UpstreamUnavailable("reset"))
        return "page"

    assert with_retries(flaky, backoff) == "page"
    assert waits == [1.0, 2.0]


def test_network_failures_say_what_happened_and_what_to_check() -> None:
    """The classifier reads the cause a failure wraps: refused, reset, an unknown host, a timeout, TLS."""
    errors = Classifier("sn", "https://acme.example", "user bot")

    def failure(error: requests.RequestException, cause: BaseException | None = None) -> str:
        error.__cause__ = cause
        outcome = errors.network(error, "table incident", 1)
        return str(outcome.error if isinstance(outcome, Retry) else outcome)

    where = "source sn: table incident at https://acme.example"
    assert failure(requests.ConnectionError("x"), ConnectionRefusedError(111, "refused")) == (
        f"{where}: connection refused by acme.example:443 after 1 retry: check the source's url (host and port), "
        "and that the instance is up and reachable from here"
    )
    assert failure(requests.ConnectionError("x"), ConnectionResetError(104, "reset")) == (
        f"{where}: connection reset by acme.example:443 after 1 retry"
    )
    assert failure(requests.ConnectionError("x"), socket.gaierror(-2, "Name or service not known")) == (
        f"{where}: host acme.example:443 not found (DNS) after 1 retry: check the source's url"
    )
    assert failure(requests.exceptions.ConnectTimeout("x")) == (
        f"{where}: no connection to acme.example:443 within connect_timeout after 1 retry: a firewall, a proxy, "
        "or the host down?"
    )
    assert failure(requests.exceptions.ReadTimeout("x")) == f"{where}: no answer within timeout after 1 retry"
    tls = errors.network(requests.exceptions.SSLError("certificate verify failed"), "table incident", 0)
    assert isinstance(tls, UpstreamUnavailable)  # final: a certificate does not get better by retrying
    assert str(tls).startswith(f"{where}: the TLS handshake with acme.example:443 failed (")
    assert str(tls).endswith("set ca_bundle to the CA that signed its certificate (verify_tls: false only for a lab "
                             "instance)")  # fmt: skip


def test_retries_are_counted_in_words() -> None:
    assert [after(n) for n in (0, 1, 2)] == ["", " after 1 retry", " after 2 retries"]


def test_a_refused_token_is_renewed_once_then_final() -> None:
    backoff = Backoff(max_retries=3, sleep=lambda _s: None)
    renewals: list[bool] = []

    def renew() -> bool:
        renewals.append(True)
        return True

    def refused(_retries: int) -> str:
        raise CredentialsRefused("401")

    with pytest.raises(CredentialsRefused):
        with_retries(refused, backoff, renew=renew)
    assert renewals == [True]  # renewed once, and the second 401 is final; no back-off wait either
    tries = iter([CredentialsRefused("401"), None])

    def renewed_then_fine(_retries: int) -> str:
        error = next(tries)
        if error is not None:
            raise error
        return "page"

    assert with_retries(renewed_then_fine, backoff, renew=lambda: True) == "page"
    with pytest.raises(CredentialsRefused):
        with_retries(refused, backoff, renew=lambda: False)  # no token in use: nothing to renew
