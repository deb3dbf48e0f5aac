"""Hostile and broken clients against the exporter as a process (issue 29): no scrape ever stalls.

Ten thousand connections that never send a byte or send half a request are held, then closed at once,
while scrapes go on; the same over TLS with basic auth (fewer: every half-sent one costs a handshake);
then a fuzzer of malformed requests and TLS records expects a 4xx or a close, never a 5xx, a traceback
or a dead server. The exporter is `itsm-exporter demo` in a child process (bench/hostile.py starts it), so
its threads and memory are read from /proc. Bounded: every read has a timeout, every wait a deadline,
and the fuzzer runs its cases in parallel against a 2 s read timeout.
"""

from __future__ import annotations

import random
import resource
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench.hostile import Target, exporter, open_hostile, process_status, raise_nofile, request

pytestmark = pytest.mark.integration

CONNECTIONS = 10_000
TLS_CONNECTIONS = 2_000
SCRAPES = 20
SCRAPE_BOUND = 2.0
"""Seconds any one scrape may take here (the benchmark's target is a p99 of 100 ms; this machine is shared
with the rest of the suite). Today's server failed every scrape for two minutes after the mass close."""
MAX_THREADS = 100
MAX_RSS_MB = 200.0
DEADLINE = 60.0
HOLD = ["--web.read-timeout", "5m"]
"""The read timeout would close the half-sent connections during the hold: with 5 m, the server holds them."""


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll an observable condition every 0.1 s, for DEADLINE at most."""
    pause = threading.Event()
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"not within {DEADLINE} s: {what}"
        pause.wait(0.1)


def scrape_round(target: Target) -> list[tuple[int, int, float]]:
    """SCRAPES scrapes and readiness checks, each on a new connection: (metrics status, ready status, seconds)."""
    results = []
    for _ in range(SCRAPES):
        started = time.monotonic()
        metrics = request(target, "/metrics")
        results.append((metrics, request(target, "/-/ready"), time.monotonic() - started))
    return results


def assert_served(results: list[tuple[int, int, float]]) -> None:
    assert [(m, r) for m, r, _ in results] == [(200, 200)] * SCRAPES
    slowest = max(seconds for _, _, seconds in results)
    assert slowest < SCRAPE_BOUND, f"a scrape and readiness check took {slowest:.2f} s"


def no_tracebacks(target: Target) -> None:
    log = b"".join(target.stderr).decode(errors="replace")
    assert "Traceback" not in log, log[-4000:]


def hold_then_close(target: Target, count: int) -> None:
    """Open `count` hostile connections, scrape while the server holds them, close them at once, scrape."""
    _rss, _threads, fds = process_status(target.pid)
    sockets, failed = open_hostile(target, count)
    try:
        assert failed == 0
        # Every hostile connection accepted and held: the exporter's own descriptors (store, listener, loop) are
        # more than 5, and the probe connections of the start may still be counted in `fds`.
        wait_until(lambda: process_status(target.pid)[2] >= count + 5, f"the server holds {count} connections")
        assert_served(scrape_round(target))
        rss_mb, threads, _fds = process_status(target.pid)
        assert threads < MAX_THREADS
        assert rss_mb < MAX_RSS_MB
    finally:
        for sock in sockets:
            sock.close()
    assert_served(scrape_round(target))  # right after the mass close
    wait_until(lambda: process_status(target.pid)[2] <= fds + 2, "every hostile connection released")
    assert_served(scrape_round(target))


def test_ten_thousand_idle_and_half_sent_connections_held_then_closed_never_stall_a_scrape(tmp_path: Path) -> None:
    count = min(CONNECTIONS, raise_nofile(CONNECTIONS + 1024) - 1024)  # a hard limit below 11,024 caps it
    assert count >= 1000, f"RLIMIT_NOFILE's hard limit ({resource.getrlimit(resource.RLIMIT_NOFILE)[1]}) is too low"
    with exporter(tmp_path, None, tls=False, extra=[*HOLD, "--web.max-connections", str(count + 100)]) as target:
        hold_then_close(target, count)
    no_tracebacks(target)


def test_the_same_over_tls_with_basic_auth(tmp_path: Path) -> None:
    assert raise_nofile(TLS_CONNECTIONS + 1024) >= TLS_CONNECTIONS + 1024, "RLIMIT_NOFILE's hard limit is too low"
    with exporter(tmp_path, None, tls=True, extra=HOLD) as target:
        assert target.tls is not None and target.authorization is not None
        hold_then_close(target, TLS_CONNECTIONS)
    no_tracebacks(target)


# The fuzzer.

FUZZ_TIMEOUT = ["--web.read-timeout", "2s", "--web.idle-timeout", "2s"]
VALID = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
CASES: list[tuple[str, bytes, set[int]]] = [
    ("binary garbage", b"\x00\x01\x02\xff garbage\r\n\r\n", {400}),
    ("no target", b"GET\r\n\r\n", {400}),
    ("no Host", b"GET /metrics HTTP/1.1\r\n\r\n", {400}),
    ("two Hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", {400}),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", {400, 501}),
    ("unknown version", b"GET / HTTP/3.7\r\nHost: x\r\n\r\n", {200, 400, 505}),
    ("bad method token", b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    ("unknown method", b"BREW /pot HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", {501}),
    ("long request line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {414}),
    ("endless request line", b"GET /" + b"a" * 20000, {414}),
    ("huge header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n", {431}),
    ("endless header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000, {431}),
    ("many headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 500 + b"\r\n", {431}),
    (
        "repeated Authorization",
        b"GET / HTTP/1.1\r\nHost: x\r\n" + b"Authorization: Basic eDp5\r\n" * 50 + b"\r\n",
        {200},
    ),
    ("header without colon", b"GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", {400}),
    ("NUL in a header", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", {400}),
    ("obsolete line folding", b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", {200, 400}),  # h11 unfolds
    ("body on GET", b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody", {413}),
    ("negative length", b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", {400}),
    ("two lengths", b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", {400}),
    (
        "smuggling: length and chunked",
        b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        {400},
    ),
    ("bad chunk", b"POST /-/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", {400}),
    ("huge reload body", b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", {413}),
    ("half a request", b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-A: b", {408}),
    ("a request line only", b"GET /metrics HTTP/1.1\r\n", {408}),
    (
        "pipelined garbage",
        b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n" * 3 + b"\x16\x03\x01 nonsense\r\n\r\n",
        {200, 400},
    ),
    ("HTTP/1.0", b"GET /-/healthy HTTP/1.0\r\n\r\n", {200}),
    ("absolute form", b"GET http://127.0.0.1/-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", {200}),
]
TLS_ON_PLAIN: tuple[str, bytes, set[int]] = (
    "a ClientHello on the plain port",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(32),
    {400, 408},
)


def exchange(port: int, data: bytes, context: ssl.SSLContext | None = None) -> bytes:
    """Send `data` (ignoring a reset once the server has refused it) and read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        sock = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
        received = b""
        try:
            sock.sendall(data)
            while chunk := sock.recv(65536):
                received += chunk
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            pass  # the server answered and closed while we were still sending: what was read stands
        return received


