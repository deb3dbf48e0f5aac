"""The HTTP surface's own rules: HEAD, the telemetry path, the caps on request lines, heads and bodies, the
deadlines, the connection cap and the `--web.*` flags (issue 29, issue 30 item 7).

The server runs in-process on 127.0.0.1 with short limits; clients are raw sockets, so every byte is the
test's. Waits are bounded reads on the socket (the server's answer or its close is the observable
condition), never sleeps. The 10,000-connection runs and the fuzzer are in tests/test_hostile.py.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.hostile import Target, open_hostile, raise_nofile
from itsm_exporter import cli
from itsm_exporter.config import demo_config
from itsm_exporter.daemon import Daemon
from itsm_exporter.httpserver import MAX_HEAD_BYTES, MAX_HEADERS, MAX_REQUEST_LINE, Limits
from itsm_exporter.web import MAX_RELOAD_BODY, ExporterServer

TIMEOUT = 10.0
FLOOD = 3000
SHORT = Limits(max_connections=20, read_timeout=1.0, idle_timeout=1.0)

Start = Callable[..., ExporterServer]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[tuple[Daemon, ExporterServer]] = []

    def run(limits: Limits = SHORT, telemetry_path: str = "/metrics") -> ExporterServer:
        daemon = Daemon(demo_config(tmp_path / f"demo-{len(started)}.db"))
        server = ExporterServer(("127.0.0.1", 0), daemon, limits=limits, telemetry_path=telemetry_path)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append((daemon, server))
        return server

    yield run
    for daemon, server in started:
        server.shutdown()
        server.server_close()
        daemon.close(TIMEOUT)


def connect(server: ExporterServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.server_port), timeout=TIMEOUT)


def exchange(server: ExporterServer, data: bytes) -> bytes:
    """Send `data` on a new connection and read until the server closes it."""
    with connect(server) as sock:
        sock.sendall(data)
        return read_to_close(sock)


def read_to_close(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def get(server: ExporterServer, method: str, path: str) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=TIMEOUT)
    connection.request(method, path)
    response = connection.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    connection.close()
    return response


# HEAD and the telemetry path (issue 30, item 7).


@pytest.mark.integration
@pytest.mark.parametrize("path", ["/metrics", "/", "/-/healthy", "/-/ready", "/-/reload", "/nowhere"])
def test_head_answers_every_get_endpoint_with_its_headers_and_no_body(start: Start, path: str) -> None:
    server = start()
    full, head = get(server, "GET", path), get(server, "HEAD", path)
    assert head.status == full.status != 501
    assert head.body == b""  # type: ignore[attr-defined]
    assert head.getheader("Content-Length") == str(len(full.body)) != "0"  # type: ignore[attr-defined]
    assert head.getheader("Content-Type") == full.getheader("Content-Type")


@pytest.mark.integration
def test_head_keeps_the_connection_usable(start: Start) -> None:
    server = start()
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=TIMEOUT)
    for method in ("HEAD", "GET", "HEAD"):
        connection.request(method, "/-/healthy")
        response = connection.getresponse()
        assert (response.status, response.read()) == (200, b"" if method == "HEAD" else b"itsm-exporter is Healthy.\n")
    connection.close()


@pytest.mark.integration
def test_the_telemetry_path_moves_the_metrics_and_the_landing_page_links_it(start: Start) -> None:
    server = start(telemetry_path="/itsm/metrics")
    moved = get(server, "GET", "/itsm/metrics")
    assert moved.status == 200 and b"itsm_source_up" in moved.body  # type: ignore[attr-defined]
    assert get(server, "GET", "/metrics").status == 404
    landing = get(server, "GET", "/").body  # type: ignore[attr-defined]
    assert b'<a href="itsm/metrics">metrics</a>' in landing


# Caps: what the server refuses before any handler runs.


@pytest.mark.integration
def test_oversized_request_lines_heads_and_header_counts_are_refused_and_closed(start: Start) -> None:
    server = start()
    long_target = b"/" + b"a" * MAX_REQUEST_LINE
    assert status(exchange(server, b"GET " + long_target + b" HTTP/1.1\r\nHost: x\r\n\r\n")) == 414
    assert status(exchange(server, b"GET " + long_target)) == 414  # no line break yet: refused before it comes
    big_header = b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n"
    assert status(exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n" + big_header + b"\r\n")) == 431
    many = b"".join(b"X-Repeat: %d\r\n" % n for n in range(MAX_HEADERS + 1))
    assert status(exchange(server, b"GET / HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")) == 431
    just_enough = b"".join(b"X-Repeat: %d\r\n" % n for n in range(MAX_HEADERS - 2))
    last = b"Connection: close\r\n\r\n"
    assert status(exchange(server, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n" + just_enough + last)) == 200


@pytest.mark.integration
def test_a_body_is_accepted_only_on_reload_and_bounded(start: Start) -> None:
    server = start()
    assert status(exchange(server, b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")) == 413
    too_big = b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (MAX_RELOAD_BODY + 1)
    assert status(exchange(server, too_big)) == 413
    chunk = b"%x\r\n%s\r\n" % (MAX_RELOAD_BODY // 2, b"a" * (MAX_RELOAD_BODY // 2))
    chunked = b"POST /-/reload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n"
    assert status(exchange(server, chunked)) == 413
    small = b"POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    assert status(exchange(server, small)) == 500  # the demo has no file to reload: the body was read and ignored


@pytest.mark.integration
def test_methods_the_server_does_not_implement_get_501_and_the_connection_goes_on(start: Start) -> None:
    server = start()
    with connect(server) as sock:
        sock.sendall(b"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = read_to_close(sock)
    assert answers.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert answers.count(b"HTTP/1.1 200 OK\r\n") == 1


# Deadlines.


@pytest.mark.integration
def test_a_connection_that_never_sends_a_byte_is_closed_at_the_read_timeout(start: Start) -> None:
    server = start()
    with connect(server) as sock:
        started = time.monotonic()
        assert read_to_close(sock) == b""  # closed without an answer: there was no request to answer
        assert SHORT.read_timeout * 0.9 <= time.monotonic() - started < TIMEOUT


@pytest.mark.integration
def test_a_trickled_request_is_cut_off_at_the_read_timeout_not_per_read(start: Start) -> None:
    """Slowloris: a byte every quarter second never lets a per-read timeout fire; the request deadline does."""
    server = start()
    request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"s" * 1000
    with connect(server) as sock:
        started = time.monotonic()
        for byte in request:
            sock.sendall(bytes([byte]))
            readable, _, _ = select.select([sock], [], [], 0.25)  # paces the trickle; an answer ends it
            if readable:
                break
        answer = read_to_close(sock)
    assert status(answer) == 408
    assert time.monotonic() - started < SHORT.read_timeout + 2


@pytest.mark.integration
def test_an_idle_keep_alive_connection_is_closed_at_the_idle_timeout(start: Start) -> None:
    server = start(limits=Limits(max_connections=20, read_timeout=5.0, idle_timeout=1.0))
    with connect(server) as sock:
        sock.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        started = time.monotonic()
        answer = read_to_close(sock)  # the answer, then the close once the connection idled for 1 s
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"itsm-exporter is Healthy.\n")
    assert 0.9 <= time.monotonic() - started < 5.0  # the idle timeout, not the read timeout


# The connection cap.


@pytest.mark.integration
def test_at_the_connection_cap_the_oldest_waiting_connection_makes_room(start: Start) -> None:
    server = start(limits=Limits(max_connections=20, read_timeout=60.0, idle_timeout=60.0))
    idle = [connect(server) for _ in range(30)]
    try:
        # The ten oldest were evicted, in order, as the newest arrived; the others are still open.
        for sock in idle[:10]:
            assert sock.recv(1) == b""
        for sock in idle[10:]:
            sock.setblocking(False)
            with pytest.raises(BlockingIOError):
                sock.recv(1)
        answer = exchange(server, b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status(answer) == 503  # answered (the demo has not synced) though the server was at its cap
        idle[10].setblocking(True)
        assert idle[10].recv(1) == b""  # the scrape's connection evicted the next oldest
    finally:
        for sock in idle:
            sock.close()


@pytest.mark.integration
def test_a_flood_past_the_cap_evicts_the_flood_not_a_scrape(start: Start) -> None:
    """Connections arrive far faster than requests are read; a scrape among them is read before it is old."""
    server = start(limits=Limits(max_connections=64, read_timeout=60.0, idle_timeout=60.0))
    assert raise_nofile(FLOOD + 1024) >= FLOOD + 1024, "RLIMIT_NOFILE's hard limit is too low"
    flooder = Target(server.server_port, os.getpid(), None, None, [])
    flooded: list[socket.socket] = []
    thread = threading.Thread(target=lambda: flooded.extend(open_hostile(flooder, FLOOD)[0]))
    thread.start()
    answers = []
    while thread.is_alive() or len(answers) < 10:
        answers.append(status(exchange(server, b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")))
    thread.join(TIMEOUT)
    for sock in flooded:
        sock.close()
    assert answers == [200] * len(answers)


# The flags.


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--web.max-connections", "0", "argument --web.max-connections: '0' is not a whole number of at least 1"),
        ("--web.max-connections", "many", "argument --web.max-connections: 'many' is not a whole number of at least 1"),
        ("--web.read-timeout", "10", "argument --web.read-timeout: '10': not a duration such as 30s, 5m, 1h or 7d"),
        ("--web.idle-timeout", "0s", "argument --web.idle-timeout: '0s': a duration must be positive"),
        ("--web.telemetry-path", "metrics", "argument --web.telemetry-path: 'metrics' is not a path such as /metrics"),
        ("--web.telemetry-path", "/-/ready", "argument --web.telemetry-path: /-/ready is taken by another endpoint"),
    ],
)
@pytest.mark.parametrize("command", ["run", "demo"])
def test_bad_flag_values_exit_2_with_one_error_line(
    command: str, flag: str, value: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [command, *(["--config", "config.yaml"] if command == "run" else []), flag, value]
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err
    assert error.splitlines()[-1] == f"itsm-exporter {command}: error: {message}"
    assert "Traceback" not in error


@pytest.mark.parametrize("command", ["run", "demo"])
def test_the_limits_and_their_defaults_are_in_the_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split()).split(" options: ", 1)[1]  # past the usage line
    for flag, default in [
        ("--web.max-connections N", "(default: 4096)"),
        ("--web.read-timeout DURATION", "(default: 10s)"),
        ("--web.idle-timeout DURATION", "(default: 2m)"),
        ("--web.telemetry-path PATH", "(default: /metrics)"),
    ]:
        assert flag in text and default in text.split(flag, 1)[1].split(" --", 1)[0], flag
