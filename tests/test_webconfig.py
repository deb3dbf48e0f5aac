"""`--web.config.file`: the exporter-toolkit format validated, and every endpoint behind TLS and basic auth.

The daemon runs in-process on 127.0.0.1 with a throwaway CA (tests/pki.py); clients are requests and the
ssl module. The real-Prometheus scrape over TLS is in tests/test_prometheus_integration.py.
"""

from __future__ import annotations

import base64
import logging
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import requests
import yaml
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from itsm_exporter import cli
from itsm_exporter.config import demo_config
from itsm_exporter.daemon import Daemon
from itsm_exporter.web import ExporterServer
from itsm_exporter.webconfig import BasicAuth, WebConfigError, load_web_config
from tests.pki import Authority, Issued, bcrypt_hash

pytestmark = pytest.mark.integration  # starts servers or subprocesses on loopback

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 10.0
PASSWORD = "correct horse battery staple"
HASH = bcrypt_hash(PASSWORD)
HEADERS = {"X-Frame-Options": "deny", "X-Content-Type-Options": "nosniff", "Strict-Transport-Security": "max-age=60"}
ENDPOINTS = [("GET", "/metrics"), ("GET", "/"), ("GET", "/-/healthy"), ("GET", "/-/ready"), ("GET", "/-/reload")]
ENDPOINTS += [("POST", "/-/reload")]


@dataclass
class PKI:
    directory: Path
    ca: Authority
    server: Issued
    client: Issued


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    ca = Authority(tmp_path / "pki")
    return PKI(tmp_path / "pki", ca, ca.issue("server"), ca.issue("prometheus", client=True))


def write(path: Path, document: Any) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def tls_config(pki: PKI, **extra: Any) -> dict[str, Any]:
    """A web config beside the PKI, with file names relative to it (the toolkit's rule)."""
    return {
        "tls_server_config": {"cert_file": pki.server.cert.name, "key_file": pki.server.key.name, **extra},
        "http_server_config": {"headers": HEADERS},
        "basic_auth_users": {"prometheus": HASH},
    }


# The format.


def test_a_full_configuration_is_read_with_paths_relative_to_its_file(pki: PKI) -> None:
    file = write(
        pki.directory / "web.yml",
        tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file="ca.crt", min_version="TLS13"),
    )
    web = load_web_config(file)
    assert web.tls is not None
    assert (web.tls.cert_file, web.tls.key_file, web.tls.client_ca_file) == (
        pki.server.cert,
        pki.server.key,
        pki.ca.cert,
    )
    assert web.tls.min_version == "TLS13" and web.tls.max_version == "TLS13"
    assert web.ssl_context is not None and web.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert web.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert dict(web.headers) == HEADERS
    assert list(web.users) == ["prometheus"]
    assert HASH not in repr(web)


@pytest.mark.parametrize("text", ["", "# nothing\n", "{}\n", "tls_server_config: {}\nbasic_auth_users: {}\n"])
def test_an_empty_configuration_is_plain_http_without_auth(tmp_path: Path, text: str) -> None:
    file = tmp_path / "web.yml"
    file.write_text(text)
    web = load_web_config(file)
    assert (web.tls, web.ssl_context, dict(web.users), web.headers) == (None, None, {}, ())


def test_the_toolkit_sample_with_users_and_http2_is_accepted(pki: PKI) -> None:
    document = tls_config(pki)
    document["http_server_config"]["http2"] = False
    document["http_server_config"]["headers"] = {"X-XSS-Protection": 1, "Content-Security-Policy": ""}
    web = load_web_config(write(pki.directory / "web.yml", document))
    assert (web.http2, web.headers) == (False, (("X-XSS-Protection", "1"),))