def statuses(answer: bytes) -> list[int]:
    return [int(line.split(b" ")[1]) for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with exporter(tmp_path_factory.mktemp("fuzz"), None, False, FUZZ_TIMEOUT, log_level="debug") as target:
        yield target
    no_tracebacks(target)


@pytest.fixture(scope="module")
def fuzzed_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with exporter(tmp_path_factory.mktemp("fuzz-tls"), None, True, FUZZ_TIMEOUT, log_level="debug") as target:
        yield target
    no_tracebacks(target)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_malformed_requests_get_a_4xx_and_a_close(fuzzed: Target, fuzzed_tls: Target, scheme: str) -> None:
    """Every case on its own connection, all at once (several wait out the 2 s read or idle timeout)."""
    target = fuzzed_tls if scheme == "https" else fuzzed
    cases = [*CASES, TLS_ON_PLAIN] if scheme == "http" else CASES
    with ThreadPoolExecutor(len(cases)) as pool:
        answers = list(pool.map(lambda case: exchange(target.port, case[1], target.tls), cases))
    unauthorized = {401} if target.authorization else set()  # what a request without the password gets first
    wrong = {}
    for (name, _, expected), answer in zip(cases, answers, strict=True):
        found = statuses(answer)
        if not found or found[-1] not in expected | unauthorized or any(s >= 500 and s != 501 for s in found):
            wrong[name] = (found, answer[:300])
    assert wrong == {}
    assert request(target, "/-/healthy") == 200


def test_truncated_and_broken_tls_records_are_closed_without_an_answer(fuzzed_tls: Target) -> None:
    hello = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40)  # a ClientHello cut after 40 bytes
    cases = [
        hello,
        b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",  # a ClientHello that is only a header
        b"\x17\x03\x03\x00\x10" + bytes(16),  # application data before any handshake
        b"\x15\x03\x03\x00\x02\x02\x28",  # a fatal alert first
        b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",  # plain HTTP on the TLS port
        bytes(range(256)) * 4,
    ]
    with ThreadPoolExecutor(len(cases)) as pool:
        answers = list(pool.map(lambda data: exchange(fuzzed_tls.port, data), cases))
    assert [answer.startswith(b"HTTP/") for answer in answers] == [False] * len(cases)
    assert request(fuzzed_tls, "/-/healthy") == 200


def test_five_hundred_mutated_requests_never_get_a_server_error(fuzzed: Target) -> None:
    """Seeded mutations of a valid scrape: flipped, dropped, duplicated and inserted bytes, cut anywhere."""
    chooser = random.Random(29)
    cases = []
    for _ in range(500):
        data = bytearray(VALID)
        for _ in range(chooser.randint(1, 6)):
            if not data:
                break
            at = chooser.randrange(len(data))
            action = chooser.choice(("flip", "drop", "repeat", "insert", "cut"))
            if action == "flip":
                data[at] = chooser.randrange(256)
            elif action == "drop":
                del data[at]
            elif action == "repeat":
                data[at:at] = data[at : at + chooser.randint(1, 40)] * chooser.randint(2, 50)
            elif action == "insert":
                data[at:at] = bytes(chooser.choice(b"\r\n:; \t\x00\xffa") for _ in range(chooser.randint(1, 8)))
            else:
                del data[at:]
        cases.append(bytes(data))
    with ThreadPoolExecutor(128) as pool:  # a cut request waits out the 2 s read timeout: in parallel
        answers = list(pool.map(lambda data: exchange(fuzzed.port, data), cases))
    found = [status for answer in answers for status in statuses(answer)]
    assert all(status in (200, 404, 405, 408, 501) or 400 <= status < 500 for status in found), sorted(set(found))
    assert request(fuzzed, "/metrics") == 200 and request(fuzzed, "/-/ready") == 200
