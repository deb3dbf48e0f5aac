"""The deployment files, checked offline: systemd-analyze, Kubernetes schemas, and the Dockerfile's rules."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from itsm_exporter.config import DEFAULT_PORT, parse_config
from itsm_exporter.webconfig import BasicAuth, WebConfig, parse_web_config
from tests.tools import module

pytestmark = pytest.mark.integration  # starts fake upstreams, servers or subprocesses on loopback

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "itsm-exporter.service"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def pod_spec(path: Path) -> dict[str, Any]:
    (deployment,) = [doc for doc in documents(path) if doc["kind"] == "Deployment"]
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


def exporter_container(path: Path) -> dict[str, Any]:
    (container,) = [c for c in pod_spec(path)["containers"] if c["name"] == "itsm-exporter"]
    return container


@pytest.fixture
def unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists here (verify checks that it does)."""
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/itsm-exporter", sys.executable))
    return unit


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_verifies_cleanly(unit_here: Path) -> None:
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "verify", str(unit_here)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_is_hardened(unit_here: Path) -> None:
    """`systemd-analyze security` rates exposure 0..10; --threshold takes tenths: fail above 2.0 ("OK" is < 2.5)."""
    result = subprocess.run(
        [str(SYSTEMD_ANALYZE), "security", "--offline=yes", "--threshold=20", "--no-pager", str(unit_here)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_systemd_unit_runs_the_daemon_with_reload_and_state() -> None:
    lines = set(UNIT.read_text().splitlines())
    for directive in (
        "ExecStart=/usr/local/bin/itsm-exporter run --config /etc/itsm-exporter/config.yaml",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "DynamicUser=yes",
        "StateDirectory=itsm-exporter",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "CapabilityBoundingSet=",
        "SystemCallFilter=@system-service",
    ):
        assert directive in lines


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_kubernetes_manifests_match_the_api_schema(path: Path) -> None:
    validator = module("kubernetes_validate")
    for document in documents(path):
        validator.validate(document, "1.37.0", strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_container_runs_as_non_root_on_a_read_only_root(path: Path) -> None:
    spec = pod_spec(path)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["automountServiceAccountToken"] is False
    for container in spec["containers"]:
        security = container["securityContext"]
        assert (security["readOnlyRootFilesystem"], security["allowPrivilegeEscalation"]) == (True, False)
        assert security["capabilities"] == {"drop": ["ALL"]}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_exporter_is_probed_and_its_store_is_writable(path: Path) -> None:
    container = exporter_container(path)
    port = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe_port = container["livenessProbe"]["httpGet"]["port"]
    assert port[probe_port] == DEFAULT_PORT
    assert container["livenessProbe"]["httpGet"]["path"] == "/-/healthy"
    assert container["readinessProbe"]["httpGet"]["path"] == "/-/ready"
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(path)["volumes"]}
    store = volumes[mounts["/var/lib/itsm-exporter"]]
    assert "emptyDir" in store or "persistentVolumeClaim" in store


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_shipped_config_is_valid_and_reads_secrets_from_the_secret(path: Path, monkeypatch: Any) -> None:
    docs = documents(path)
    (config_map,) = [d for d in docs if d["kind"] == "ConfigMap" and "config.yaml" in d["data"]]
    (secret,) = [d for d in docs if d["kind"] == "Secret"]
    container = exporter_container(path)
    assert container["args"] == [
        "run",
        "--config",
        "/etc/itsm-exporter/config/config.yaml",
        "--web.config.file",
        "/etc/itsm-exporter/secrets/web.yml",
    ]
    for variable in container.get("env", []):
        assert variable["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
        assert variable["valueFrom"]["secretKeyRef"]["key"] in secret["stringData"]
        monkeypatch.setenv(variable["name"], "from-the-secret")
    config = parse_config(yaml.safe_load(config_map["data"]["config.yaml"]), check_files=False)
    assert str(config.store.path) == "/var/lib/itsm-exporter/itsm-exporter.db"
    assert config.listen == f"0.0.0.0:{DEFAULT_PORT}"
    assert [s.name for s in config.enabled_sources] == ["demo"]
    for source in config.sources:
        for name in ("password_file", "token_file"):
            file = getattr(source, name, None)
            if file is not None:
                assert file.parent == Path("/etc/itsm-exporter/secrets")
                assert file.name in secret["stringData"]


def web_config(path: Path) -> WebConfig:
    """The web configuration the exporter container is given, from the Secret it mounts."""
    (secret,) = [d for d in documents(path) if d["kind"] == "Secret"]
    return parse_web_config(yaml.safe_load(secret["stringData"]["web.yml"]), base=Path("/"), check_files=False)


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_exporter_serves_tls_with_basic_auth_and_its_probes_get_through(path: Path) -> None:
    web = web_config(path)
    container = exporter_container(path)
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(path)["volumes"]}
    assert web.tls is not None and web.tls.client_auth_type == "NoClientCert"  # the kubelet has no client cert
    for file in (web.tls.cert_file, web.tls.key_file):
        assert file.parent == Path("/etc/itsm-exporter/tls") and file.name in ("tls.crt", "tls.key")
    assert "secret" in volumes[mounts["/etc/itsm-exporter/tls"]]
    assert set(web.users) == {"prometheus", "probe"}
    probes = BasicAuth(web.users)
    for probe in (container["livenessProbe"], container["readinessProbe"]):
        assert probe["httpGet"]["scheme"] == "HTTPS"
        (header,) = probe["httpGet"]["httpHeaders"]
        assert header["name"] == "Authorization"
        assert probes.check(header["value"])
        assert not probes.check(basic_auth("probe", "wrong"))


def test_the_sidecar_prometheus_scrapes_with_the_password_of_the_web_config() -> None:
    path = DEPLOY / "kubernetes" / "sidecar.yaml"
    (config_map,) = [d for d in documents(path) if d["kind"] == "ConfigMap" and "prometheus.yml" in d["data"]]
    (job,) = yaml.safe_load(config_map["data"]["prometheus.yml"])["scrape_configs"]
    assert job["scheme"] == "https"
    (prometheus,) = [c for c in pod_spec(path)["containers"] if c["name"] == "prometheus"]
    mounts = {m["mountPath"]: m["name"] for m in prometheus["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(path)["volumes"]}
    password_file = Path(job["basic_auth"]["password_file"])
    secret = volumes[mounts[str(password_file.parent)]]["secret"]
    assert secret["items"] == [{"key": password_file.name, "path": password_file.name}]
    (stored,) = [d for d in documents(path) if d["kind"] == "Secret"]
    password = stored["stringData"][password_file.name]
    assert BasicAuth(web_config(path).users).check(basic_auth(job["basic_auth"]["username"], password))
    assert Path(job["tls_config"]["ca_file"]).parent.as_posix() in mounts


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = DEPLOY.joinpath("Dockerfile").read_text().replace("\\\n", " ")
    pairs = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), " ".join(arguments.split())))
    return pairs


def test_the_dockerfile_runs_the_exporter_under_tini_as_a_non_root_user() -> None:
    steps = dockerfile()
    instructions = [instruction for instruction, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim")
    (user,) = [arguments for instruction, arguments in steps if instruction == "USER"]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0
    assert instructions.index("USER") > max(i for i, name in enumerate(instructions) if name == "RUN")
    assert json.loads(dict(steps)["ENTRYPOINT"]) == ["tini", "--", "itsm-exporter"]
    assert any("apt-get install" in arguments and " tini " in arguments for _, arguments in steps)
    assert ("EXPOSE", str(DEFAULT_PORT)) in steps
    assert dict(steps)["HEALTHCHECK"].endswith(' CMD ["itsm-exporter", "healthcheck"]')  # tests/test_deploy_running.py


def test_the_dockerfile_and_its_context_carry_no_secrets() -> None:
    for instruction, arguments in dockerfile():
        if instruction in ("ENV", "ARG", "LABEL"):
            assert not any(word in arguments.upper() for word in ("PASSWORD", "TOKEN", "SECRET", "KEY"))
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[1:5] == ["*", "!pyproject.toml", "!README.md", "!itsm_exporter/"]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_the_shipped_demo_source_maps_every_demo_question(path: Path) -> None:
    """Else every sync logs WARNINGs and itsm_survey_mapping_answers{role="unmapped"} is not 0 (README step 4)."""
    from itsm_exporter.connectors.demo.connector import DEMO_COMPLAINTS, DEMO_SURVEYS

    (config_map,) = [d for d in documents(path) if d["kind"] == "ConfigMap" and "config.yaml" in d["data"]]
    (demo,) = [s for s in yaml.safe_load(config_map["data"]["config.yaml"])["sources"] if s["kind"] == "demo"]
    assert (demo["surveys"], demo["complaints"]) == (DEMO_SURVEYS, DEMO_COMPLAINTS)
