"""Secrets never reach anything a user can see; TLS is verified by default and turning it off is loud.

Distinctive secrets are configured inline, from `*_file` and from `${ENV}` for every kind of credential
(ServiceNow password and OAuth client secret, Jira Cloud API token, Jira Data Center bearer PAT), on
sources that succeed, are refused (401), cannot connect, or fail TLS verification. Every text a user
can see is then searched for each secret and for its base64 Basic-auth form: the logs of `once`,
`check-config` and `run` at debug level in logfmt and JSON, every exposition, the landing page, the
health endpoints, the CLI's messages about bad configs, and the reprs of the config objects.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from itsm_exporter.cli import main
from itsm_exporter.config import load_config, parse_config
from itsm_exporter.connectors.http import build_session
from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.servicenow.config import ServiceNowSource
from itsm_exporter.connectors.servicenow.connector import ServiceNowConnector
from tests.fakes.jira import FakeJira
from tests.fakes.loopback import LoopbackServer, closed_port
from tests.fakes.servicenow import FakeServiceNow
from tests.plans import run_plan

pytestmark = pytest.mark.integration  # starts servers or subprocesses on loopback

ROOT = Path(__file__).resolve().parent.parent
RUN = (sys.executable, "-m", "itsm_exporter", "run")
WAIT_SECONDS = 60.0

SN_USER = "itsm-exporter"
SN_PASSWORD = "S3cr3t-Pa55-ZQX"
SN_FILE_PASSWORD = "F1le-Pa55-NJTQ"
SN_ENV_PASSWORD = "3nv-Pa55-GQLX"
SN_CLIENT_ID = "itsm-client"
SN_CLIENT_SECRET = "0Auth-Cl13nt-S3cret-WVU"
SN_FILE_CLIENT_SECRET = "0Auth-F1le-S3cret-HRD"
JIRA_USER = "bot@acme.com"
JIRA_TOKEN = "ATATT-J1ra-T0ken-KRBM"
JIRA_DENIED_TOKEN = "J1ra-D3nied-T0k-EWQP"
JIRA_PAT = "B3arer-PAT-DC-YHMZ"
SECRETS = {
    "ServiceNow password (inline)": (SN_USER, SN_PASSWORD),
    "ServiceNow password (password_file)": (SN_USER, SN_FILE_PASSWORD),
    "ServiceNow password (${ENV})": (SN_USER, SN_ENV_PASSWORD),
    "OAuth client secret (inline)": (SN_CLIENT_ID, SN_CLIENT_SECRET),
    "OAuth client secret (client_secret_file)": (SN_CLIENT_ID, SN_FILE_CLIENT_SECRET),
    "Jira API token (token_file)": (JIRA_USER, JIRA_TOKEN),
    "Jira API token (inline, refused)": (JIRA_USER, JIRA_DENIED_TOKEN),
    "Jira bearer PAT (${ENV})": (None, JIRA_PAT),
}
ENVIRONMENT = {"ITSM_TEST_SN_PASSWORD": SN_ENV_PASSWORD, "ITSM_TEST_JIRA_PAT": JIRA_PAT}
INSECURE_WARNING = "TLS certificate verification is off for this source"
LOGFMT = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)')


def forbidden(extra_tokens: Collection[str] = ()) -> dict[str, str]:
    """Every string that must never be shown, named by what it is: secrets, their Basic-auth forms, issued tokens."""
    found: dict[str, str] = {}
    for label, (user, secret) in SECRETS.items():
        found[label] = secret
        found[f"{label}, base64"] = base64.b64encode(secret.encode()).decode()
        if user is not None:
            found[f"{label}, Basic auth"] = base64.b64encode(f"{user}:{secret}".encode()).decode()
    found |= {f"issued OAuth token {n}": token for n, token in enumerate(sorted(extra_tokens))}
    return found


def assert_no_secret(text: str, where: str, extra_tokens: Collection[str] = ()) -> None:
    leaks = [label for label, secret in forbidden(extra_tokens).items() if secret in text]
    assert not leaks, f"{where} shows {', '.join(leaks)}"


# -- upstreams ------------------------------------------------------------------------------------------


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed: what default verification must refuse."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


class _EmptyTable(BaseHTTPRequestHandler):
    """A ServiceNow instance with empty tables: enough to tell a TLS failure from a successful sync."""

    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        body = b'{"result": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(https URL, CA file) of a TLS server on 127.0.0.1 with a self-signed certificate."""
    cert, key = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = LoopbackServer(_EmptyTable, tls=context)
    yield server.url("https"), cert
    server.stop()


