"""The daemon as a process: readiness, signals (TERM, INT, HUP) and exit codes, bounded in time."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Exporter:
    """One `python -m itsm_exporter` process, logs in a file so a full pipe can never block it."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "exporter.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "itsm_exporter", *args, "--web.listen-address", f"127.0.0.1:{self.port}"],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def wait_until(self, condition: Callable[[], bool]) -> None:
        """Poll `condition` every 0.1 s for at most START_TIMEOUT; fail early if the process died."""
        pause = threading.Event()
        for _ in range(int(START_TIMEOUT / 0.1)):
            assert self.process.poll() is None, self.log.read_text()
            try:
                if condition():
                    return
            except requests.ConnectionError:
                pass
            pause.wait(0.1)
        pytest.fail(f"condition not met within {START_TIMEOUT} s:\n{self.log.read_text()}")

    def status(self, path: str) -> int:
        return requests.get(self.url + path, timeout=1).status_code

    def metrics(self) -> str:
        return requests.get(self.url + "/metrics", timeout=5).text

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture
def exporters() -> Iterator[list[Exporter]]:
    started: list[Exporter] = []
    yield started
    for exporter in started:
        if exporter.process.poll() is None:
            exporter.process.kill()
            exporter.process.wait(timeout=STOP_TIMEOUT)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_demo_becomes_ready_and_stops_cleanly_on_a_signal(
    tmp_path: Path, exporters: list[Exporter], signum: int
) -> None:
    exporter = Exporter(tmp_path, "demo", "--store", str(tmp_path / "demo.db"), "--log.format", "json")
    exporters.append(exporter)
    exporter.wait_until(lambda: exporter.status("/-/ready") == 200)
    assert exporter.status("/-/healthy") == 200
    assert 'itsm_source_up{source="demo"} 1.0' in exporter.metrics()
    assert exporter.stop(signum) == 0
    messages = [json.loads(line)["msg"] for line in exporter.log.read_text().splitlines()]
    assert messages[0] == "listening"
    assert messages[-2:] == ["stopping on signal", "stopped"]
    assert "first sync complete" in messages


def test_sighup_reloads_the_config_file(tmp_path: Path, exporters: list[Exporter]) -> None:
    config = tmp_path / "config.yaml"
    base = f"store: {{path: {tmp_path / 'run.db'}}}\nsources:\n  - {{name: demo, kind: demo}}\n"
    config.write_text(base)
    exporter = Exporter(tmp_path, "run", "--config", str(config))
    exporters.append(exporter)
    exporter.wait_until(lambda: exporter.status("/-/ready") == 200)
    config.write_text(base + "targets: {satisfaction: 0.7}\n")
    exporter.process.send_signal(signal.SIGHUP)
    exporter.wait_until(lambda: 'itsm_config_reloads_total{result="success"} 1.0' in exporter.metrics())
    assert 'itsm_target_ratio{objective="satisfaction",source="demo"} 0.7' in exporter.metrics()
    assert exporter.stop(signal.SIGTERM) == 0
    assert 'msg="configuration reloaded"' in exporter.log.read_text()


def test_an_address_in_use_exits_1_with_the_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = [sys.executable, "-m", "itsm_exporter", "demo", "--store", str(tmp_path / "d.db")]
        result = subprocess.run(
            [*command, "--web.listen-address", f"127.0.0.1:{port}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT,
            check=False,
        )
    assert result.returncode == 1
    assert f'msg="cannot listen" address=127.0.0.1:{port} error="Address already in use"' in result.stderr
