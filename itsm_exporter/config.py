"""The YAML configuration: parsed, secrets resolved, and validated with errors that name their path."""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
import re
from datetime import timedelta
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_PORT: Final = 9000 - 163
"""8837: outside the 9100-9999 range that the Prometheus wiki allocates to registered exporters."""
DEFAULT_LISTEN: Final = f"0.0.0.0:{DEFAULT_PORT}"
DEFAULT_BUCKETS: Final = (
    300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 259200.0,
    432000.0, 604800.0, 1209600.0, 2592000.0,
)  # fmt: skip
DIMENSIONS: Final = ("reliability", "assurance", "tangibles", "empathy", "responsiveness")
GROUP_LABELS: Final = ("group", "service", "priority", "channel")
GroupLabel = Literal["group", "service", "priority", "channel"]

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PORT = re.compile(r"[0-9]{1,5}")


def check_listen(value: str) -> str:
    """`HOST:PORT` as `listen` and `--web.listen-address` take it; port 0 asks the kernel for a free one."""
    _host, sep, port = value.rpartition(":")
    if not sep or not _PORT.fullmatch(port) or int(port) > 65535:
        raise ValueError(f"not HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return value


_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/?#]*)@")


def redact_urls(text: str) -> str:
    """`text` with the password of every URL in it replaced by `xxxxx` (a lone user part may be a token)."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _password = match.group(2).partition(":")
        return f"{match.group(1)}{user if colon else ''}{colon}xxxxx@"

    return _URL_USERINFO.sub(hide, text)


def redacted_url(url: str) -> str:
    """A URL fit to print: a password in it (refused by the config, but a URL may come from elsewhere) hidden."""
    return redact_urls(url)


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists each as `path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration such as `5m`, `1h30m` or `7d`."""
    if not isinstance(text, str) or not text:
        raise ValueError("a duration is a string such as 30s, 5m, 1h or 7d")
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += int(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        # Config errors never quote the value: a secret pasted into the wrong key must not reach a log.
        raise ValueError("not a duration such as 30s, 5m, 1h or 7d")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


class Duration(str):
    """A duration kept as written (it becomes a label value) with its length in seconds."""

    seconds: float

    def __new__(cls, text: str) -> Duration:
        instance = super().__new__(cls, text)
        instance.seconds = parse_duration(text)
        return instance

    @classmethod
    def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
        from pydantic_core import core_schema

        # Any input reaches parse_duration, so `first_response: 5` gets the duration message, not "a valid string".
        return core_schema.no_info_plain_validator_function(cls._of, serialization=core_schema.to_string_ser_schema())

    @classmethod
    def _of(cls, value: Any) -> Duration:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValueError("not a duration such as 30s, 5m, 1h or 7d")
        if not isinstance(value, str):
            raise ValueError("not a duration such as 30s, 5m, 1h or 7d: a number needs a unit")
        return cls(value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class StoreConfig(_Strict):
    path: Path = Path("itsm-exporter.db")


class Targets(_Strict):
    sla: float = Field(0.90, ge=0, le=1)
    satisfaction: float = Field(0.80, ge=0, le=1)
    first_response: Duration = Duration("5m")
    """How soon a ticket should get its first response (the service-quality standard: a callback within minutes)."""
    sla_warning: Duration = Duration("1h")
    """A running SLA clock is `at_risk` from this long before its breach time."""

    @field_validator("first_response", "sla_warning")
    @classmethod
    def _positive(cls, value: Duration) -> Duration:
        if not value.seconds > 0:
            raise ValueError("must be a positive duration")
        return value


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


def question_key(text: str) -> str:
    """How a configured question and an upstream one are compared: case and runs of whitespace ignored.

    "Overall  satisfaction " in a YAML file names the question ServiceNow asks as "Overall
    Satisfaction": a slip of case or spacing must not leave a question unmapped.
    """
    return " ".join(text.split()).casefold()


class SurveyMapping(_Strict):
    """Which survey questions measure what; question names as the upstream spells them."""

    overall: list[str] = Field(default_factory=list)
    dimensions: dict[Literal["reliability", "assurance", "tangibles", "empathy", "responsiveness"], list[str]] = Field(
        default_factory=dict
    )
    expectations: dict[Literal["reliability", "assurance", "tangibles", "empathy", "responsiveness"], list[str]] = (
        Field(default_factory=dict)
    )

    @model_validator(mode="after")
    def _questions_used_once(self) -> SurveyMapping:
        seen: dict[str, str] = {}
        for place, question in self.placed_questions():
            place = place.partition("[")[0]  # one list may repeat itself; two lists may not share a question
            key = question_key(question)  # compared as the collectors match them
            if key in seen and seen[key] != place:
                raise ValueError(f"question {question!r} is mapped twice: {seen[key]} and {place}")
            seen[key] = place
        return self

    def placed_questions(self) -> list[tuple[str, str]]:
        """(place in this block, question as written): `overall[0]`, `dimensions.empathy[1]`, ..."""
        places = [(f"overall[{i}]", q) for i, q in enumerate(self.overall)]
        places += [(f"dimensions.{d}[{i}]", q) for d, qs in self.dimensions.items() for i, q in enumerate(qs)]
        places += [(f"expectations.{d}[{i}]", q) for d, qs in self.expectations.items() for i, q in enumerate(qs)]
        return places

    @property
    def empty(self) -> bool:
        return not (self.overall or self.dimensions or self.expectations)

    def question_roles(self) -> dict[str, tuple[str, str]]:
        """Question -> (role, dimension) with role `perception` or `expectation`."""
        roles = {q: ("perception", "overall") for q in self.overall}
        roles.update({q: ("perception", d) for d, qs in self.dimensions.items() for q in qs})
        roles.update({q: ("expectation", d) for d, qs in self.expectations.items() for q in qs})
        return roles


def upstream_url(value: str, example: str, credentials: str) -> str:
    """An ITSM base URL: http(s), a host, no credentials. Errors never quote it: it may hold a password."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises on a port out of range
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or re.search(r"\s", value):
        raise ValueError(f"not an http:// or https:// URL such as {example}")
    if "@" in parts.netloc:
        # A password here would be printed wherever the URL is: in errors, logs, discover and the landing page.
        raise ValueError(f"holds a user name or password: remove it from the URL and set {credentials} instead")
    return value


class TlsMixin(_Strict):
    timeout: Duration = Duration("30s")
    connect_timeout: Duration = Duration("10s")
    verify_tls: bool = True
    ca_bundle: Path | None = None
    proxy: str | None = None
    """Proxy URL for this source; unset means the HTTP(S)_PROXY environment is honoured."""
    max_retries: int = Field(4, ge=0, le=10)


class SourceBase(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
    enabled: bool = True
    surveys: SurveyMapping = Field(default_factory=SurveyMapping)
    complaints: dict[str, list[str]] = Field(default_factory=dict)
    """Which tickets are complaints: upstream field -> values (category, contact_type, label, ...)."""


class DemoSource(SourceBase):
    kind: Literal["demo"]
    seed: int = 42
    days: int = Field(90, ge=1, le=3650)
    tickets_per_day: int = Field(60, ge=1, le=100_000)


class CsvSource(SourceBase):
    kind: Literal["csv"]
    path: Path
    ticket_source: str | None = None
    """Name of the source whose tickets the surveys are about; their labels and source follow it."""
    ticket_column: str = "ticket"
    submitted_column: str = "submitted_at"
    id_column: str | None = None
    timezone: str = "UTC"
    """Zone of submitted times that carry no offset."""
    scale_min: float = 1
    scale_max: float = 5

    @model_validator(mode="after")
    def _scale(self) -> CsvSource:
        if self.scale_max <= self.scale_min:
            raise ValueError("scale_max must be greater than scale_min")
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not an IANA time zone such as Europe/Paris") from None
        return value


class ReconcileMixin(_Strict):
    reconcile_interval: Duration | None = Duration("24h")
    """How often a sync also removes the tickets deleted upstream (sync/plans.py ReconcilePlan); `0` turns it off."""

    @field_validator("reconcile_interval", mode="before")
    @classmethod
    def _zero_is_off(cls, value: Any) -> Any:
        return None if value in (0, "0") else value


class ServiceNowSource(ReconcileMixin, TlsMixin, SourceBase):
    kind: Literal["servicenow"]
    url: str
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    client_secret_file: Path | None = None
    table: str = "incident"
    filter: str = ""
    """Extra encoded query ANDed to every incident request, e.g. `assignment_group.name=Service Desk`."""
    page_size: int = Field(1000, ge=1, le=10000)
    sla_source: Literal["made_sla", "task_sla"] = "made_sla"
    surveys_enabled: bool = True
    overlap: Duration = Duration("5m")
    """Re-read window behind the watermark (applied by sync/plans.py): a row committed late, or stamped by
    an app node whose clock lags, can carry a sys_updated_on a little before rows already read."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return upstream_url(value, "https://acme.service-now.com", "username and password (or password_file)")

    @model_validator(mode="after")
    def _auth(self) -> ServiceNowSource:
        if self.password is not None and self.password_file is not None:
            raise ValueError("set password or password_file, not both")
        if self.username is None:
            raise ValueError("username is required")
        if self.password is None and self.password_file is None:
            raise ValueError("password or password_file is required")
        if (self.client_id is None) != (self.client_secret is None and self.client_secret_file is None):
            raise ValueError("OAuth needs both client_id and client_secret (or client_secret_file)")
        return self


class JiraSource(ReconcileMixin, TlsMixin, SourceBase):
    kind: Literal["jira"]
    url: str
    username: str | None = None
    token: SecretStr | None = None
    token_file: Path | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    jql: str = ""
    deployment: Literal["auto", "cloud", "datacenter"] = "auto"
    group_field: str = "project"
    """Where the group label comes from: project, components, a team/custom field name, or requesttype."""
    service_field: str = "components"
    priority_map: dict[str, Literal["p1", "p2", "p3", "p4", "p5"]] = Field(default_factory=dict)
    sla_fields: dict[Literal["response", "resolution"], str] = Field(default_factory=dict)
    """SLA field names or ids; default: found by schema type, `Time to first response` / `Time to resolution`."""
    csat_feedback_endpoint: bool = False
    page_size: int = Field(100, ge=1, le=1000)
    overlap: Duration = Duration("5m")
    """Re-read window behind the watermark: Cloud search is eventually consistent (index lag)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return upstream_url(value, "https://acme.atlassian.net", "username and token (or token_file)")

    @model_validator(mode="after")
    def _auth(self) -> JiraSource:
        secrets = [n for n in ("token", "token_file", "password", "password_file") if getattr(self, n) is not None]
        if not secrets:
            raise ValueError("token, token_file, password or password_file is required")
        if len(secrets) > 1:
            raise ValueError(f"set only one of {', '.join(secrets)}")
        if self.username is None and secrets[0] in ("password", "password_file"):
            raise ValueError("password authentication needs a username")
        return self


Source = Annotated[DemoSource | CsvSource | ServiceNowSource | JiraSource, Field(discriminator="kind")]


class Config(_Strict):
    listen: str = DEFAULT_LISTEN
    refresh_interval: Duration = Duration("5m")
    max_staleness: Duration | None = None
    """How long a failed source keeps its last values; default 3 x refresh_interval."""
    store: StoreConfig = Field(default_factory=StoreConfig)
    windows: list[Duration] = Field(default_factory=lambda: [Duration("7d"), Duration("30d")], min_length=1)
    group_by: list[GroupLabel] = Field(default_factory=lambda: list[GroupLabel](["group"]))
    max_label_values: int = Field(50, ge=1, le=10_000)
    min_responses: int = Field(10, ge=1)
    targets: Targets = Field(default_factory=lambda: Targets.model_validate({}))
    buckets: list[float] = Field(default_factory=lambda: list(DEFAULT_BUCKETS), min_length=1)
    log: LogConfig = Field(default_factory=LogConfig)
    history: Duration | None = None
    """How far back a first sync reads (sync/plans.py BackfillPlan); default: the longest window plus
    the source's overlap. Open tickets and the tickets of surveys in it are read whatever their age."""
    sources: list[Source] = Field(min_length=1)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        return check_listen(value)

    @field_validator("windows", "group_by")
    @classmethod
    def _unique(cls, value: list[Any]) -> list[Any]:
        if len(set(value)) != len(value):
            raise ValueError("values must be unique")
        return value

    @field_validator("buckets")
    @classmethod
    def _buckets(cls, value: list[float]) -> list[float]:
        if any(b <= 0 for b in value) or sorted(set(value)) != value:
            raise ValueError("buckets must be positive and strictly increasing (+Inf is implied)")
        return value

    @model_validator(mode="after")
    def _history(self) -> Config:
        longest = max(self.windows, key=lambda window: window.seconds)
        if self.history is not None and self.history.seconds < longest.seconds:
            raise ValueError(f"history: {self.history} is shorter than the longest window ({longest})")
        return self

    def history_for(self, source: SourceBase) -> timedelta:
        """How far back the first sync of `source` reads: `history`, else the longest window plus its overlap."""
        if self.history is not None:
            return timedelta(seconds=self.history.seconds)
        overlap = getattr(source, "overlap", None)
        longest = max(window.seconds for window in self.windows)
        return timedelta(seconds=longest + (overlap.seconds if overlap is not None else 0.0))

    @model_validator(mode="after")
    def _sources(self) -> Config:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique: {', '.join(duplicates)}")
        for source in self.sources:
            if (
                isinstance(source, CsvSource)
                and source.ticket_source is not None
                and (source.ticket_source not in names or source.ticket_source == source.name)
            ):
                raise ValueError(
                    f"source {source.name}: ticket_source {source.ticket_source!r} is not another configured source"
                )
        return self

    @property
    def staleness_seconds(self) -> float:
        return self.max_staleness.seconds if self.max_staleness else 3 * self.refresh_interval.seconds

    @property
    def enabled_sources(self) -> list[DemoSource | CsvSource | ServiceNowSource | JiraSource]:
        return [s for s in self.sources if s.enabled]

    def source(self, name: str) -> DemoSource | CsvSource | ServiceNowSource | JiraSource:
        for candidate in self.sources:
            if candidate.name == name:
                return candidate
        raise KeyError(name)


def warn_insecure_sources(config: Config, logger: logging.Logger) -> list[str]:
    """Log a WARNING per enabled source that does not verify TLS or sends its credentials over plain http://
    to another machine; return their names.

    Turning verification off, or plain HTTP, is sometimes needed against a lab instance, but it must never
    go unnoticed.
    """
    insecure = []
    for source in config.enabled_sources:
        if not isinstance(source, ServiceNowSource | JiraSource):
            continue
        if not source.verify_tls:
            logger.warning(
                "TLS certificate verification is off for this source: its credentials can be intercepted",
                extra={"source": source.name},
            )
        plain = urlsplit(source.url).scheme == "http" and not _loopback(urlsplit(source.url).hostname or "")
        if plain:
            logger.warning(
                "this source sends its credentials over plain http:// to another machine: "
                "anyone on the way can read them; use https://",
                extra={"source": source.name, "url": redacted_url(source.url)},
            )
        if plain or not source.verify_tls:
            insecure.append(source.name)
    return insecure


def _loopback(host: str) -> bool:
    """This machine: a tunnel or a proxy on localhost keeps credentials off the network."""
    if host.casefold() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_secret(value: SecretStr | None, path: Path | None) -> str | None:
    """The secret from config or from its file (trailing newline stripped, as editors add one)."""
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    return None


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """`sources[0].url` from pydantic's location, skipping union tags such as `servicenow`."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            continue
        if isinstance(node, dict) and item not in node and item in ("demo", "csv", "servicenow", "jira"):
            continue
        parts.append(f".{item}" if parts else item)
        node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    """ "unknown key", with the closest key known at that place: a typo should not send anyone to the docs."""
    known = _keys_at(Config, loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), sorted(known), n=1, cutoff=0.6)
    return f"unknown key; did you mean {close[0]}?" if close else "unknown key"


def _keys_at(annotation: Any, loc: tuple[int | str, ...]) -> set[str]:
    """The keys a block accepts, found by following pydantic's error location through the models' annotations."""
    members = _members(annotation)
    if not loc:
        return {key for member in members if _is_model(member) for key in member.model_fields}
    item, rest = loc[0], loc[1:]
    for member in members:
        if isinstance(item, int) and get_origin(member) is list:
            return _keys_at(get_args(member)[0], rest)
        if isinstance(item, str) and _is_model(member):
            if item in member.model_fields:
                return _keys_at(member.model_fields[item].annotation, rest)
            kind = member.model_fields.get("kind")
            if kind is not None and item in get_args(kind.annotation):  # a source kind's union tag
                return _keys_at(member, rest)
    return set()


def _members(annotation: Any) -> list[Any]:
    """The types a field's annotation allows: Annotated unwrapped, unions flattened."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        return [member for arg in get_args(annotation) for member in _members(arg)]
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _expand_env(node: Any, path: str, problems: list[str]) -> Any:
    """Replace `${NAME}` in every string; an unset variable is an error at that path.

    A source with `enabled: false` may name variables that are not set: a disabled source must
    not need its credentials.
    """
    if isinstance(node, dict):
        if node.get("enabled") is False:
            problems = []
        return {k: _expand_env(v, f"{path}.{k}" if path else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, f"{path}[{i}]", problems) for i, v in enumerate(node)]
    if isinstance(node, str):

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                problems.append(f"{path}: environment variable {name} is not set")
                return ""
            return os.environ[name]

        return _ENV_REFERENCE.sub(substitute, node)
    return node


def _check_secret_files(config: Config) -> list[str]:
    problems = []
    for index, source in enumerate(config.sources):
        if not source.enabled:
            continue
        for name in ("password_file", "client_secret_file", "token_file"):
            path = getattr(source, name, None)
            if path is not None and not Path(path).is_file():
                problems.append(f"sources[{index}].{name}: {path} is not a readable file")
            elif path is not None and not os.access(path, os.R_OK):
                problems.append(f"sources[{index}].{name}: {path} is not readable")
        if isinstance(source, CsvSource) and not source.path.is_file():
            problems.append(f"sources[{index}].path: {source.path} does not exist")
    problem = _store_problem(config.store.path.expanduser().resolve())
    if problem:
        problems.append(f"store.path: {problem}")
    return problems


STORE_APPLICATION_ID: Final = b"ITMX"
"""The application id in an itsm-exporter store's SQLite header (store/schema.py APPLICATION_ID, as bytes)."""
_SQLITE_MAGIC: Final = b"SQLite format 3\x00"


def _store_problem(path: Path) -> str | None:
    """What keeps `path` from being the store, checked before a sync is tried: absent, or an itsm-exporter store
    (or an empty SQLite file) that can be written; and its directory must exist and be writable."""
    directory = next((p for p in path.parents if p.exists()), path.parent)
    if directory != path.parent:
        return f"directory {path.parent} does not exist" + (f" ({directory} is a file)" if directory.is_file() else "")
    if not directory.is_dir():
        return f"{directory} is a file, not a directory"
    if path.is_dir():
        return f"{path} is a directory: name a file in it, such as {path / 'itsm-exporter.db'}"
    if not path.exists():
        return None if os.access(directory, os.W_OK) else f"directory {directory} is not writable"
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(directory, os.W_OK):
        # SQLite writes its -wal and -shm files beside the store: the directory must be writable too.
        what = path if not os.access(path, os.R_OK | os.W_OK) else f"directory {directory}"
        return f"{what} is not writable"
    with path.open("rb") as file:
        header = file.read(100)
    if not header:
        return None  # an empty file is an empty SQLite database: the store creates its tables in it
    if not header.startswith(_SQLITE_MAGIC):
        return f"{path} is not an SQLite file: point store.path at an itsm-exporter store or a new file"
    application_id = header[68:72]
    page_count = int.from_bytes(header[28:32], "big")
    if application_id != STORE_APPLICATION_ID and not (application_id == bytes(4) and page_count <= 1):
        return f"{path} is an SQLite database of another application: point store.path at a new file"
    return None


def parse_config(raw: Any, *, check_files: bool = True) -> Config:
    """Validate an already-loaded YAML document; raise ConfigError listing every problem."""
    if not isinstance(raw, dict):
        raise ConfigError(["(top level): the configuration must be a mapping of keys to values"])
    problems: list[str] = []
    expanded = _expand_env(raw, "", problems)
    if problems:
        raise ConfigError(problems)
    try:
        config = Config.model_validate(expanded)
    except ValidationError as error:
        for item in error.errors(include_input=False, include_url=False):
            message = item["msg"].removeprefix("Value error, ")
            location = _location(item["loc"], expanded)
            if item["type"] == "union_tag_invalid":  # pydantic quotes the given tag; name the choices only
                location += ".kind"
                message = f"not a known source kind: one of {item.get('ctx', {}).get('expected_tags', '')}"
            elif item["type"] == "extra_forbidden":
                message = _unknown_key(item["loc"])
            problems.append(f"{location}: {message}")
        raise ConfigError(problems) from None
    if check_files:
        problems = _check_secret_files(config)
        if problems:
            raise ConfigError(problems)
    return config


def load_config(path: str | Path, *, check_files: bool = True) -> Config:
    """Read and validate a YAML config file; raise ConfigError naming each problem."""
    file = Path(path)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise ConfigError([f"{file}: cannot read: {error.strerror or error}"]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ConfigError([f"{file}: not UTF-8 text (line {line}): save the file as UTF-8"]) from None
    try:
        raw = load_yaml(text)
    except DuplicateKeys as error:
        raise ConfigError(error.problems) from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError([f"{file}: invalid YAML at {where}: {problem}"]) from None
    return parse_config(raw, check_files=check_files)


class DuplicateKeys(ValueError):
    """A YAML document sets a key twice in one mapping; `problems` names each with both lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_yaml(text: str) -> Any:
    """`yaml.safe_load` of one document, refusing a key set twice (DuplicateKeys) where YAML keeps the last."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        duplicates = _duplicate_keys(node, "")
        if duplicates:
            raise DuplicateKeys(duplicates)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _duplicate_keys(node: yaml.Node, path: str) -> list[str]:
    """Every key set twice in one mapping, with both lines, in file order: YAML loaders keep the last silently."""
    found: list[tuple[int, str]] = []

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                    continue
                inner = f"{path}.{key.value}" if path else str(key.value)
                line = key.start_mark.line + 1
                if (key.tag, key.value) in first:
                    found.append((line, f"{inner}: set twice, at lines {first[key.tag, key.value]} and {line}"))
                first.setdefault((key.tag, key.value), line)
                walk(value, inner)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, f"{path}[{index}]")

    walk(node, path)
    return [problem for _line, problem in sorted(found)]


def demo_config(store_path: Path) -> Config:
    """The configuration of `itsm-exporter demo`: one demo source, everything else default."""
    from itsm_exporter.connectors.demo import DEMO_COMPLAINTS, DEMO_SURVEYS

    return parse_config(
        {
            "store": {"path": str(store_path)},
            "refresh_interval": "1m",
            "sources": [{"name": "demo", "kind": "demo", "surveys": DEMO_SURVEYS, "complaints": DEMO_COMPLAINTS}],
        }
    )