def seed(fake: FakeServiceNow) -> None:
    group = fake.add("sys_user_group", name="Service Desk")
    for n in range(3):
        fake.add(
            "incident",
            number=f"INC000000{n}",
            state="6",
            opened_at=f"2026-03-0{n + 1} 08:00:00",
            resolved_at=f"2026-03-0{n + 1} 10:00:00",
            sys_updated_on=f"2026-03-0{n + 1} 10:00:00",
            priority="3",
            assignment_group=group,
            made_sla="true",
        )


@dataclass
class Upstreams:
    servicenow: FakeServiceNow
    oauth: FakeServiceNow
    denied: FakeServiceNow
    oauth_denied: FakeServiceNow
    jira_cloud: FakeJira
    jira_dc: FakeJira
    jira_denied: FakeJira
    tls_url: str
    ca_file: Path

    def issued_tokens(self) -> set[str]:
        return self.oauth.access_tokens | self.oauth.refresh_tokens


@pytest.fixture
def upstreams(tls_server: tuple[str, Path]) -> Iterator[Upstreams]:
    with (
        FakeServiceNow(user=SN_USER, password=SN_PASSWORD) as servicenow,
        FakeServiceNow(
            user=SN_USER, password=SN_FILE_PASSWORD, client_id=SN_CLIENT_ID, client_secret=SN_CLIENT_SECRET
        ) as oauth,
        FakeServiceNow(user=SN_USER, password="the-right-one") as denied,
        FakeServiceNow(
            user=SN_USER, password=SN_PASSWORD, client_id=SN_CLIENT_ID, client_secret="another-client-secret"
        ) as oauth_denied,
        FakeJira("cloud", username=JIRA_USER, token=JIRA_TOKEN) as jira_cloud,
        FakeJira("datacenter", time_zone="America/Phoenix", username=None, token=JIRA_PAT) as jira_dc,
        FakeJira("cloud", username=JIRA_USER, token="the-right-token") as jira_denied,
    ):
        seed(servicenow)
        seed(oauth)
        yield Upstreams(servicenow, oauth, denied, oauth_denied, jira_cloud, jira_dc, jira_denied, *tls_server)


def sources(up: Upstreams, secrets_dir: Path) -> list[dict[str, Any]]:
    """One source per way of giving a secret and per way of failing; no retries, so failures are immediate."""
    (secrets_dir / "sn-password").write_text(SN_FILE_PASSWORD + "\n")
    (secrets_dir / "sn-client-secret").write_text(SN_FILE_CLIENT_SECRET + "\n")
    (secrets_dir / "jira-token").write_text(JIRA_TOKEN + "\n")
    sn = {"kind": "servicenow", "username": SN_USER, "max_retries": 0, "timeout": "10s", "connect_timeout": "5s"}
    jira = {"kind": "jira", "max_retries": 0, "timeout": "10s", "connect_timeout": "5s"}
    return [
        sn | {"name": "sn-inline", "url": up.servicenow.url, "password": SN_PASSWORD},
        sn
        | {
            "name": "sn-oauth",
            "url": up.oauth.url,
            "password_file": str(secrets_dir / "sn-password"),
            "client_id": SN_CLIENT_ID,
            "client_secret": SN_CLIENT_SECRET,
        },
        sn | {"name": "sn-denied", "url": up.denied.url, "password": "${ITSM_TEST_SN_PASSWORD}"},
        sn
        | {
            "name": "sn-oauth-denied",
            "url": up.oauth_denied.url,
            "password": SN_PASSWORD,
            "client_id": SN_CLIENT_ID,
            "client_secret_file": str(secrets_dir / "sn-client-secret"),
        },
        sn | {"name": "sn-refused", "url": f"http://127.0.0.1:{closed_port()}", "password": SN_PASSWORD},
        sn | {"name": "sn-tls", "url": up.tls_url, "password": SN_PASSWORD},
        sn | {"name": "sn-tls-ca", "url": up.tls_url, "password": SN_PASSWORD, "ca_bundle": str(up.ca_file)},
        sn | {"name": "sn-insecure", "url": up.tls_url, "password": SN_PASSWORD, "verify_tls": False},
        jira
        | {
            "name": "jira-cloud",
            "url": up.jira_cloud.url,
            "username": JIRA_USER,
            "token_file": str(secrets_dir / "jira-token"),
        },
        jira | {"name": "jira-dc", "url": up.jira_dc.url, "token": "${ITSM_TEST_JIRA_PAT}"},
        jira | {"name": "jira-denied", "url": up.jira_denied.url, "username": JIRA_USER, "token": JIRA_DENIED_TOKEN},
    ]


