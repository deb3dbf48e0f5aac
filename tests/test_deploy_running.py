"""The deployment files run, as far as this machine allows: no cluster and no Docker daemon, so each pod's
volumes are laid out under a temporary root as the kubelet would mount them (ConfigMap and Secret keys as
files, the TLS Secret issued by a throwaway CA) and its containers' commands are run from there.

- sidecar.yaml: `promtool check config` passes on its Prometheus configuration with the rules mounted; the
  exporter runs with its config and web configuration, a real Prometheus with the sidecar's configuration
  scrapes it over TLS with basic auth, loads every rule, and the demo's answers are all mapped.
- deployment.yaml: the exporter runs with its config and web configuration, and both probes get 200.
- Dockerfile: its HEALTHCHECK command is healthy against an exporter with and without a web configuration,
  and unhealthy when nothing listens.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_deploy import DEPLOY, dockerfile, documents, pod_spec
from test_prometheus_integration import _api, _free_port, _get, _poll, _query, _require_prometheus, _stop
from test_rules import ALERTING_RULES, RECORDING_RULES

from tests.pki import Authority
from tests.tools import tool

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
SIDECAR = DEPLOY / "kubernetes" / "sidecar.yaml"
DEPLOYMENT = DEPLOY / "kubernetes" / "deployment.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
DEADLINE_SECONDS = 90.0


def container(manifest: Path, name: str) -> dict[str, Any]:
    (found,) = [c for c in pod_spec(manifest)["containers"] if c["name"] == name]
    return found


def mount(manifest: Path, name: str, root: Path, extra_secrets: dict[str, dict[str, str]]) -> None:
    """Lay out the volumes of container `name` under `root` as the kubelet mounts them."""
    docs = documents(manifest)
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs if d["kind"] == "Secret"} | extra_secrets
    volumes = {v["name"]: v for v in pod_spec(manifest)["volumes"]}
    for volume_mount in container(manifest, name)["volumeMounts"]:
        volume = volumes[volume_mount["name"]]
        target = root / volume_mount["mountPath"].lstrip("/")
        if "configMap" in volume or "secret" in volume:
            source = volume.get("configMap") or volume["secret"]
            files = config_maps[source["name"]] if "configMap" in volume else secrets[source["secretName"]]
            if "items" in source:
                files = {item["path"]: files[item["key"]] for item in source["items"]}
            if "subPath" in volume_mount:
                files = {target.name: files[volume_mount["subPath"]]}
                target = target.parent
            target.mkdir(parents=True, exist_ok=True)
            for file_name, text in files.items():
                (target / file_name).write_text(text)
        else:  # emptyDir, persistentVolumeClaim: an empty writable directory
            target.mkdir(parents=True, exist_ok=True)


def rooted(text: str, manifest: Path, name: str, root: Path) -> str:
    """`text` with every path under one of the container's mount paths moved under `root`, in one pass."""
    paths = sorted((m["mountPath"] for m in container(manifest, name)["volumeMounts"]), key=len, reverse=True)
    pattern = re.compile(r"(?<![\w/.-])(" + "|".join(re.escape(p) for p in paths) + r")(?=[/\s'\"]|$)", re.M)
    return pattern.sub(lambda match: f"{root}{match.group(1)}", text)


def tls_secret(root: Path) -> dict[str, str]:
    """The certificate Secret the manifests expect (tls.crt, tls.key, ca.crt), valid for localhost."""
    authority = Authority(root / "ca")
    server = authority.issue("server")
    return {"tls.crt": server.cert.read_text(), "tls.key": server.key.read_text(), "ca.crt": authority.cert.read_text()}


def start_exporter(manifest: Path, root: Path, address: str, log: Path) -> subprocess.Popen[bytes]:
    """The manifest's exporter container: its args and environment, with paths under `root`."""
    spec = container(manifest, "itsm-exporter")
    for file in (root / "etc" / "itsm-exporter").rglob("*.y*ml"):
        file.write_text(rooted(file.read_text(), manifest, "itsm-exporter", root))
    args = [rooted(arg, manifest, "itsm-exporter", root) for arg in spec["args"]]
    (secret,) = [d for d in documents(manifest) if d["kind"] == "Secret"]
    env = dict(os.environ)
    for variable in spec.get("env", []):
        env[variable["name"]] = secret["stringData"][variable["valueFrom"]["secretKeyRef"]["key"]]
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "itsm_exporter", *args, "--web.listen-address", address],
            stdout=out,
            stderr=out,
            cwd=ROOT,
            env=env,
        )


