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
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

import itsm_exporter.connectors  # noqa: F401  (imports the built-in source kinds: they register themselves)
from itsm_exporter.calendar_config import Calendar
from itsm_exporter.kinds import capabilities, kind_of, kinds
from itsm_exporter.source_config import (
    DIMENSIONS,
    Duration,
    SourceBase,
    Strict,
    SurveyMapping,
    TlsMixin,
    parse_duration,
    question_key,
    read_secret,
    redact_urls,
    redacted_url,
)

__all__ = [
    "DIMENSIONS",
    "Config",
    "ConfigError",
    "Duration",
    "SourceBase",
    "SurveyMapping",
    "load_config",
    "parse_config",
    "parse_duration",
    "question_key",
    "read_secret",
    "redact_urls",
    "redacted_url",
]

DEFAULT_PORT: Final = 9000 - 163
"""8837: outside the 9100-9999 range that the Prometheus wiki allocates to registered exporters."""
DEFAULT_LISTEN: Final = f"0.0.0.0:{DEFAULT_PORT}"
DEFAULT_BUCKETS: Final = (
    300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 86400.0, 172800.0, 259200.0,
    432000.0, 604800.0, 1209600.0, 2592000.0,
)  # fmt: skip
GROUP_LABELS: Final = ("group", "service", "priority", "channel")
"""The built-in grouping labels; `group_by` may also name the sources' segments."""

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PORT = re.compile(r"[0-9]{1,5}")


def check_listen(value: str) -> str:
    """`HOST:PORT` as `listen` and `--web.listen-address` take it; port 0 asks the kernel for a free one."""
    _host, sep, port = value.rpartition(":")
    if not sep or not _PORT.fullmatch(port) or int(port) > 65535:
        raise ValueError(f"not HOST:PORT, e.g. {DEFAULT_LISTEN}")
    return value


def duration_text(span: timedelta) -> str:
    """A span as a config duration would write it: `60d`, `36h`, `90m` or `45s`."""
    seconds = span.total_seconds()
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length and (seconds / length).is_integer():
            return f"{seconds / length:g}{unit}"
    return f"{seconds:g}s"


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists each as `path: message`."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StoreConfig(Strict):
    path: Path = Path("itsm-exporter.db")


class Targets(Strict):
    sla: float = Field(0.90, ge=0, le=1)
    satisfaction: float = Field(0.80, ge=0, le=1)
    first_response: Duration = Duration("5m")
    """How soon a ticket should get its first response (the service-quality standard: a callback within minutes)."""
    sla_warning: Duration = Duration("1h")
    """A running SLA clock is `at_risk` from this long before its breach time."""
    satisfaction_improvement: float = Field(0.03, ge=0, le=1)
    """How much the satisfied ratio should rise a year over its baseline (the year before): about 3 points a
    year is the service-quality practice's pace in the early years."""

    @field_validator("first_response", "sla_warning")
    @classmethod
    def _positive(cls, value: Duration) -> Duration:
        if not value.seconds > 0:
            raise ValueError("must be a positive duration")
        return value


YEAR: Final = timedelta(days=365)
"""How far back `trends.year_over_year` looks: the same window a year earlier."""


class Trends(Strict):
    """Windows compared with earlier periods of the same length, computed from the store (collectors/__init__.py)."""

    previous_period: bool = True
    """Each window's values over the period of the same length just before it: history covers twice the longest
    window."""
    year_over_year: bool = False
    """Each window's values over the same window a year (365 days) earlier: history covers a year plus the longest
    window."""


class Impact(Strict):
    """Penalty-reward contrast analysis of the RATER dimensions (collectors/impact.py)."""

    enabled: bool = True
    min_responses: int = Field(100, ge=20)
    """Responses (with an overall score and every dimension the source asks) a regression needs: fewer publish
    nothing. Eleven coefficients want ten responses each or so."""
    min_per_level: int = Field(5, ge=1)
    """A dimension is published when at least this many of those responses rate it low, and as many high."""
    low_at_most: float = Field(0.25, ge=0, le=1)
    """A normalized dimension score at or below this is a low rating (1 or 2 of 5)."""
    high_at_least: float = Field(0.75, ge=0, le=1)
    """At or above this is a high rating (4 or 5 of 5); between the two is the middle, the reference."""
    basic_below: float = Field(-0.2, ge=-1, le=1)
    """An impact-asymmetry index below this makes the dimension a basic need (dissatisfier)."""
    delighter_above: float = Field(0.2, ge=-1, le=1)
    """Above this, a delighter (satisfier); in between, a performance factor."""

    @model_validator(mode="after")
    def _ordered(self) -> Impact:
        if not self.low_at_most < self.high_at_least:
            raise ValueError("low_at_most must be below high_at_least (the middle rating is the reference)")
        if not self.basic_below < self.delighter_above:
            raise ValueError("basic_below must be below delighter_above")
        return self