UP = {"sn-inline", "sn-oauth", "sn-tls-ca", "sn-insecure", "jira-cloud", "jira-dc"}
DOWN = {"sn-denied", "sn-oauth-denied", "sn-refused", "sn-tls", "jira-denied"}


def write_config(up: Upstreams, tmp_path: Path, log_format: str = "logfmt") -> Path:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(exist_ok=True)
    document = {
        "store": {"path": str(tmp_path / f"store-{log_format}.db")},
        "refresh_interval": "1h",
        "log": {"level": "debug", "format": log_format},
        "sources": sources(up, secrets_dir),
    }
    path = tmp_path / f"config-{log_format}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


ENVIRONMENT_CA_BUNDLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
"""requests lets these override a session's `verify` (see test_an_environment_ca_bundle_...)."""


def child_environment() -> dict[str, str]:
    """The test's environment plus the secret variables, without proxies (all is on loopback) or CA overrides."""
    kept = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and k not in ENVIRONMENT_CA_BUNDLES}
    return kept | ENVIRONMENT


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "itsm_exporter", *args],
        cwd=ROOT,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS,
        check=False,
    )


def log_records(stderr: str, log_format: str) -> list[dict[str, str]]:
    """The log lines of stderr as field maps; other lines (`error: ...`) are left out."""
    records = []
    for line in stderr.splitlines():
        if log_format == "json" and line.startswith("{"):
            records.append({k: str(v) for k, v in json.loads(line).items()})
        elif log_format == "logfmt" and line.startswith("ts="):
            records.append(
                {key: json.loads(value) if value.startswith('"') else value for key, value in LOGFMT.findall(line)}
            )
    return records


def insecure_warnings(stderr: str, log_format: str) -> list[str]:
    """The sources named by WARNING records about TLS verification being off, in order."""
    return [
        record["source"]
        for record in log_records(stderr, log_format)
        if record["level"] == "warning" and record["msg"].startswith(INSECURE_WARNING)
    ]


# -- once and check-config ------------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_once_and_check_config_show_no_secret(upstreams: Upstreams, tmp_path: Path, log_format: str) -> None:
    config = write_config(upstreams, tmp_path, log_format)
    once = cli("once", "--config", str(config), "--log.level", "debug")
    check = cli("check-config", "--config", str(config))

    assert once.returncode == 1, once.stderr
    errors = sorted(line for line in once.stderr.splitlines() if line.startswith("error: "))
    assert [line.split(":")[1].split()[-1] for line in errors] == sorted(DOWN)
    # Every way of giving a secret worked: the sources that should sync did.
    assert {name for name in UP | DOWN if f'itsm_source_up{{source="{name}"}} 1.0' in once.stdout} == UP
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith(f"{config}: valid; sources: sn-inline (servicenow)")
    # The OAuth flow really ran: the fake issued tokens, and they are secrets too.
    assert upstreams.oauth.access_tokens
    for name, text in {"once stdout": once.stdout, "once stderr": once.stderr}.items():
        assert_no_secret(text, f"{log_format} {name}", upstreams.issued_tokens())
    assert_no_secret(check.stdout + check.stderr, "check-config output")
    assert insecure_warnings(once.stderr, log_format) == ["sn-insecure"]


