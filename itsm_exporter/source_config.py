"""What every source's configuration shares: durations, the survey mapping, the base models, secrets.

A source kind's own model (connectors/<kind>/config.py) builds on these; config.py assembles the
whole file from the models the registered kinds bring (kinds.py). This module imports neither, so
a connector can use it without importing the configuration above it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

DIMENSIONS: Final = ("reliability", "assurance", "tangibles", "empathy", "responsiveness")
Dimension = Literal["reliability", "assurance", "tangibles", "empathy", "responsiveness"]

_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION_UNITS: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


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

    @property
    def delta(self) -> timedelta:
        """The length, to add to a time."""
        return timedelta(seconds=self.seconds)

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


class Strict(BaseModel):
    """Unknown keys are errors, values are frozen, and no error message quotes what was written."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


def question_key(text: str) -> str:
    """How a configured question and an upstream one are compared: case and runs of whitespace ignored.

    "Overall  satisfaction " in a YAML file names the question ServiceNow asks as "Overall
    Satisfaction": a slip of case or spacing must not leave a question unmapped.
    """
    return " ".join(text.split()).casefold()


class SurveyMapping(Strict):
    """Which survey questions measure what; question names as the upstream spells them."""

    overall: list[str] = Field(default_factory=list)
    dimensions: dict[Dimension, list[str]] = Field(default_factory=dict)
    expectations: dict[Dimension, list[str]] = Field(default_factory=dict)

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


BUILT_IN_LABELS: Final = (
    "source", "group", "service", "priority", "channel", "window", "sla", "outcome", "state", "dimension",
    "objective", "role", "le", "segment",
)  # fmt: skip
"""Label names the exporter's families use already (`segment` names a segment's view, collectors/labels.py):
a segment named like one would make two labels one."""
_LABEL_NAME: Final = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class SourceBase(Strict):
    """The keys of every source. A kind's model adds `kind: Literal["<its name>"]` and its own keys."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
    kind: str
    enabled: bool = True
    surveys: SurveyMapping = Field(default_factory=SurveyMapping)
    complaints: dict[str, list[str]] = Field(default_factory=dict)
    """Which tickets are complaints: upstream field -> values (category, contact_type, label, ...)."""
    segments: dict[str, str] = Field(default_factory=dict)
    """Customer-side grouping labels: label name -> the upstream field its value comes from (a ServiceNow
    dot-walked reference, a JSM field, a CSV column); usable in `group_by` like `group`."""

    @field_validator("segments")
    @classmethod
    def _segments(cls, value: dict[str, str]) -> dict[str, str]:
        readers: dict[str, str] = {}
        for name, upstream in value.items():
            if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
                raise ValueError(
                    f"segment {name!r} is not a Prometheus label name: letters, digits and _, not starting "
                    "with a digit or __"
                )
            if name in BUILT_IN_LABELS:
                raise ValueError(f"segment {name!r} clashes with the built-in label {name}: choose another name")
            if not upstream.strip():
                raise ValueError(f"segment {name!r} names no upstream field")
            # Config errors never quote a value (a secret pasted into the wrong key must not reach a log).
            key = upstream.strip().casefold()
            if key in readers:
                raise ValueError(f"segments {readers[key]} and {name} read the same upstream field: keep one")
            readers[key] = name
        return value

    calendar: str | None = None
    """The business-hours calendar (a name in the top-level `calendars:`) of this source's tickets; default:
    the top-level `calendar`."""
    calendar_by_group: dict[str, str] = Field(default_factory=dict)
    """Group (as the upstream names it) -> calendar, for groups that keep other hours than the source."""

    def referenced_sources(self) -> dict[str, str]:
        """Key -> name of another source this one reads through (a CSV export's `ticket_source`): each must
        name another configured source."""
        return {}

    def public_url(self) -> str:
        """The upstream's base URL fit to publish (`itsm_source_info`); "" for a source without one."""
        return ""


class TlsMixin(Strict):
    """A source read over HTTP: its base URL and network settings (connectors/http.py builds its session from them).

    A kind's model sets `url_example` and `url_credentials` for the URL's error messages.
    """

    url_example: ClassVar[str] = "https://itsm.example.com"
    url_credentials: ClassVar[str] = "the source's credential keys"
    url: str
    timeout: Duration = Duration("30s")
    connect_timeout: Duration = Duration("10s")
    verify_tls: bool = True
    ca_bundle: Path | None = None
    proxy: str | None = None
    """Proxy URL for this source; unset means the HTTP(S)_PROXY environment is honoured."""
    max_retries: int = Field(4, ge=0, le=10)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return upstream_url(value, cls.url_example, cls.url_credentials)

    def public_url(self) -> str:
        return public_url(self.url)


class ReconcileMixin(Strict):
    reconcile_interval: Duration | None = Duration("24h")
    """How often a sync also removes the tickets deleted upstream (sync/plans.py ReconcilePlan); `0` turns it off."""

    @field_validator("reconcile_interval", mode="before")
    @classmethod
    def _zero_is_off(cls, value: Any) -> Any:
        return None if value in (0, "0") else value


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


_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s/?#]*)@")


def redact_urls(text: str) -> str:
    """`text` with the password of every URL in it replaced by `xxxxx` (a lone user part may be a token)."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _password = match.group(2).partition(":")
        return f"{match.group(1)}{user if colon else ''}{colon}xxxxx@"

    return _URL_USERINFO.sub(hide, text)


def public_url(url: str) -> str:
    """A base URL fit to publish in a label: scheme, host, port and path only. No user or password (refused by
    the config, but never trusted), no query string or fragment (a token may hide there)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    port = f":{parts.port}" if parts.port is not None else ""
    return redacted_url(f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}")


def redacted_url(url: str) -> str:
    """A URL fit to print: a password in it (refused by the config, but a URL may come from elsewhere) hidden."""
    return redact_urls(url)


def read_secret(value: SecretStr | None, path: Path | None) -> str | None:
    """The secret from config or from its file (trailing newline stripped, as editors add one)."""
    if value is not None:
        return value.get_secret_value()
    if path is not None:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    return None