class LogConfig(Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


if TYPE_CHECKING:
    SourceEntry = SourceBase
else:
    # The discriminated union of every registered kind's model (kinds.py): `kind` picks the model.
    SourceEntry = Annotated[Union[tuple(kind.config for kind in kinds())], Field(discriminator="kind")]  # noqa: UP007


class Config(Strict):
    listen: str = DEFAULT_LISTEN
    refresh_interval: Duration = Duration("5m")
    max_staleness: Duration | None = None
    """How long a failed source keeps its last values; default 3 x refresh_interval."""
    store: StoreConfig = Field(default_factory=StoreConfig)
    windows: list[Duration] = Field(default_factory=lambda: [Duration("7d"), Duration("30d")], min_length=1)
    group_by: list[str] = Field(default_factory=lambda: ["group"])
    """Grouping labels: built-in ones (GROUP_LABELS) and segments that sources define (`segments:`)."""
    max_label_values: int = Field(50, ge=1, le=10_000)
    min_responses: int = Field(10, ge=1)
    targets: Targets = Field(default_factory=lambda: Targets.model_validate({}))
    buckets: list[float] = Field(default_factory=lambda: list(DEFAULT_BUCKETS), min_length=1)
    log: LogConfig = Field(default_factory=LogConfig)
    history: Duration | None = None
    """How far back a first sync reads (sync/plans.py BackfillPlan); default: what the computation looks back
    (`lookback`) plus the source's overlap. Open tickets and the tickets of surveys in it are read whatever their
    age."""
    trends: Trends = Field(default_factory=lambda: Trends.model_validate({}))
    impact: Impact = Field(default_factory=lambda: Impact.model_validate({}))
    calendars: dict[str, Calendar] = Field(default_factory=dict)
    """Named business-hours calendars (calendar_config.py); durations are also published on them where one applies."""
    calendar: str | None = None
    """The calendar of every source that names none."""
    sources: list[SourceEntry] = Field(min_length=1)

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
        longest = self.longest_window
        if self.history is None:
            return self
        if self.history.seconds < longest.seconds:
            raise ValueError(f"history: {self.history} is shorter than the longest window ({longest})")
        if self.history.seconds < self.lookback.total_seconds():
            span = duration_text(self.lookback)
            why = "a year plus" if self.trends.year_over_year else "twice"
            switch = "year_over_year" if self.trends.year_over_year else "previous_period"
            raise ValueError(
                f"history: {self.history} is shorter than {why} the longest window ({span}), which "
                f"trends.{switch} compares with: raise it, or turn trends.{switch} off"
            )
        return self

    @property
    def longest_window(self) -> Duration:
        """The longest of `windows`: what the survey mapping check reads and a reconciliation sweeps."""
        return max(self.windows, key=lambda window: window.seconds)

    @property
    def lookback(self) -> timedelta:
        """How far before `as_of` a computation reads: the longest window, and the earlier periods of `trends`
        (twice the window with the previous period, a year plus the window year over year)."""
        longest = self.longest_window.delta
        span = 2 * longest if self.trends.previous_period else longest
        return max(span, YEAR + longest) if self.trends.year_over_year else span

    def history_for(self, source: SourceBase) -> timedelta:
        """How far back the first sync of `source` reads: `history`, else the lookback plus its overlap."""
        if self.history is not None:
            return self.history.delta
        return self.lookback + capabilities(source).overlap

    @model_validator(mode="after")
    def _sources(self) -> Config:
        names = [s.name for s in self.sources]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"source names must be unique: {', '.join(duplicates)}")
        for source in self.sources:
            for key, other in source.referenced_sources().items():
                if other not in names or other == source.name:
                    raise ValueError(f"source {source.name}: {key} {other!r} is not another configured source")
        return self

    @model_validator(mode="after")
    def _group_by(self) -> Config:
        """Each `group_by` label is built in or a segment of some source (a source without it has no series in its
        view)."""
        segments = {name for source in self.sources for name in source.segments}
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "group_by",
                    "'{name}' is neither a built-in label ({built_in}) nor a segment of a source ({segments})",
                    {
                        "name": name,
                        "built_in": ", ".join(GROUP_LABELS),
                        "segments": f"segments: {', '.join(sorted(segments))}" if segments else "none has segments:",
                    },
                ),
                loc=("group_by", index),
                input=name,
            )
            for index, name in enumerate(self.group_by)
            if name not in GROUP_LABELS and name not in segments
        ]
        if errors:
            # Raised as a ValidationError so that each problem keeps its path (`group_by[1]`), not the top level.
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    @model_validator(mode="after")
    def _calendar_names(self) -> Config:
        """Every `calendar:` names a calendar of `calendars:`; each mistake at its own path."""
        references: list[tuple[tuple[str | int, ...], str]] = []
        if self.calendar is not None:
            references.append((("calendar",), self.calendar))
        for index, source in enumerate(self.sources):
            if source.calendar is not None:
                references.append((("sources", index, "calendar"), source.calendar))
            references += [
                (("sources", index, "calendar_by_group", group), name)
                for group, name in source.calendar_by_group.items()
            ]
        known = ", ".join(sorted(self.calendars)) or "none"
        errors = [
            InitErrorDetails(
                type=PydanticCustomError(
                    "calendar",
                    "no calendar named {name} in calendars (defined: {known})",
                    {"name": repr(name), "known": known},
                ),
                loc=loc,
                input=name,
            )
            for loc, name in references
            if name not in self.calendars
        ]
        if errors:
            # Raised as a ValidationError so that each unknown name is reported at its own path.
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def calendar_of(self, source: SourceBase) -> str | None:
        """The calendar of a source's tickets outside its `calendar_by_group`: its own, else the top-level one."""
        return source.calendar if source.calendar is not None else self.calendar

    @property
    def segment_labels(self) -> tuple[str, ...]:
        """The `group_by` labels that are segments, in configured order."""
        return tuple(name for name in self.group_by if name not in GROUP_LABELS)

    @property
    def staleness_seconds(self) -> float:
        return self.max_staleness.seconds if self.max_staleness else 3 * self.refresh_interval.seconds

    @property
    def enabled_sources(self) -> list[SourceBase]:
        return [s for s in self.sources if s.enabled]

    def source(self, name: str) -> SourceBase:
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
        if not isinstance(source, TlsMixin):
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