def test_errors_of_failing_sources_say_what_failed_without_the_secret(upstreams: Upstreams, tmp_path: Path) -> None:
    once = cli("once", "--config", str(write_config(upstreams, tmp_path)))
    errors = {line.split(":")[1].split()[-1]: line for line in once.stderr.splitlines() if line.startswith("error: ")}
    assert set(errors) == DOWN
    assert f"HTTP 401, user {SN_USER} was refused" in errors["sn-denied"]
    assert (
        f"the OAuth password grant for user {SN_USER} and client {SN_CLIENT_ID} was refused"
        in errors["sn-oauth-denied"]
    )
    assert (
        "connection refused by 127.0.0.1:" in errors["sn-refused"] and "check the source's url" in errors["sn-refused"]
    )
    assert "the TLS handshake with 127.0.0.1:" in errors["sn-tls"] and "set ca_bundle" in errors["sn-tls"]
    assert f"HTTP 401, user {JIRA_USER} was refused" in errors["jira-denied"]
    assert_no_secret(once.stderr, "once errors")


# -- the daemon ------------------------------------------------------------------------------------------


@dataclass
class Daemon:
    process: subprocess.Popen[str]
    url: str

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=10, **kwargs)

    def wait_for_every_sync(self) -> None:
        """Poll /metrics (bounded) until every source has finished a sync: its duration is exported."""
        pause = threading.Event()
        for _ in range(int(WAIT_SECONDS / 0.1)):
            assert self.process.poll() is None, "the daemon exited"
            try:
                text = self.get("/metrics").text
            except requests.ConnectionError:
                text = ""
            done = {name for name in UP | DOWN if f'itsm_source_sync_duration_seconds{{source="{name}"}}' in text}
            if done == UP | DOWN:
                return
            pause.wait(0.1)
        pytest.fail("not every source finished its first sync in time")


@pytest.mark.parametrize("log_format", ["logfmt", "json"])
def test_daemon_shows_no_secret_anywhere(upstreams: Upstreams, tmp_path: Path, log_format: str) -> None:
    config = write_config(upstreams, tmp_path, log_format)
    port = closed_port()
    stderr_path = tmp_path / "daemon.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [*RUN, "--config", str(config), "--web.listen-address", f"127.0.0.1:{port}", "--log.level", "debug"],
            cwd=ROOT,
            env=child_environment(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            text=True,
        )
    daemon = Daemon(process, f"http://127.0.0.1:{port}")
    try:
        daemon.wait_for_every_sync()
        pages = {
            "/metrics (text)": daemon.get("/metrics"),
            "/metrics (OpenMetrics)": daemon.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            ),
            "/": daemon.get("/"),
            "/-/healthy": daemon.get("/-/healthy"),
            "/-/ready": daemon.get("/-/ready"),
            "/-/reload (GET)": daemon.get("/-/reload"),
            "/-/reload (POST)": requests.post(daemon.url + "/-/reload", timeout=10),
            "/nowhere": daemon.get("/nowhere"),
        }
    finally:
        process.terminate()
        code = process.wait(WAIT_SECONDS)
    log = stderr_path.read_text()
    assert code == 0, log
    assert pages["/metrics (OpenMetrics)"].headers["Content-Type"].startswith("application/openmetrics-text")
    assert pages["/metrics (OpenMetrics)"].text.endswith("# EOF\n")
    assert pages["/-/ready"].status_code == 503  # the refused sources never sync
    assert pages["/-/reload (POST)"].status_code == 200
    landing = pages["/"].text
    assert "was refused" in landing and "TLS handshake" in landing  # errors are shown ...
    for name, response in pages.items():
        assert_no_secret(response.text, name, upstreams.issued_tokens())  # ... secrets are not
        assert_no_secret(str(response.headers), f"{name} headers")
    assert any(record["level"] == "debug" for record in log_records(log, log_format))
    assert_no_secret(log, f"run log ({log_format})", upstreams.issued_tokens())
    # At start and again after the reload, and for no other source.
    assert insecure_warnings(log, log_format) == ["sn-insecure", "sn-insecure"]


# -- bad configs -------------------------------------------------------------------------------------