def https_get(url: str, headers: dict[str, str]) -> int:
    """As the kubelet probes: HTTPS without checking the certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    status, _body = _get(url, context, headers.get("Authorization"))
    return status


# -- sidecar.yaml -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The sidecar pod laid out under a root, its exporter running; yields the root and the exporter's address."""
    root = tmp_path_factory.mktemp("sidecar")
    secrets = {"prometheus-itsm-tls": tls_secret(root)}
    mount(SIDECAR, "prometheus", root, secrets)
    mount(SIDECAR, "itsm-exporter", root, secrets)
    config = root / "etc" / "prometheus" / "prometheus.yml"
    config.write_text(rooted(config.read_text(), SIDECAR, "prometheus", root))
    address = f"127.0.0.1:{_free_port()}"
    process = start_exporter(SIDECAR, root, address, root / "exporter.log")
    try:
        ready = container(SIDECAR, "itsm-exporter")["readinessProbe"]["httpGet"]
        headers = {h["name"]: h["value"] for h in ready["httpHeaders"]}
        deadline = time.monotonic() + DEADLINE_SECONDS
        _poll(lambda: True if https_get(f"https://{address}/-/ready", headers) == 200 else None, "ready", deadline)
        yield root, address
    finally:
        _stop(process)


def require_promtool() -> None:
    tool(PROMTOOL)


def rule_count(path: Path) -> int:
    return sum(len(group["rules"]) for group in yaml.safe_load(path.read_text())["groups"])


def test_promtool_checks_the_sidecar_prometheus_config_with_its_rules_mounted(sidecar: tuple[Path, str]) -> None:
    require_promtool()
    root, _address = sidecar
    config = root / "etc" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [PROMTOOL, "check", "config", str(config)], capture_output=True, text=True, timeout=60, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "SUCCESS: 2 rule files found" in output
    rules = root / "etc" / "prometheus" / "rules"
    for shipped in (RECORDING_RULES, ALERTING_RULES):
        assert (rules / shipped.name).read_text() == shipped.read_text()
        assert f"Checking {rules / shipped.name}\n  SUCCESS: {rule_count(shipped)} rules found" in output


