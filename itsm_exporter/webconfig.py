"""`--web.config.file`: the exporter-toolkit web configuration (TLS, basic auth, headers), validated once.

The format is the one node_exporter reads (prometheus/exporter-toolkit, docs/web-configuration.md), so one
file serves both. What the toolkit knows but Python's ssl module cannot do, or we chose not to build, is a
start-up error naming the key, never silently ignored. Problems name their path and never a password or a
hash. Files are read when the configuration is loaded (start, SIGHUP, POST /-/reload), not per connection.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import bcrypt
import yaml

from itsm_exporter.config import DuplicateKeys, load_yaml

REALM: Final = "itsm-exporter"
UNAUTHORIZED_HEADERS: Final = {"WWW-Authenticate": f'Basic realm="{REALM}", charset="UTF-8"'}

TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

CLIENT_AUTH_TYPES: Final = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
"""The toolkit's client_auth_type values we serve. RequestClientCert and RequireAnyClientCert accept a
certificate nobody verified: Python's ssl module has no such mode, so they are refused (see below)."""

UNVERIFIED_CLIENT_AUTH: Final = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")

EXTRA_HEADERS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "Strict-Transport-Security": (),
        "X-Content-Type-Options": ("nosniff",),
        "X-Frame-Options": ("deny", "sameorigin"),
        "X-XSS-Protection": (),
        "Content-Security-Policy": (),
    }
)
"""The toolkit's allow-list (web/handler.go, extraHTTPHeaders): only these headers may be set, with exact
names; an empty tuple allows any value. Content-Type, Authorization and the rest stay ours."""

_TOP_KEYS: Final = ("tls_server_config", "http_server_config", "basic_auth_users")
_TLS_KEYS: Final = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version")
_HTTP_KEYS: Final = ("headers", "http2")
_NOT_SUPPORTED: Final = {
    "rate_limit": "",
    "tls_server_config.cert": " (use cert_file)",
    "tls_server_config.key": " (use key_file)",
    "tls_server_config.client_ca": " (use client_ca_file)",
    "tls_server_config.cipher_suites": " (OpenSSL's defaults apply)",
    "tls_server_config.curve_preferences": " (OpenSSL's defaults apply)",
    "tls_server_config.prefer_server_cipher_suites": "",
    "tls_server_config.client_allowed_sans": "",
}
"""Keys of the toolkit's format that itsm-exporter does not implement: refused, so nobody believes them applied."""

_BCRYPT_HASH: Final = re.compile(r"\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}")
_BCRYPT_MAX_BYTES: Final = 72
_UNKNOWN_USER_HASH: Final = b"$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi"
"""A cost-10 hash checked for unknown users, so the time of a 401 does not say whether a user exists
(the toolkit's own fixed hash)."""


class WebConfigError(Exception):
    """The web configuration file cannot be used; `problems` name their path, never a secret."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class TLSSettings:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"


@dataclass(frozen=True)
class WebConfig:
    """One loaded web configuration. `ssl_context` is built from the files as they were at load time."""

    path: Path | None = None
    tls: TLSSettings | None = None
    users: Mapping[str, bytes] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    http2: bool = True
    """Accepted for compatibility and ignored: the server speaks HTTP/1.1 only (the toolkit defaults it to
    true and only honours it with TLS)."""
    ssl_context: ssl.SSLContext | None = field(default=None, compare=False, repr=False)

    @property
    def auth_required(self) -> bool:
        return bool(self.users)


PLAIN_HTTP: Final = WebConfig()
"""No `--web.config.file`: plain HTTP, no authentication, as before the flag existed."""


def load_web_config(path: Path) -> WebConfig:
    """Read, validate and build `path`; raise WebConfigError with every problem found."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise WebConfigError([f"cannot read the file: {_reason(error)}"]) from None
    try:
        raw = load_yaml(text)
    except DuplicateKeys as error:
        raise WebConfigError(error.problems) from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        at = f" at line {where.line + 1}, column {where.column + 1}" if where is not None else ""
        raise WebConfigError([f"not valid YAML{at}: {getattr(error, 'problem', None) or 'syntax error'}"]) from None
    return parse_web_config(raw, base=path.parent, path=path)


