"""A real Prometheus scrapes `itsm-exporter demo` and runs the shipped rules; every dashboard query must answer.

No history is backfilled: each dashboard query and recording rule is asked at the current instant, and needs no
range longer than $__rate_interval. Alert expressions that compare with the past (offset, long ranges) or that
only match on failures are checked through their selectors: Prometheus must evaluate every rule without error,
and every metric selector of every alert must match series of the real exporter. The demo's planted watermelon
must reach the alerts API (its `for` is shortened in a copy of the rules).

A second exporter runs with `--web.config.file` (TLS, a required client certificate, basic auth): a second
Prometheus scrapes it with the scrape config docs/operations.md shows, and a job with a wrong password must fail.
"""

from __future__ import annotations

import base64
import functools
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from test_dashboard import ROOT, VARIABLE_VALUES, dashboard, expand, panel_exprs
from test_rules import ALERTING_RULES, RECORDING_RULES, alerting_rules, known_metric_names, recording_rules

from tests.pki import Authority, bcrypt_hash
from tests.tools import tool

pytestmark = pytest.mark.integration

PROMETHEUS = "/usr/bin/prometheus"
DEADLINE_SECONDS = 90.0
HTTP_TIMEOUT_SECONDS = 5.0
T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str, context: ssl.SSLContext | None = None, authorization: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": authorization} if authorization else {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except OSError:
        return 0, b""


def _poll(check: Callable[[], T | None], what: str, deadline: float) -> T:
    """Call `check` every half second until it returns something, or fail at `deadline` (monotonic)."""
    pause = threading.Event()
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        pause.wait(0.5)


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def deadline() -> float:
    return time.monotonic() + DEADLINE_SECONDS


@pytest.fixture(scope="module")
def exporter(tmp_path_factory: pytest.TempPathFactory, deadline: float) -> Iterator[str]:
    """`itsm-exporter demo` on a free loopback port; yields HOST:PORT once it is ready."""
    workdir = tmp_path_factory.mktemp("exporter")
    address = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, "-m", "itsm_exporter", "demo", "--web.listen-address", address]
    with (workdir / "exporter.log").open("wb") as log:
        process = subprocess.Popen([*command, "--store", str(workdir / "demo.db")], stdout=log, stderr=log, cwd=ROOT)
    try:
        _poll(lambda: True if _get(f"http://{address}/-/ready")[0] == 200 else None, "the exporter", deadline)
        yield address
    finally:
        _stop(process)


def _rules_for_test(path: Path) -> None:
    """The shipped alerting rules with ITSMWatermelon's `for` shortened from 6h to 1s."""
    rules = yaml.safe_load(ALERTING_RULES.read_text())
    (watermelon,) = [r for group in rules["groups"] for r in group["rules"] if r.get("alert") == "ITSMWatermelon"]
    watermelon["for"] = "1s"
    path.write_text(yaml.safe_dump(rules, sort_keys=False))


def _require_prometheus() -> None:
    tool(PROMETHEUS)


@pytest.fixture(scope="module")
def prometheus(exporter: str, tmp_path_factory: pytest.TempPathFactory, deadline: float) -> Iterator[str]:
    """A real Prometheus scraping the exporter every second with the shipped rules; yields its base URL."""
    _require_prometheus()
    workdir = tmp_path_factory.mktemp("prometheus")
    _rules_for_test(workdir / "alerts.yaml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RECORDING_RULES), str(workdir / "alerts.yaml")],
        "scrape_configs": [{"job_name": "itsm-exporter", "static_configs": [{"targets": [exporter]}]}],
    }
    yield from _run_prometheus(workdir, config, deadline)


