"""`discover`'s business hours for ServiceNow: the schedules the window's SLA definitions run on, as notes a user
mirrors in `calendars:`.

An SLA definition (`contract_sla`) names its schedule (`cmn_schedule`: a name, a time zone); the schedule's
entries (`cmn_schedule_span`) are its working spans, repeating weekly on some days, and its excluded days
(holidays). Wire facts in docs/api-notes.md ("Schedules").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from itsm_exporter.connectors.probe import Probe
from itsm_exporter.connectors.servicenow import wire
from itsm_exporter.connectors.servicenow.client import TableClient

ROLE: Final = "read on cmn_schedule and cmn_schedule_span (itil has it by default; optional)"
SPAN_FIELDS: Final = ("schedule", "name", "type", "start_date_time", "end_date_time", "all_day", "repeat_type",
                      "days_of_week")  # fmt: skip
SPAN_PAGE: Final = 500
"""Entries read, one page: a few working spans per schedule, and its holidays for some years."""
DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
"""`days_of_week` digits 1..7 in this order."""
REPEATED_DAYS: Final = {"daily": "1234567", "weekdays": "12345", "weekends": "67"}


def schedule_notes(client: TableClient, probe: Probe, slas: Sequence[Mapping[str, Any]]) -> None:
    """Which schedule each SLA definition of the window uses, and each schedule's spans and exclusions."""
    notes = probe.facts.calendar_notes
    users: dict[str, list[str]] = defaultdict(list)
    for sla in slas:
        schedule = wire.value(sla, "schedule")
        name = wire.display(sla, "name") or wire.value(sla, "sys_id")
        if schedule:
            users[schedule].append(name)
        else:
            notes.append(f"SLA {name!r}: no schedule (it counts around the clock)")
    if not users:
        return
    ids = ",".join(users)
    schedules = probe.read(
        "table cmn_schedule",
        ROLE,
        lambda: client.get("cmn_schedule", f"sys_idIN{ids}", ("sys_id", "name", "time_zone"), len(users)),
        required=False,
    )
    spans = probe.read(
        "table cmn_schedule_span",
        ROLE,
        lambda: client.get("cmn_schedule_span", f"scheduleIN{ids}^ORDERBYstart_date_time", SPAN_FIELDS, SPAN_PAGE),
        required=False,
    )
    if schedules is None:
        return
    by_schedule: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for span in spans.records if spans is not None else []:
        by_schedule[wire.value(span, "schedule")].append(span)
    for row in schedules.records:
        sys_id = wire.value(row, "sys_id")
        zone = wire.value(row, "time_zone") or "floating (each user's own time zone: pick the desk's)"
        used_by = ", ".join(repr(name) for name in users.get(sys_id, []))
        notes.append(f"schedule {wire.display(row, 'name')!r} (time zone {zone}), used by SLA {used_by}:")
        notes += [f"  {line}" for line in _entries(by_schedule.get(sys_id, []))]


def _entries(spans: Sequence[Mapping[str, Any]]) -> list[str]:
    """Working spans as `calendars:` writes them (`hours: {mon-fri: ['08:00-17:00']}`), then the excluded days."""
    by_day: dict[int, list[str]] = defaultdict(list)
    excluded, other = [], []
    for span in spans:
        start, end = wire.value(span, "start_date_time"), wire.value(span, "end_date_time")
        name = wire.display(span, "name") or wire.value(span, "name")
        if wire.value(span, "type") == "exclude":
            excluded.append(f"{_date(start)} ({name})" if name else _date(start))
            continue
        repeat = wire.value(span, "repeat_type")
        days = REPEATED_DAYS.get(repeat) or (wire.value(span, "days_of_week") if repeat == "weekly" else "")
        if not days:
            other.append(f"{name or 'an entry'}: {repeat or 'no repeat'} from {start} to {end}")
            continue
        text = "00:00-24:00" if wire.value(span, "all_day") == "true" else f"{_time(start)}-{_time(end)}"
        for day in sorted({int(d) - 1 for d in days if d in "1234567"}):
            by_day[day].append(text)
    lines = [f"hours: {{{', '.join(f'{days}: {texts}' for days, texts in _runs(by_day))}}}"] if by_day else []
    if excluded:
        lines.append(f"excluded: {', '.join(excluded)} (holidays: dates, or a country and subdivision)")
    lines += [f"not mirrored: {text}" for text in other]
    return lines or ["no entries readable"]


def _runs(by_day: Mapping[int, list[str]]) -> list[tuple[str, list[str]]]:
    """Consecutive days with the same spans as one range (`mon-fri`), each day once."""
    runs: list[tuple[int, int, list[str]]] = []
    for day in sorted(by_day):
        texts = sorted(by_day[day])
        if runs and runs[-1][1] == day - 1 and runs[-1][2] == texts:
            runs[-1] = (runs[-1][0], day, texts)
        else:
            runs.append((day, day, texts))
    return [(DAYS[a] if a == b else f"{DAYS[a]}-{DAYS[b]}", texts) for a, b, texts in runs]


def _time(value: str) -> str:
    """`20240101T083000` -> `08:30`: schedule times are the schedule's local time."""
    clock = value.partition("T")[2]
    return f"{clock[:2]}:{clock[2:4]}" if len(clock) >= 4 else "?"


def _date(value: str) -> str:
    """`20251225T000000` -> `2025-12-25`."""
    day = value.partition("T")[0]
    return f"{day[:4]}-{day[4:6]}-{day[6:8]}" if len(day) == 8 else value