BAD_DOCUMENTS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("unknown top key", {"tls_server_config": {}, "basic_auth": {}}, ["basic_auth: unknown key"]),
    (
        "unknown nested key (toolkit's junk_key)",
        {"tls_server_config": {"cert_filse": "server.crt"}},
        ["tls_server_config.cert_filse: unknown key"],
    ),
    (
        "unsupported TLS keys",
        {
            "tls_server_config": {
                "cert_file": "server.crt",
                "key_file": "server.key",
                "cipher_suites": ["TLS_AES_128_GCM_SHA256"],
                "curve_preferences": ["X25519"],
                "prefer_server_cipher_suites": True,
                "client_allowed_sans": ["prometheus"],
            }
        },
        [
            "tls_server_config.cipher_suites: not supported by itsm-exporter (OpenSSL's defaults apply)",
            "tls_server_config.curve_preferences: not supported by itsm-exporter (OpenSSL's defaults apply)",
            "tls_server_config.prefer_server_cipher_suites: not supported by itsm-exporter",
            "tls_server_config.client_allowed_sans: not supported by itsm-exporter",
        ],
    ),
    (
        "inline certificate and rate limit",
        {"tls_server_config": {"cert": "-----BEGIN", "key_file": "server.key"}, "rate_limit": {"burst": 1}},
        [
            "rate_limit: not supported by itsm-exporter",
            "tls_server_config.cert: not supported by itsm-exporter (use cert_file)",
            "tls_server_config.cert_file: required when TLS is configured",
        ],
    ),
    (
        "client auth without verification",
        {
            "tls_server_config": {
                "cert_file": "server.crt",
                "key_file": "server.key",
                "client_auth_type": "RequireAnyClientCert",
            }
        },
        [
            "tls_server_config.client_auth_type: RequireAnyClientCert not supported by itsm-exporter "
            "(it accepts unverified certificates); use RequireAndVerifyClientCert"
        ],
    ),
    (
        "client CA without a policy (toolkit's noAuth.bad)",
        {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_ca_file": "ca.crt"}},
        ["tls_server_config.client_ca_file: set without a client_auth_type that verifies client certificates"],
    ),
    (
        "verification without a CA (toolkit's clientCAs_missing)",
        {
            "tls_server_config": {
                "cert_file": "server.crt",
                "key_file": "server.key",
                "client_auth_type": "RequireAndVerifyClientCert",
            }
        },
        ["tls_server_config.client_ca_file: required by client_auth_type RequireAndVerifyClientCert"],
    ),
    (
        "TLS versions (toolkit's wrongTLSVersion)",
        {
            "tls_server_config": {
                "cert_file": "server.crt",
                "key_file": "server.key",
                "min_version": "TLS111",
                "client_auth_type": "Sometimes",
            }
        },
        [
            "tls_server_config.client_auth_type: 'Sometimes' is not one of NoClientCert, VerifyClientCertIfGiven, "
            "RequireAndVerifyClientCert",
            "tls_server_config.min_version: 'TLS111' is not one of TLS10, TLS11, TLS12, TLS13",
        ],
    ),
    (
        "min above max",
        {
            "tls_server_config": {
                "cert_file": "server.crt",
                "key_file": "server.key",
                "min_version": "TLS13",
                "max_version": "TLS12",
            }
        },
        ["tls_server_config.min_version: TLS13 is above max_version"],
    ),
    (
        "headers the toolkit forbids (extra_header, frame_options)",
        {
            "http_server_config": {
                "headers": {"Content-Type": "foo", "X-Frame-Options": "foo", "x-content-type-options": "nosniff"},
                "http2": "yes",
            }
        },
        [
            "http_server_config.http2: must be true or false",
            "http_server_config.headers.Content-Type: cannot be configured (allowed: Strict-Transport-Security, "
            "X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy)",
            "http_server_config.headers.X-Frame-Options: 'foo' is not one of deny, sameorigin",
            "http_server_config.headers.x-content-type-options: cannot be configured (allowed: "
            "Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, "
            "Content-Security-Policy)",
        ],
    ),
    (
        "a password where the hash belongs (toolkit's user_list_invalid)",
        {"basic_auth_users": {"john": "doe", "jane": "$2y$10$short", "ok": HASH}},
        [
            "basic_auth_users.john: not a bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31)",
            "basic_auth_users.jane: not a bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31)",
        ],
    ),
    ("not a mapping", {"basic_auth_users": ["alice"]}, ["basic_auth_users: must be a mapping"]),
]


@pytest.mark.parametrize(("document", "problems"), [c[1:] for c in BAD_DOCUMENTS], ids=[c[0] for c in BAD_DOCUMENTS])
def test_bad_configurations_name_every_problem(pki: PKI, document: dict[str, Any], problems: list[str]) -> None:
    with pytest.raises(WebConfigError) as raised:
        load_web_config(write(pki.directory / "web.yml", document))
    assert raised.value.problems == problems
    assert "doe" not in str(raised.value.problems) and "short" not in str(raised.value.problems)