_KIND_NAMES: Final = frozenset(kind.name for kind in kinds())
"""The union's tags, which pydantic puts in an error's location: `sources.0.servicenow.url`."""


def _location(loc: tuple[int | str, ...], raw: Any) -> str:
    """`sources[0].url` from pydantic's location, skipping union tags such as `servicenow`."""
    parts: list[str] = []
    node = raw
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            node = node[item] if isinstance(node, list) and item < len(node) else None
            continue
        if isinstance(node, dict) and item not in node and item in _KIND_NAMES:
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
        kind = kind_of(source)
        for name in kind.secret_files:
            path = getattr(source, name)
            if path is not None and not Path(path).is_file():
                problems.append(f"sources[{index}].{name}: {path} is not a readable file")
            elif path is not None and not os.access(path, os.R_OK):
                problems.append(f"sources[{index}].{name}: {path} is not readable")
        for name in kind.required_files:
            path = getattr(source, name)
            if not Path(path).is_file():
                problems.append(f"sources[{index}].{name}: {path} does not exist")
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
    """The configuration of `itsm-exporter demo`: the demo source of each kind that offers one with the calendars
    it names, trends year over year, the rest default."""
    return parse_config(
        {
            "store": {"path": str(store_path)},
            "refresh_interval": "1m",
            "calendars": {name: dict(c) for kind in kinds() for name, c in (kind.demo_calendars or {}).items()},
            "trends": {"year_over_year": True},
            # The team view and the demo's customer departments (a segment: docs/metrics.md).
            "group_by": ["group", "department"],
            "sources": [dict(kind.demo_source) for kind in kinds() if kind.demo_source is not None],
        }
    )
