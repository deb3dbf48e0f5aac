"""ServiceNow wire format: field shapes, dates, durations, state codes and keyset encoded queries."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from itsm_exporter.records import TicketState

TIME_FORMAT: Final = "%Y-%m-%d %H:%M:%S"
"""Glide date-time as the Table API returns it in `value`: UTC, no suffix."""

STATES: Final[dict[str, TicketState]] = {
    "1": "open",  # New
    "2": "open",  # In Progress; legacy: Active
    "3": "on_hold",  # On Hold; legacy: Awaiting Problem
    "4": "on_hold",  # legacy: Awaiting User Info
    "5": "on_hold",  # legacy: Awaiting Evidence
    "6": "resolved",
    "7": "closed",
    "8": "canceled",
}
"""Both state models: `state` (1,2,3,6,7,8) and the legacy `incident_state` (adds 4 and 5)."""

PRIORITIES: Final = {"1": "p1", "2": "p2", "3": "p3", "4": "p4", "5": "p5"}
MAX_COUNT: Final = 2**31 - 1
"""ServiceNow integer fields are 32-bit; anything larger is corrupt (and would overflow SQLite)."""
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _text(item: str) -> str:
    """`item` without lone surrogates (a UTF-16 field cut mid-emoji), which no UTF-8 store can hold."""
    return _SURROGATE.sub("\ufffd", item)


def value(record: Mapping[str, Any], field: str) -> str:
    """The raw value of a field in any display mode: `{"value": ..}` objects, plain strings, or ""."""
    item = record.get(field, "")
    # `type(..) is` first: these run for every field of every record, and ABC checks are slow.
    if type(item) is dict or isinstance(item, Mapping):
        item = item.get("value", "")
    # isascii() is O(1) in CPython: only non-ASCII text pays for the surrogate scan.
    if type(item) is str:
        return item if item.isascii() else _text(item)
    return "" if item is None else _text(str(item))


def values(record: Mapping[str, Any]) -> dict[str, str]:
    """`value` of every field of a record, in one pass (a record's fields are each read at least once)."""
    flat: dict[str, str] = {}
    for field, item in record.items():
        raw = item.get("value", "") if type(item) is dict else item
        # The common shape (an ASCII string) inline; every other shape through `value` itself.
        flat[field] = raw if type(raw) is str and raw.isascii() else value(record, field)
    return flat


def display(record: Mapping[str, Any], field: str) -> str:
    """The display value of a field read with `sysparm_display_value=all` (names, labels)."""
    item = record.get(field, "")
    if type(item) is dict or isinstance(item, Mapping):
        item = item.get("display_value", "")
    if type(item) is str:
        return item if item.isascii() else _text(item)
    return "" if item is None else _text(str(item))


def parse_time(text: str) -> datetime | None:
    """A Glide date-time value (UTC) as an aware datetime; "" is None; anything else raises ValueError."""
    if not text:
        return None
    # fromisoformat is ~10x faster than strptime (it dominated a full sync's profile); the shape
    # check keeps the strictness of TIME_FORMAT, since fromisoformat also accepts dates, offsets, "T".
    if len(text) == 19 and text[10] == " " and text[:4].isdigit():
        try:
            # The "+00:00" suffix makes an aware UTC datetime in one call: replace(tzinfo=UTC) cost 5x the parse.
            return datetime.fromisoformat(text + "+00:00")
        except ValueError:
            pass
    raise ValueError(f"time data {text!r} does not match format {TIME_FORMAT!r}")


def format_time(moment: datetime) -> str:
    """A Glide date-time value (UTC) for a query term."""
    return moment.astimezone(UTC).strftime(TIME_FORMAT)


def parse_duration(text: str) -> timedelta | None:
    """A Glide duration, stored as an offset from the epoch: "1970-01-02 04:23:17" is 1 d 4 h 23 m 17 s."""
    moment = parse_time(text)
    if moment is None:
        return None
    return moment - datetime(1970, 1, 1, tzinfo=UTC)


def parse_count(text: str) -> int:
    """A counter such as `reopen_count`, which ServiceNow leaves "" until it first changes."""
    count = int(text) if text else 0
    if not 0 <= count <= MAX_COUNT:
        raise ValueError(f"count {count} outside 0..{MAX_COUNT}")
    return count


def map_state(*codes: str) -> TicketState | None:
    """The first code (`state`, then `incident_state`) that one of the state models knows."""
    for code in codes:
        if code in STATES:
            return STATES[code]
    return None


def and_terms(*terms: str) -> str:
    """Join encoded-query terms with `^` (AND), dropping empty ones."""
    return "^".join(term for term in terms if term)


def keyset_query(base: str, field: str, since: str | None, after: tuple[str, str] | None) -> str:
    """An encoded query for the rows after a keyset cursor, ordered by `field` then `sys_id`.

    `^OR` binds one term only, so "(field > t) OR (field = t AND sys_id > id)" is written as two
    whole queries joined by `^NQ`, each repeating the base filter. A base filter that has its own
    `^NQ` is distributed over them: (A OR B) AND X = (A AND X) OR (B AND X).
    """
    if after is None:
        cursors = [f"{field}>={since}" if since else ""]
    else:
        moment, sys_id = after
        cursors = [f"{field}>{moment}", f"{field}={moment}^sys_id>{sys_id}"]
    queries = [and_terms(part, cursor) for part in base.split("^NQ") for cursor in cursors]
    return and_terms("^NQ".join(queries), f"ORDERBY{field}", "ORDERBYsys_id")


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """Slices of at most `size`, so `sys_idIN...` lists keep URLs well under common 8 KB limits."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def error_message(body: Any) -> str:
    """`error.message` (and `detail`) of ServiceNow's error envelope, or "" when there is none."""
    if not isinstance(body, Mapping) or not isinstance(body.get("error"), Mapping):
        return ""
    error = body["error"]
    message = str(error.get("message") or "")
    detail = error.get("detail")
    return f"{message} ({detail})" if detail and message else message or str(detail or "")