def test_unusable_files_are_named(pki: PKI) -> None:
    directory = pki.directory
    missing = write(
        directory / "web.yml",
        tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file="nowhere/ca.crt"),
    )
    with pytest.raises(WebConfigError) as raised:
        load_web_config(missing)
    assert raised.value.problems == [
        f"tls_server_config.client_ca_file: cannot read {directory / 'nowhere/ca.crt'}: No such file or directory"
    ]

    (directory / "garbage.key").write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    document = tls_config(pki)
    document["tls_server_config"]["key_file"] = "garbage.key"
    with pytest.raises(WebConfigError) as raised:
        load_web_config(write(directory / "web.yml", document))
    (problem,) = raised.value.problems
    assert problem.startswith(f"tls_server_config.key_file: cannot load the certificate and key ({pki.server.cert}, ")

    other = pki.ca.issue("other")  # a key that does not match the certificate
    document["tls_server_config"]["key_file"] = other.key.name
    with pytest.raises(WebConfigError) as raised:
        load_web_config(write(directory / "web.yml", document))
    assert "KEY_VALUES_MISMATCH" in raised.value.problems[0] or "mismatch" in raised.value.problems[0]

    (directory / "bad.yml").write_text("tls_server_config:\n  cert_file: [\n")
    with pytest.raises(WebConfigError) as raised:
        load_web_config(directory / "bad.yml")
    assert raised.value.problems[0].startswith("not valid YAML at line 3")