def parse_web_config(raw: Any, *, base: Path, path: Path | None = None, check_files: bool = True) -> WebConfig:
    """Validate a parsed YAML document; relative file names are relative to `base` (the file's directory).

    `check_files=False` checks the document only (the manifests' tests): no TLS context is built.
    """
    problems: list[str] = []
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise WebConfigError(["the file must be a YAML mapping"])
    _check_keys(raw, "", _TOP_KEYS, problems)
    tls = _tls(raw.get("tls_server_config"), base, problems)
    headers, http2 = _http(raw.get("http_server_config"), problems)
    users = _users(raw.get("basic_auth_users"), problems)
    context = None
    if tls is not None and not problems and check_files:
        context = _ssl_context(tls, problems)
    if problems:
        raise WebConfigError(problems)
    return WebConfig(path, tls, MappingProxyType(users), headers, http2, context)


def _check_keys(section: dict[Any, Any], prefix: str, known: tuple[str, ...], problems: list[str]) -> None:
    for key in section:
        name = f"{prefix}{key}"
        if name in _NOT_SUPPORTED:
            problems.append(f"{name}: not supported by itsm-exporter{_NOT_SUPPORTED[name]}")
        elif key not in known:
            problems.append(f"{name}: unknown key")


def _mapping(value: Any, name: str, problems: list[str]) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{name}: must be a mapping")
        return {}
    return value


def _string(section: dict[Any, Any], key: str, prefix: str, problems: list[str]) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"{prefix}{key}: must be a string")
        return None
    return value


def _tls(value: Any, base: Path, problems: list[str]) -> TLSSettings | None:
    prefix = "tls_server_config."
    section = _mapping(value, "tls_server_config", problems)
    _check_keys(section, prefix, _TLS_KEYS, problems)
    strings = {key: _string(section, key, prefix, problems) for key in _TLS_KEYS}
    if not any(strings[key] for key in ("cert_file", "key_file", "client_ca_file", "client_auth_type")):
        for key in ("min_version", "max_version"):
            if strings[key]:
                problems.append(f"{prefix}{key}: needs cert_file and key_file")
        return None  # the toolkit's rule: no certificate, key, client CA or client auth means plain HTTP
    for key in ("cert_file", "key_file"):
        if not strings[key]:
            problems.append(f"{prefix}{key}: required when TLS is configured")
    auth = strings["client_auth_type"] or "NoClientCert"
    if auth in UNVERIFIED_CLIENT_AUTH:
        problems.append(
            f"{prefix}client_auth_type: {auth} not supported by itsm-exporter "
            "(it accepts unverified certificates); use RequireAndVerifyClientCert"
        )
    elif auth not in CLIENT_AUTH_TYPES:
        problems.append(f"{prefix}client_auth_type: {auth!r} is not one of {', '.join(CLIENT_AUTH_TYPES)}")
    if strings["client_ca_file"] and auth == "NoClientCert":
        problems.append(f"{prefix}client_ca_file: set without a client_auth_type that verifies client certificates")
    if auth in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") and not strings["client_ca_file"]:
        problems.append(f"{prefix}client_ca_file: required by client_auth_type {auth}")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        versions[key] = strings[key] or default
        if versions[key] not in TLS_VERSIONS:
            problems.append(f"{prefix}{key}: {versions[key]!r} is not one of {', '.join(TLS_VERSIONS)}")
    if (
        all(v in TLS_VERSIONS for v in versions.values())
        and TLS_VERSIONS[versions["min_version"]] > TLS_VERSIONS[versions["max_version"]]
    ):
        problems.append(f"{prefix}min_version: {versions['min_version']} is above max_version")
    if problems:
        return None
    ca = strings["client_ca_file"]
    return TLSSettings(
        cert_file=base / str(strings["cert_file"]),
        key_file=base / str(strings["key_file"]),
        client_auth_type=auth,
        client_ca_file=base / ca if ca else None,
        min_version=versions["min_version"],
        max_version=versions["max_version"],
    )