def _run_prometheus(workdir: Path, config: dict[str, Any], deadline: float) -> Iterator[str]:
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    address = f"127.0.0.1:{_free_port()}"
    command = [
        PROMETHEUS,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'data'}",
        f"--web.listen-address={address}",
    ]
    with (workdir / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        _poll(lambda: True if _get(f"http://{address}/-/ready")[0] == 200 else None, "Prometheus", deadline)
        yield f"http://{address}"
    finally:
        _stop(process)


SCRAPE_PASSWORD = "scrape-secret"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, deadline: float) -> Iterator[tuple[str, Path]]:
    """`itsm-exporter demo --web.config.file`: TLS, a verified client certificate and basic auth.

    Yields HOST:PORT once /-/healthy answers to a client with the certificate and the password, and the
    directory holding the CA, the client certificate and the password file.
    """
    workdir = tmp_path_factory.mktemp("secured")
    ca = Authority(workdir)
    ca.issue("server")
    client = ca.issue("prometheus", client=True)
    (workdir / "password").write_text(SCRAPE_PASSWORD)
    web = {
        "tls_server_config": {
            "cert_file": "server.crt",
            "key_file": "server.key",
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": "ca.crt",
        },
        "basic_auth_users": {"prometheus": bcrypt_hash(SCRAPE_PASSWORD)},
    }
    (workdir / "web.yml").write_text(yaml.safe_dump(web))
    address = f"127.0.0.1:{_free_port()}"
    command = [sys.executable, "-m", "itsm_exporter", "demo", "--web.listen-address", address]
    command += ["--store", str(workdir / "demo.db"), "--web.config.file", str(workdir / "web.yml")]
    with (workdir / "exporter.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT)
    context = ssl.create_default_context(cafile=ca.cert)
    context.load_cert_chain(client.cert, client.key)
    authorization = "Basic " + base64.b64encode(f"prometheus:{SCRAPE_PASSWORD}".encode()).decode()
    try:
        healthy = functools.partial(_get, f"https://{address}/-/healthy", context, authorization)
        _poll(lambda: True if healthy()[0] == 200 else None, "the secured exporter", deadline)
        yield address, workdir
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def secured_prometheus(
    secured: tuple[str, Path], tmp_path_factory: pytest.TempPathFactory, deadline: float
) -> Iterator[str]:
    """A second Prometheus scraping the secured exporter twice: with the password, and with a wrong one."""
    _require_prometheus()
    address, pki = secured
    workdir = tmp_path_factory.mktemp("secured-prometheus")
    (workdir / "wrong-password").write_text("not-the-password")
    tls = {
        "ca_file": str(pki / "ca.crt"),
        "cert_file": str(pki / "prometheus.crt"),
        "key_file": str(pki / "prometheus.key"),
    }
    jobs = {"itsm-exporter-tls": pki / "password", "itsm-exporter-wrong-password": workdir / "wrong-password"}
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {
                "job_name": job,
                "scheme": "https",
                "tls_config": tls,
                "basic_auth": {"username": "prometheus", "password_file": str(password)},
                "static_configs": [{"targets": [address]}],
            }
            for job, password in jobs.items()
        ],
    }
    yield from _run_prometheus(workdir, config, deadline)


def test_prometheus_scrapes_the_secured_exporter_over_tls_with_basic_auth(
    secured_prometheus: str, deadline: float
) -> None:
    def scraped() -> dict[str, dict[str, Any]] | None:
        targets = {t["labels"]["job"]: t for t in _api(secured_prometheus, "targets")["activeTargets"]}
        return targets if all(t["health"] != "unknown" for t in targets.values()) and len(targets) == 2 else None

    targets = _poll(scraped, "a first scrape of both jobs", deadline)
    assert (targets["itsm-exporter-tls"]["health"], targets["itsm-exporter-tls"]["scrapeUrl"][:8]) == ("up", "https://")
    wrong = targets["itsm-exporter-wrong-password"]
    assert (wrong["health"], wrong["lastError"]) == ("down", "server returned HTTP status 401 Unauthorized")
    samples = _query(secured_prometheus, 'itsm_source_up{job="itsm-exporter-tls", source="demo"}')
    assert len(samples) == 1


def _api(prometheus: str, path: str, **params: str) -> Any:
    status, body = _get(f"{prometheus}/api/v1/{path}?{urllib.parse.urlencode(params)}")
    assert status == 200, f"{path} {params}: HTTP {status} {body[:500]!r}"
    answer = json.loads(body)
    assert answer["status"] == "success", answer
    return answer["data"]


def _query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    data = _api(prometheus, "query", query=expr)
    assert data["resultType"] == "vector", expr
    return list(data["result"])


def _until_all_answer(prometheus: str, exprs: dict[str, str], deadline: float) -> None:
    """Poll until every expression returns at least one sample; fail naming those that never did."""
    pending = dict(exprs)
    pause = threading.Event()
    while pending:
        pending = {name: expr for name, expr in pending.items() if not _query(prometheus, expr)}
        if pending and time.monotonic() > deadline:
            pytest.fail("no data for:\n" + "\n".join(f"  {name}: {expr}" for name, expr in sorted(pending.items())))
        if pending:
            pause.wait(0.5)