# Basic auth.


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class CountingBcrypt:
    """Counts bcrypt checks while doing them for real."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = bcrypt.checkpw

        def checkpw(password: bytes, hashed: bytes) -> bool:
            self.calls += 1
            return real(password, hashed)

        monkeypatch.setattr("itsm_exporter.webconfig.bcrypt.checkpw", checkpw)


def test_a_verified_password_is_remembered_and_a_wrong_one_never(monkeypatch: pytest.MonkeyPatch) -> None:
    counting = CountingBcrypt(monkeypatch)
    auth = BasicAuth({"prometheus": HASH.encode()})
    assert [auth.check(header("prometheus", PASSWORD)) for _ in range(3)] == [True] * 3
    assert counting.calls == 1
    assert [auth.check(header("prometheus", "wrong")) for _ in range(2)] == [False] * 2
    assert counting.calls == 3  # failures are checked every time, never remembered as a success
    assert auth.check(header("prometheus", PASSWORD)) and counting.calls == 3
    assert not auth.check(header("nobody", PASSWORD))
    assert counting.calls == 4  # an unknown user costs a bcrypt too: the timing does not tell users apart


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), header("", PASSWORD)],
)
def test_malformed_credentials_are_refused(authorization: str | None) -> None:
    assert not BasicAuth({"prometheus": HASH.encode()}).check(authorization)


def test_a_long_password_is_checked_by_its_first_72_bytes() -> None:
    long = "p" * 100
    auth = BasicAuth({"u": bcrypt.hashpw(long[:72].encode(), bcrypt.gensalt(rounds=4))})
    assert auth.check(header("u", long))
    assert not auth.check(header("u", "p" * 71))


# Served.


@dataclass
class Served:
    daemon: Daemon
    server: ExporterServer
    file: Path
    url: str

    @property
    def port(self) -> int:
        return self.server.server_port


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    started: list[Served] = []

    def start(file: Path) -> Served:
        daemon = Daemon(demo_config(tmp_path / "demo.db"))
        server = ExporterServer(("127.0.0.1", 0), daemon, load_web_config(file))
        daemon.add_reload_hook(server.reload_web_config)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        scheme = "https" if server.state.config.tls else "http"
        started.append(Served(daemon, server, file, f"{scheme}://127.0.0.1:{server.server_port}"))
        return started[-1]

    yield start
    for served in started:
        served.server.shutdown()
        served.server.server_close()
        served.daemon.close(TIMEOUT)


def call(served: Served, method: str, path: str, pki: PKI, **kwargs: Any) -> requests.Response:
    return requests.request(method, served.url + path, verify=str(pki.ca.cert), timeout=TIMEOUT, **kwargs)


def served_serial(served: Served, pki: PKI, client: Issued | None = None) -> int:
    """The serial number of the certificate a new TLS connection is given."""
    context = ssl.create_default_context(cafile=pki.ca.cert)
    if client is not None:
        context.load_cert_chain(client.cert, client.key)
    with (
        socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_every_endpoint_needs_the_password_over_tls(pki: PKI, serve: Any) -> None:
    served = serve(write(pki.directory / "web.yml", tls_config(pki)))
    expected = {"/metrics": 200, "/": 200, "/-/healthy": 200, "/-/ready": 503, "/-/reload": 405}
    for method, path in ENDPOINTS:
        for auth in (None, ("prometheus", "wrong"), ("someone", PASSWORD)):
            response = call(served, method, path, pki, auth=auth)
            assert response.status_code == 401, (method, path, auth)
            assert response.headers["WWW-Authenticate"] == 'Basic realm="itsm-exporter", charset="UTF-8"'
            assert "itsm_" not in response.text
            assert {name: response.headers.get(name) for name in HEADERS} == HEADERS
        response = call(served, method, path, pki, auth=("prometheus", PASSWORD))
        assert response.status_code == (200 if method == "POST" else expected[path]), (method, path)
        assert {name: response.headers.get(name) for name in HEADERS} == HEADERS
    metrics = call(served, "GET", "/metrics", pki, auth=("prometheus", PASSWORD))
    assert "itsm_source_up" in {f.name for f in text_string_to_metric_families(metrics.text)}
    unsupported = call(served, "PUT", "/metrics", pki)  # http.server's own error page
    assert (unsupported.status_code, unsupported.headers["X-Frame-Options"]) == (501, "deny")


def test_plain_http_to_the_tls_port_gets_no_metrics(pki: PKI, serve: Any) -> None:
    served = serve(write(pki.directory / "web.yml", tls_config(pki)))
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{served.port}/metrics", auth=("prometheus", PASSWORD), timeout=TIMEOUT)
    assert call(served, "GET", "/-/healthy", pki, auth=("prometheus", PASSWORD)).status_code == 200


def test_a_client_certificate_is_required_when_configured(pki: PKI, serve: Any) -> None:
    document = tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file="ca.crt")
    del document["basic_auth_users"]
    served = serve(write(pki.directory / "web.yml", document))
    with pytest.raises(requests.ConnectionError):
        call(served, "GET", "/metrics", pki)
    stranger = Authority(pki.directory / "stranger").issue("prometheus", client=True)
    with pytest.raises(requests.ConnectionError):
        call(served, "GET", "/metrics", pki, cert=(str(stranger.cert), str(stranger.key)))
    response = call(served, "GET", "/metrics", pki, cert=(str(pki.client.cert), str(pki.client.key)))
    assert response.status_code == 200 and "itsm_source_up" in response.text


def test_a_stalled_handshake_does_not_block_other_clients(pki: PKI, serve: Any) -> None:
    served = serve(write(pki.directory / "web.yml", tls_config(pki)))
    with socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT):  # connects, never says hello
        assert call(served, "GET", "/-/healthy", pki, auth=("prometheus", PASSWORD)).status_code == 200


def test_reload_swaps_the_certificate_and_users(pki: PKI, serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="itsm_exporter.web")
    served = serve(write(pki.directory / "web.yml", tls_config(pki)))
    first = served_serial(served, pki)
    assert first == pki.server.serial

    second = pki.ca.issue("server", cert=pki.server.cert, key=pki.server.key)  # rotated in place
    response = call(served, "POST", "/-/reload", pki, auth=("prometheus", PASSWORD))
    assert (response.status_code, response.text) == (200, "Configuration reloaded.\n")
    assert served_serial(served, pki) == second.serial != first

    third = pki.ca.issue("server", cert=pki.server.cert, key=pki.server.key)
    document = tls_config(pki)
    document["basic_auth_users"] = {"prometheus": bcrypt_hash("rotated")}
    write(served.file, document)
    served.daemon.request_reload()  # what SIGHUP does: the next tick of the loop reloads
    served.daemon.run_pending()
    assert served_serial(served, pki) == third.serial
    assert call(served, "GET", "/metrics", pki, auth=("prometheus", PASSWORD)).status_code == 401
    metrics = call(served, "GET", "/metrics", pki, auth=("prometheus", "rotated")).text
    assert 'itsm_config_reloads_total{result="success"} 2.0' in metrics
    assert [r.getMessage() for r in caplog.records if r.name == "itsm_exporter.web"] == [
        "web configuration reloaded"
    ] * 2


def test_a_bad_new_web_config_keeps_the_old_one(pki: PKI, serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    served = serve(write(pki.directory / "web.yml", tls_config(pki)))
    pki.ca.issue("server", cert=pki.server.cert, key=pki.server.key)
    document = tls_config(pki)
    document["basic_auth_users"] = {"prometheus": "plaintext-password"}
    document["tls_server_config"]["cipher_suites"] = ["TLS_AES_128_GCM_SHA256"]
    write(served.file, document)
    response = call(served, "POST", "/-/reload", pki, auth=("prometheus", PASSWORD))
    assert (response.status_code, response.text) == (
        500,
        "Reload failed; the previous configuration stays in use:\n"
        f"  {served.file}: tls_server_config.cipher_suites: not supported by itsm-exporter (OpenSSL's defaults "
        "apply)\n"
        f"  {served.file}: basic_auth_users.prometheus: not a bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31)\n",
    )
    assert served_serial(served, pki) == pki.server.serial  # the old certificate, loaded in memory
    metrics = call(served, "GET", "/metrics", pki, auth=("prometheus", PASSWORD)).text
    assert 'itsm_config_reloads_total{result="failure"} 1.0' in metrics
    assert "itsm_config_last_reload_successful 0.0" in metrics
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage() == "web configuration reload failed; keeping the previous one"
    assert warning.__dict__["path"] == str(served.file)
    logged = caplog.text + str([r.__dict__ for r in caplog.records])
    assert "plaintext-password" not in logged and PASSWORD not in logged and HASH not in logged

    served.file.unlink()
    response = call(served, "POST", "/-/reload", pki, auth=("prometheus", PASSWORD))
    assert response.text.endswith(f"  {served.file}: cannot read the file: No such file or directory\n")
    write(served.file, {"basic_auth_users": {"prometheus": HASH}})
    response = call(served, "POST", "/-/reload", pki, auth=("prometheus", PASSWORD))
    assert response.text.endswith(f"  {served.file}: tls_server_config: turning TLS on or off needs a restart\n")
    assert served_serial(served, pki) == pki.server.serial


def test_basic_auth_without_tls_and_no_web_config_unchanged(tmp_path: Path, serve: Any) -> None:
    served = serve(write(tmp_path / "web.yml", {"basic_auth_users": {"prometheus": HASH}}))
    assert requests.get(served.url + "/-/healthy", timeout=TIMEOUT).status_code == 401
    assert requests.get(served.url + "/-/healthy", auth=("prometheus", PASSWORD), timeout=TIMEOUT).status_code == 200
    plain = serve(write(tmp_path / "empty.yml", None))
    response = requests.get(plain.url + "/metrics", timeout=TIMEOUT)
    assert response.status_code == 200 and "X-Frame-Options" not in response.headers


# The command line.


def test_start_up_errors_exit_1_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing.yml"
    assert cli.main(["demo", "--store", str(tmp_path / "demo.db"), "--web.config.file", str(missing)]) == 1
    assert capsys.readouterr().err == (
        f"{missing}: invalid web configuration\n  cannot read the file: No such file or directory\n"
    )
    unknown = write(tmp_path / "web.yml", {"tls_server_config": {"cert_filse": "server.crt"}})
    assert cli.main(["demo", "--store", str(tmp_path / "demo.db"), "--web.config.file", str(unknown)]) == 1
    assert capsys.readouterr().err == (
        f"{unknown}: invalid web configuration\n  tls_server_config.cert_filse: unknown key\n"
    )


def test_run_with_a_bad_web_config_exits_1_without_a_traceback(tmp_path: Path) -> None:
    config = write(
        tmp_path / "config.yaml",
        {"store": {"path": str(tmp_path / "s.db")}, "sources": [{"name": "demo", "kind": "demo"}]},
    )
    web = write(tmp_path / "web.yml", {"basic_auth_users": {"alice": "not-a-hash"}, "tls": {}})
    result = subprocess.run(
        [sys.executable, "-m", "itsm_exporter", "run", "--config", str(config), "--web.config.file", str(web)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"{web}: invalid web configuration\n"
        "  tls: unknown key\n"
        "  basic_auth_users.alice: not a bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31)\n"
    )


def test_check_config_validates_the_web_config_too(pki: PKI, capsys: pytest.CaptureFixture[str]) -> None:
    config = ROOT / "config.example.yaml"
    good = write(pki.directory / "web.yml", tls_config(pki))
    code = cli.main(["check-config", "--config", str(config), "--web.config.file", str(good)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.splitlines()[-1] == f"{good}: valid; TLS (NoClientCert), 1 basic auth user(s), 3 extra header(s)"
    bad = write(pki.directory / "bad.yml", {"http_server_config": {"headers": {"Authorization": "x"}}})
    assert cli.main(["check-config", "--config", str(config), "--web.config.file", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(
        f"{bad}: invalid web configuration\n  http_server_config.headers.Authorization: cannot be configured"
    )


def test_a_key_set_twice_is_refused_with_both_lines(tmp_path: Path) -> None:
    """A second basic_auth_users block would silently replace the first: the users of one would lose access."""
    (tmp_path / "twice.yml").write_text(
        "basic_auth_users:\n  alice: $2b$04$x\nheaders: {}\nbasic_auth_users:\n  bob: $2b$04$y\n", encoding="utf-8"
    )
    with pytest.raises(WebConfigError) as raised:
        load_web_config(tmp_path / "twice.yml")
    assert raised.value.problems == ["basic_auth_users: set twice, at lines 1 and 4"]