def _http(value: Any, problems: list[str]) -> tuple[tuple[tuple[str, str], ...], bool]:
    prefix = "http_server_config."
    section = _mapping(value, "http_server_config", problems)
    _check_keys(section, prefix, _HTTP_KEYS, problems)
    http2 = section.get("http2", True)
    if not isinstance(http2, bool):
        problems.append(f"{prefix}http2: must be true or false")
    headers: list[tuple[str, str]] = []
    for name, header in _mapping(section.get("headers"), f"{prefix}headers", problems).items():
        where = f"{prefix}headers.{name}"
        if name not in EXTRA_HEADERS:
            problems.append(f"{where}: cannot be configured (allowed: {', '.join(EXTRA_HEADERS)})")
        elif not isinstance(header, str | int) or isinstance(header, bool):
            problems.append(f"{where}: must be a string")
        elif EXTRA_HEADERS[name] and str(header) not in EXTRA_HEADERS[name]:
            problems.append(f"{where}: {str(header)!r} is not one of {', '.join(EXTRA_HEADERS[name])}")
        elif "\r" in str(header) or "\n" in str(header):
            problems.append(f"{where}: must be one line")
        elif str(header):  # blank means unset, as in the toolkit
            headers.append((name, str(header)))
    return tuple(headers), http2 is not False


def _users(value: Any, problems: list[str]) -> dict[str, bytes]:
    users: dict[str, bytes] = {}
    for name, hashed in _mapping(value, "basic_auth_users", problems).items():
        where = f"basic_auth_users.{name}"
        if not isinstance(name, str) or not name or ":" in name:
            problems.append(f"{where}: a user name must be a non-empty string without ':'")
        elif not isinstance(hashed, str) or not _BCRYPT_HASH.fullmatch(hashed):
            # Never echo the value: it may be a plaintext password written where a hash belongs.
            problems.append(f"{where}: not a bcrypt hash ($2y$, $2b$ or $2a$, cost 4 to 31)")
        else:
            users[name] = hashed.encode()
    return users


def _ssl_context(tls: TLSSettings, problems: list[str]) -> ssl.SSLContext | None:
    """A fresh server context from the files; problems name the key whose file is unusable."""
    prefix = "tls_server_config."
    for key in ("cert_file", "key_file", "client_ca_file"):
        file = getattr(tls, key)
        if file is None:
            continue
        try:
            file.read_bytes()
        except OSError as error:
            problems.append(f"{prefix}{key}: cannot read {file}: {_reason(error)}")
    if problems:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        # An encrypted key gets an empty passphrase and fails here, instead of prompting on the terminal.
        context.load_cert_chain(tls.cert_file, tls.key_file, password=lambda: b"")
    except (ssl.SSLError, ValueError) as error:
        files = f"{tls.cert_file}, {tls.key_file}"
        problems.append(f"{prefix}key_file: cannot load the certificate and key ({files}): {error}")
        return None
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, ValueError) as error:
            problems.append(f"{prefix}client_ca_file: no CA certificate in {tls.client_ca_file}: {error}")
            return None
    return context


def _reason(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


class BasicAuth:
    """Checks `Authorization: Basic` against bcrypt hashes; remembers each user's last verified password.

    bcrypt is slow on purpose (a cost of 10 takes tens of milliseconds); a scrape every few seconds must
    not pay it each time. The memory is keyed by (user, hash) and holds a keyed digest of the password
    (HMAC-SHA256 under a per-process random key: the plaintext is never kept), compared in constant time.
    Only successes are remembered; a reload builds a new instance, so a changed hash is checked afresh.
    """

    def __init__(self, users: Mapping[str, bytes]) -> None:
        self._users = users
        self._key = secrets.token_bytes(32)
        self._verified: dict[tuple[str, bytes], bytes] = {}
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()
        """One bcrypt at a time, as in the toolkit: a burst of bad passwords costs one core, not all."""

    def check(self, authorization: str | None) -> bool:
        """True when the header names a configured user with the right password."""
        credentials = _basic_credentials(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._users.get(user)
        digest = hmac.new(self._key, password, hashlib.sha256).digest()
        if hashed is not None:
            with self._lock:
                known = self._verified.get((user, hashed))
            if known is not None and hmac.compare_digest(known, digest):
                return True
        with self._bcrypt:
            # bcrypt reads at most 72 bytes (htpasswd and Go hash longer passwords by their first 72).
            matches = bcrypt.checkpw(password[:_BCRYPT_MAX_BYTES], hashed or _UNKNOWN_USER_HASH)
        if hashed is None or not matches:
            return False
        with self._lock:
            self._verified[(user, hashed)] = digest
        return True


def _basic_credentials(authorization: str | None) -> tuple[str, bytes] | None:
    if not authorization:
        return None
    scheme, _, encoded = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
        user, separator, password = decoded.partition(b":")
        return (user.decode("utf-8"), password) if separator else None
    except (binascii.Error, UnicodeDecodeError):
        return None