def test_prometheus_scrapes_the_exporter(prometheus: str, deadline: float) -> None:
    samples = _poll(lambda: _query(prometheus, 'up{job="itsm-exporter"} == 1') or None, "a scrape", deadline)
    assert len(samples) == 1


@pytest.mark.parametrize("window", ["7d", "30d"])
def test_every_dashboard_query_returns_data(prometheus: str, deadline: float, window: str) -> None:
    values = {**VARIABLE_VALUES, "window": window}
    exprs = {f"{title} #{i}": expand(expr, values) for i, (title, expr) in enumerate(panel_exprs())}
    # 52, 5 of the segment block, 7 of the business-hours row (the demo's desk and 24x7 group), 21 of the trends row
    assert len(exprs) == 85
    _until_all_answer(prometheus, exprs, deadline)


def _label_values(prometheus: str, label: str, match: str) -> list[str] | None:
    return list(_api(prometheus, f"label/{label}/values", **{"match[]": match})) or None


def test_template_variables_list_the_demo(prometheus: str, deadline: float) -> None:
    found = {}
    for variable in dashboard()["templating"]["list"][1:]:
        selector, label = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]).groups()  # type: ignore[union-attr]
        filled = expand(selector, {"source": "demo", "window": "30d", "segment": "department"})
        values = functools.partial(_label_values, prometheus, label, filled)
        found[variable["name"]] = _poll(values, f"values of ${variable['name']}", deadline)
    assert found["source"] == ["demo"]
    assert found["window"] == ["30d", "7d"]
    assert "Network Operations" in found["group"]
    assert len(found["group"]) == 6
    # The drill-down links' variables (Grafana's regex turns window_days' 30d into 30).
    assert (found["segment"], found["segment_field"], found["group_field"]) == (
        ["department"], ["caller_id.department.name"], ["assignment_group.name"],
    )  # fmt: skip
    assert (found["source_url"], found["window_days"]) == (["https://itsm-demo.example"], ["30d"])


def test_every_recording_rule_returns_data(prometheus: str, deadline: float) -> None:
    exprs = {}
    for rule in recording_rules():
        quantile = rule.get("labels", {}).get("quantile")
        expr = f'{rule["record"]}{{quantile="{quantile}"}}' if quantile else rule["record"]
        exprs[expr] = expr
    assert len(exprs) == 19
    _until_all_answer(prometheus, exprs, deadline)


def test_every_rule_evaluates_without_error(prometheus: str, deadline: float) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        rules = [rule for group in _api(prometheus, "rules")["groups"] for rule in group["rules"]]
        return rules if len(rules) == 31 and all(rule["health"] != "unknown" for rule in rules) else None

    rules = _poll(evaluated, "a first evaluation of every rule", deadline)
    assert {(rule["name"], rule["health"], rule["lastError"]) for rule in rules if rule["health"] != "ok"} == set()


def test_every_alert_selector_matches_the_exporter(prometheus: str, deadline: float) -> None:
    known = known_metric_names()
    exprs = {}
    for rule in alerting_rules():
        for match in re.finditer(r"(?<![\w:])([A-Za-z_:][\w:]*)(\{[^}]*\})?", rule["expr"]):
            if match.group(1) in known:
                exprs[f"{rule['alert']}: {match.group()}"] = f"count({match.group()})"
    assert len(exprs) == 20
    _until_all_answer(prometheus, exprs, deadline)


def test_the_planted_watermelon_alerts(prometheus: str, deadline: float) -> None:
    def watermelons() -> set[tuple[str, str, str]] | None:
        alerts = [a for a in _api(prometheus, "alerts")["alerts"] if a["labels"]["alertname"] == "ITSMWatermelon"]
        return {(a["labels"]["group"], a["labels"]["window"], a["state"]) for a in alerts} or None

    found = _poll(watermelons, "ITSMWatermelon", deadline)
    assert {(group, window) for group, window, _ in found} == {
        ("Network Operations", "7d"),
        ("Network Operations", "30d"),
    }
    assert {state for _, _, state in found} <= {"pending", "firing"}
    health = {a["labels"]["alertname"] for a in _api(prometheus, "alerts")["alerts"]} & {
        "ITSMSourceDown",
        "ITSMSourceStale",
        "ITSMExporterDown",
        "ITSMExporterAbsent",
    }
    assert health == set()