WRONG_SIBLINGS: list[Any] = [
    pytest.param("username", [SN_PASSWORD], id="username-list"),
    pytest.param("client_id", {"id": SN_PASSWORD}, id="client_id-mapping"),
    pytest.param("password", [SN_PASSWORD], id="password-list"),
    pytest.param("password", {"value": SN_PASSWORD}, id="password-mapping"),
    pytest.param("page_size", SN_PASSWORD, id="page_size"),
    pytest.param("max_retries", SN_PASSWORD, id="max_retries"),
    pytest.param("verify_tls", SN_PASSWORD, id="verify_tls"),
    pytest.param("proxy", [SN_PASSWORD], id="proxy-list"),
    pytest.param("url", SN_PASSWORD, id="url"),
    pytest.param("table", [SN_PASSWORD], id="table-list"),
    pytest.param("sla_source", SN_PASSWORD, id="sla_source"),
    pytest.param("passwd", SN_PASSWORD, id="misspelled-key"),
    pytest.param("timeout", SN_PASSWORD, id="timeout"),
    pytest.param("connect_timeout", SN_PASSWORD, id="connect_timeout"),
    pytest.param("kind", SN_PASSWORD, id="kind"),
]


@pytest.mark.parametrize(("field", "value"), WRONG_SIBLINGS)
def test_config_errors_do_not_echo_a_secret_in_a_wrong_field(
    field: str, value: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = {"name": "sn", "kind": "servicenow", "url": "https://acme.service-now.com", "username": SN_USER}
    source |= {"password": SN_PASSWORD, field: value}
    config = tmp_path / "bad.yaml"
    config.write_text(yaml.safe_dump({"store": {"path": str(tmp_path / "s.db")}, "sources": [source]}))
    shown = []
    for command in ("check-config", "once", "run"):
        assert main([command, "--config", str(config)]) == 1
        out, err = capsys.readouterr()
        assert f"sources[0]{'.' + field if field != 'kind' else ''}" in err  # the problem is named by its path
        shown.append(out + err)
    assert_no_secret("\n".join(shown), f"the CLI's messages about {field}")


def test_a_top_level_value_that_holds_a_secret_is_not_echoed(tmp_path: Path) -> None:
    """The same through a real process: a secret pasted at the wrong indentation lands in a top-level key."""
    config = tmp_path / "bad.yaml"
    config.write_text(
        "store: {path: " + str(tmp_path / "s.db") + "}\n"
        f"min_responses: {SN_PASSWORD}\n"
        "sources:\n  - {name: demo, kind: demo}\n"
    )
    result = cli("check-config", "--config", str(config))
    assert result.returncode == 1
    assert "min_responses: Input should be a valid integer" in result.stderr
    assert_no_secret(result.stdout + result.stderr, "check-config on a bad file")


# -- objects and TLS defaults -------------------------------------------------------------------------


def test_config_objects_hide_their_secrets(
    upstreams: Upstreams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    config = load_config(write_config(upstreams, tmp_path))
    texts = {
        "repr(config)": repr(config),
        "str(config)": str(config),
        "model_dump": str(config.model_dump()),
        "model_dump_json": config.model_dump_json(),
    }
    for source in config.sources:
        texts[f"repr({source.name})"] = repr(source)
        texts[f"str({source.name})"] = str(source)
    for where, text in texts.items():
        assert_no_secret(text, where)
    oauth = config.source("sn-oauth")
    assert isinstance(oauth, ServiceNowSource) and oauth.client_secret is not None
    assert oauth.client_secret.get_secret_value() == SN_CLIENT_SECRET  # the secret is there, only hidden
    assert "**********" in texts["repr(sn-inline)"]


def test_tls_is_verified_by_default(upstreams: Upstreams, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    config = load_config(write_config(upstreams, tmp_path))
    bare = parse_config(
        {"sources": [{"name": "j", "kind": "jira", "url": "https://acme.atlassian.net", "token": "t"}]},
        check_files=False,
    ).sources[0]
    assert isinstance(bare, JiraSource) and bare.verify_tls is True
    default, with_ca, insecure = (config.source(n) for n in ("sn-tls", "sn-tls-ca", "sn-insecure"))
    assert isinstance(default, ServiceNowSource) and isinstance(with_ca, ServiceNowSource)
    assert isinstance(insecure, ServiceNowSource)
    assert (default.verify_tls, with_ca.verify_tls, insecure.verify_tls) == (True, True, False)
    assert build_session(default).verify is True
    assert build_session(with_ca).verify == str(upstreams.ca_file)
    assert build_session(insecure).verify is False


# verify_tls: false is the setting under test: urllib3 warning about the unverified request is expected.
@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("setting", [{"verify_tls": False}, {"ca_bundle": "CA"}], ids=["verify_tls-false", "ca_bundle"])
def test_an_environment_ca_bundle_does_not_override_the_source_tls_settings(
    tls_server: tuple[str, Path], setting: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    settings = {"name": "sn", "kind": "servicenow", "url": url, "username": SN_USER, "password": SN_PASSWORD}
    settings |= {k: str(ca_file) if v == "CA" else v for k, v in setting.items()} | {"max_retries": 0}
    source = parse_config({"sources": [settings]}, check_files=False).sources[0]
    assert isinstance(source, ServiceNowSource)
    connector = ServiceNowConnector(source)
    try:
        assert run_plan(connector) == []  # empty tables: no batch, and above all no SSLError
    finally:
        connector.close()


# -- a password in a URL ------------------------------------------------------------------------------

URL_PASSWORD = "SeCrEt-URL-777"


def test_a_password_in_a_source_url_is_refused_and_hidden_wherever_a_url_is_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Validation refuses `https://user:password@host`; should such a URL get past it (a future code path, a
    URL built elsewhere), stderr, the log, discover's report and the landing page still show `xxxxx`."""
    import io
    import logging

    from itsm_exporter import discover
    from itsm_exporter.cli import _once
    from itsm_exporter.daemon import Daemon
    from itsm_exporter.logsetup import configure_logging
    from itsm_exporter.web import ExporterServer

    refused = f"127.0.0.1:{closed_port()}"
    config_file = tmp_path / "config.yaml"
    url = f"http://u:{URL_PASSWORD}@{refused}"
    config_file.write_text(f"sources: [{{name: sn, kind: servicenow, url: '{url}', username: u, password: p}}]\n")
    assert main(["check-config", "--config", str(config_file)]) == 1
    refusal = capsys.readouterr().err
    assert "sources[0].url: holds a user name or password" in refusal and URL_PASSWORD not in refusal

    with FakeServiceNow(user=SN_USER, password="the-right-one") as denied:
        sn = {"kind": "servicenow", "username": SN_USER, "password": SN_PASSWORD, "max_retries": 0}
        valid = parse_config(
            {
                "store": {"path": str(tmp_path / "store.db")},
                "sources": [
                    sn | {"name": "refused", "url": f"http://{refused}"},
                    sn | {"name": "denied", "url": denied.url},
                ],
            }
        )
        # What validation would refuse, put back as if it had got through.
        config = valid.model_copy(
            update={
                "sources": [
                    source.model_copy(update={"url": source.url.replace("://", f"://u:{URL_PASSWORD}@")})
                    for source in valid.sources
                ]
            }
        )
        log = io.StringIO()
        configure_logging(stream=log)
        try:
            assert _once(config, None) == 1
            stderr = capsys.readouterr().err
            report = io.StringIO()
            assert discover.run(config, None, out=report) == 1
            daemon = Daemon(config)
            server = ExporterServer(("127.0.0.1", 0), daemon)
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
            try:
                daemon.sync_all()
                assert daemon.wait_for_syncs(WAIT_SECONDS)
                landing = requests.get(f"http://127.0.0.1:{server.server_port}/", timeout=10).text
            finally:
                server.shutdown()
                server.server_close()
                daemon.close(WAIT_SECONDS)
        finally:
            logging.getLogger().handlers.clear()
    for name, text in {"stderr": stderr, "log": log.getvalue(), "discover": report.getvalue(), "/": landing}.items():
        assert URL_PASSWORD not in text, name
        assert f"http://u:xxxxx@{refused}" in text, name  # the URL is shown, its password is not
    assert f"HTTP 401, user {SN_USER} was refused" in stderr and "u:xxxxx@127.0.0.1" in stderr