def test_the_sidecar_prometheus_scrapes_its_exporter_and_evaluates_every_rule(
    sidecar: tuple[Path, str], tmp_path: Path
) -> None:
    """The sidecar's Prometheus configuration as shipped, but for the exporter's port and 1 s intervals."""
    _require_prometheus()
    root, address = sidecar
    config = yaml.safe_load((root / "etc" / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    (job,) = config["scrape_configs"]
    assert job["static_configs"] == [{"targets": ["localhost:8837"]}]
    job["static_configs"] = [{"targets": [f"localhost:{address.rpartition(':')[2]}"]}]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    listen = f"127.0.0.1:{_free_port()}"
    command = ["/usr/bin/prometheus", f"--config.file={tmp_path / 'prometheus.yml'}"]
    command += [f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address={listen}"]
    deadline = time.monotonic() + DEADLINE_SECONDS
    with (tmp_path / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    prometheus = f"http://{listen}"
    try:
        _poll(lambda: True if _get(f"{prometheus}/-/ready")[0] == 200 else None, "Prometheus", deadline)
        up = _poll(lambda: _query(prometheus, 'up{job="itsm-exporter"} == 1') or None, "a scrape", deadline)
        assert len(up) == 1

        def evaluated() -> list[dict[str, Any]] | None:
            rules = [rule for group in _api(prometheus, "rules")["groups"] for rule in group["rules"]]
            return rules if rules and all(rule.get("lastEvaluation", "").startswith("2") for rule in rules) else None

        rules = _poll(evaluated, "every rule evaluated once", deadline)
        alerts = {r["name"] for r in rules if r["type"] == "alerting"}
        records = {r["name"] for r in rules if r["type"] == "recording"}
        shipped = (
            yaml.safe_load(ALERTING_RULES.read_text())["groups"] + yaml.safe_load(RECORDING_RULES.read_text())["groups"]
        )
        assert alerts == {r["alert"] for g in shipped for r in g["rules"] if "alert" in r}
        assert records == {r["record"] for g in shipped for r in g["rules"] if "record" in r}
        assert [r["name"] for r in rules if r["health"] != "ok"] == []
        assert _query(prometheus, 'sum(itsm_survey_mapping_answers{role="unmapped"})')[0]["value"][1] == "0"
        assert float(_query(prometheus, 'sum(itsm_survey_mapping_answers{role!="unmapped"})')[0]["value"][1]) > 0
        quantiles = 'source_group_window:itsm_resolution_time_seconds:histogram_quantile{source="demo"}'
        assert _poll(lambda: _query(prometheus, quantiles) or None, "a recorded series", deadline)
    finally:
        _stop(process)


def test_the_sidecar_demo_maps_every_answered_question(sidecar: tuple[Path, str]) -> None:
    root, _address = sidecar
    records = [json.loads(line) for line in (root / "exporter.log").read_text().splitlines() if line.startswith("{")]
    assert records and [r for r in records if r["level"] in ("warning", "error")] == []


# -- deployment.yaml -----------------------------------------------------------------------------------------


def test_the_deployment_exporter_runs_with_its_config_and_both_probes_get_through(tmp_path: Path) -> None:
    mount(DEPLOYMENT, "itsm-exporter", tmp_path, {"itsm-exporter-tls": tls_secret(tmp_path)})
    address = f"127.0.0.1:{_free_port()}"
    process = start_exporter(DEPLOYMENT, tmp_path, address, tmp_path / "exporter.log")
    spec = container(DEPLOYMENT, "itsm-exporter")
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        for probe in ("livenessProbe", "readinessProbe"):
            get = spec[probe]["httpGet"]
            assert get["scheme"] == "HTTPS"
            headers = {h["name"]: h["value"] for h in get["httpHeaders"]}
            url = f"https://{address}{get['path']}"
            _poll(lambda url=url, headers=headers: True if https_get(url, headers) == 200 else None, probe, deadline)
            assert https_get(url, {}) == 401
    finally:
        _stop(process)
    log = (tmp_path / "exporter.log").read_text()
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records and [r for r in records if r["level"] in ("warning", "error")] == [], log


# -- Dockerfile ----------------------------------------------------------------------------------------------


def healthcheck(address: str) -> subprocess.CompletedProcess[str]:
    """The image's HEALTHCHECK command, pointed at `address`."""
    command = dict(dockerfile())["HEALTHCHECK"].partition(" CMD ")[2]
    program, *args = json.loads(command)
    assert program == "itsm-exporter"
    return subprocess.run(
        [sys.executable, "-m", "itsm_exporter", *args, "--web.listen-address", address],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


def test_the_docker_healthcheck_passes_with_tls_and_basic_auth(sidecar: tuple[Path, str]) -> None:
    _root, address = sidecar
    result = healthcheck(address)
    assert (result.returncode, result.stdout) == (
        0,
        f"healthy: https://{address}/-/healthy answered 401 (basic auth): the server is up; "
        "its refresh loop is not visible\n",
    )


def test_the_docker_healthcheck_passes_without_a_web_config_and_fails_when_nothing_listens(tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"
    assert healthcheck(address).stdout == (
        f"unhealthy: http://{address}/-/healthy: connection refused (is the exporter running, on this address?)\n"
    )
    command = [sys.executable, "-m", "itsm_exporter", "demo", "--web.listen-address", address]
    with (tmp_path / "demo.log").open("wb") as log:
        process = subprocess.Popen([*command, "--store", str(tmp_path / "demo.db")], stdout=log, stderr=log, cwd=ROOT)
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        _poll(lambda: True if _get(f"http://{address}/-/healthy")[0] == 200 else None, "the exporter", deadline)
        result = healthcheck(address)
        assert (result.returncode, result.stdout) == (0, f"healthy: http://{address}/-/healthy answered 200\n")
    finally:
        _stop(process)
    result = healthcheck(address)
    assert result.returncode == 1 and result.stdout.startswith("unhealthy: ")
