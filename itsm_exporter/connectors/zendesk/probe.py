"""`discover` for Zendesk: counts from the search API, one sample page of the export, the account's settings.

A bounded number of requests whatever the account's size (the export allows 10 a minute): four counts
(`/api/v2/search/count`), one page of the incremental export and one of the ticket metric events
export from the window's start, one page of ratings, the SLA policies, the ticket fields (only when a
complaint names a custom field), and the business-hours schedules with the holidays of at most
MAX_SCHEDULES of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from itsm_exporter.connectors.probe import Probe, QuestionFacts, SegmentSuggestion, ValueCount
from itsm_exporter.connectors.zendesk.client import ZendeskClient
from itsm_exporter.connectors.zendesk.config import ZendeskSource
from itsm_exporter.connectors.zendesk.connector import EXPORT_PATH, OPEN_STATUSES, RATINGS_PATH, sideloads
from itsm_exporter.connectors.zendesk.mapping import (
    CSAT_QUESTION_ID,
    CSAT_QUESTION_NAME,
    CSAT_QUESTION_TEXT,
    MappingError,
    TicketMapper,
    custom_field_values,
    is_deleted,
    policy_metrics,
)
from itsm_exporter.records import QuestionUse

SAMPLE: Final = 100
"""Tickets (and metric events) read to show values: one page of each export."""
MAX_SCHEDULES: Final = 5
"""Schedules whose holidays are read (one request each); the others are named without them."""
ADMIN: Final = "an admin role (the incremental exports, ratings and SLA policies are for admins)"
AGENT: Final = "an agent role"
DAYS: Final = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
LABELS: Final = {"group": "group_id", "priority": "priority", "channel": "via.channel"}
LIKELY_SEGMENTS: Final = {"organization": "organization", "brand": "brand"}
"""Zendesk's customer fields, suggested as segments when the sample holds values (the requester's organization, and
the brand where it is not the service label already)."""


def discover(source: ZendeskSource, probe: Probe) -> None:
    """Access per endpoint, counts of the window and of a first sync, a sample's values, SLAs, CSAT, calendars."""
    settings, facts = probe.settings, probe.facts
    client = ZendeskClient(source, probe.observe)
    try:
        me = probe.read(
            "/api/v2/users/me", AGENT, lambda: client.get("/api/v2/users/me", what="the API user"), first=True
        )
        if me is None:
            return
        role = (me.get("user") or {}).get("role")
        since_day = f"{settings.since.astimezone(UTC):%Y-%m-%d}"
        facts.tickets = probe.read("/api/v2/search/count", AGENT, lambda: _count(client, f"updated>={since_day}"))
        facts.tickets_basis = f"updated since {since_day} (search, to the day)"
        horizon = settings.as_of - settings.history
        cut = f"{horizon.astimezone(UTC):%Y-%m-%d}"
        if facts.tickets is not None:
            recent = _count(client, f"updated>={cut}")
            old_open = _count(
                client, f"{OPEN_STATUSES} updated<{(horizon + timedelta(days=1)).astimezone(UTC):%Y-%m-%d}"
            )
            history = settings.history_setting or f"{settings.window} + overlap 1m"
            facts.first_sync = (
                f"{recent} tickets updated since {cut} (history {history}) + {old_open} older open ones, "
                f"of {_count(client, '')} in all"
            )
        page = probe.read(
            "/api/v2/incremental/tickets/cursor",
            ADMIN,
            lambda: client.get(
                EXPORT_PATH, _sample_params(source, settings.since), what="the incremental ticket export"
            ),
        )
        tickets = [t for t in (page or {}).get("tickets") or [] if isinstance(t, dict) and not is_deleted(t)]
        if page is not None:
            facts.sample = len(tickets)
            mapper = _mapper(source, page)
            _labels(source, probe, page, tickets, mapper)
            _segments(source, probe, tickets, mapper)
            _complaints(source, client, probe, tickets)
        _slas(source, client, probe, tickets)
        if source.satisfaction:
            _csat(client, probe)
        else:
            facts.survey_notes.append("satisfaction is false: no rating is read")
        _calendars(client, probe)
        if role not in (None, "admin"):
            facts.sla_notes.append(f"the API user's role is {role}: the exports and ratings need {ADMIN}")
    finally:
        client.close()


def _count(client: ZendeskClient, terms: str) -> int:
    query = f"type:ticket {terms}".strip()
    body = client.get("/api/v2/search/count", {"query": query}, what="the search count")
    count = body.get("count")
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _sample_params(source: ZendeskSource, since: datetime) -> dict[str, Any]:
    return {"start_time": int(since.timestamp()), "per_page": SAMPLE, "include": sideloads(source)}


def _mapper(source: ZendeskSource, page: Mapping[str, Any]) -> TicketMapper:
    """The connector's mapping with the names of the page's sideloads."""

    def names(key: str) -> dict[str, str]:
        return {str(e["id"]): str(e["name"]) for e in page.get(key) or [] if isinstance(e, dict) and "id" in e}

    return TicketMapper(source, names("groups"), names("brands"), names("organizations"))


def _labels(
    source: ZendeskSource,
    probe: Probe,
    page: Mapping[str, Any],
    tickets: Sequence[Mapping[str, Any]],
    mapper: TicketMapper,
) -> None:
    """The grouping labels of the sample, as the connector gives them (names from the page's sideloads)."""
    metric_sets = {str(m.get("ticket_id")): m for m in page.get("metric_sets") or [] if isinstance(m, dict)}
    mapped = []
    for raw in tickets:
        try:
            mapped.append(mapper.ticket(raw, metric_sets.get(str(raw.get("id")))))
        except MappingError:
            continue
    for label in probe.settings.group_by:
        upstream = LABELS.get(
            label, "brand" if source.service_field == "brand" else f"custom field {source.service_field}"
        )
        values = [getattr(t, label) for t in mapped]
        probe.facts.groupings[f"{label} ({upstream})"] = probe.top(Counter(v or "(empty)" for v in values).items())
        if label == "group" and mapped:
            probe.facts.unassigned = sum(1 for v in values if not v) / len(mapped)


def _segments(source: ZendeskSource, probe: Probe, tickets: Sequence[Mapping[str, Any]], mapper: TicketMapper) -> None:
    """Each configured segment's values in the sample (named by the sideloads the export asks for them), and the
    customer fields not configured yet that hold values, by their distinct ids: no request of their own."""
    facts = probe.facts
    for label, spec in source.segments.items():
        values = [mapper.segment_value(raw, spec) for raw in tickets]
        upstream = spec if spec in LIKELY_SEGMENTS else f"custom field {spec}"
        facts.segments[f"{label} ({upstream})"] = probe.top(Counter(v or "(empty)" for v in values).items())
    configured = set(source.segments.values())
    for label, spec in LIKELY_SEGMENTS.items():
        if spec in configured or label in source.segments or (spec == "brand" and source.service_field == "brand"):
            continue
        distinct = {raw.get(f"{spec}_id") for raw in tickets} - {None}
        if distinct:
            facts.segment_suggestions.append(SegmentSuggestion(label, spec, len(distinct)))


def _complaints(
    source: ZendeskSource, client: ZendeskClient, probe: Probe, tickets: Sequence[Mapping[str, Any]]
) -> None:
    facts = probe.facts
    titles: dict[str, str] = {}
    if any(name.isdigit() for name in source.complaints):
        fields = probe.read(
            "/api/v2/ticket_fields",
            AGENT,
            lambda: client.get("/api/v2/ticket_fields", {"page[size]": 100}, what="the ticket fields"),
            required=False,
        )
        for entry in (fields or {}).get("ticket_fields") or []:
            if isinstance(entry, dict) and entry.get("id") is not None:
                titles[str(entry["id"])] = str(entry.get("title") or "")
    for name, wanted in source.complaints.items():
        seen: Counter[str] = Counter()
        for raw in tickets:
            if name == "tags":
                seen.update(str(t) for t in raw.get("tags") or [])
            elif name == "type":
                seen.update([str(raw["type"])] if raw.get("type") else [])
            else:
                seen.update(custom_field_values(raw, name))
        if name.isdigit() and titles:
            known = (
                f"is the ticket field {titles[name]!r}" if name in titles else "is not a ticket field of this account"
            )
            facts.complaint_notes.append(f"complaints field {name} {known}")
        facts.complaints[name] = probe.complaint_values(((v, v, n) for v, n in seen.items()), wanted)


def _slas(source: ZendeskSource, client: ZendeskClient, probe: Probe, tickets: Sequence[Mapping[str, Any]]) -> None:
    """The SLA policies, the metrics read as response and resolution, and how many sampled tickets carry each."""
    facts = probe.facts
    body = probe.read(
        "/api/v2/slas/policies",
        ADMIN,
        lambda: client.get("/api/v2/slas/policies", what="the SLA policies"),
        required=False,
    )
    carrying: Counter[str] = Counter()
    for raw in tickets:
        try:
            carrying.update({m.metric for m in policy_metrics(raw)})
        except MappingError:
            continue
    read_as: dict[str, str] = {metric: goal for goal, metrics in source.sla_metrics.items() for metric in metrics}
    for policy in (body or {}).get("sla_policies") or []:
        if not isinstance(policy, dict):
            continue
        metrics = sorted({str(m.get("metric")) for m in policy.get("policy_metrics") or [] if isinstance(m, dict)})
        hours = {bool(m.get("business_hours")) for m in policy.get("policy_metrics") or [] if isinstance(m, dict)}
        clock = "business hours" if hours == {True} else "calendar hours" if hours == {False} else "mixed hours"
        facts.sla_notes.append(f"policy {policy.get('title')!r} ({clock}): {', '.join(metrics) or 'no metric'}")
    for metric, count in sorted(carrying.items(), key=lambda mc: (-mc[1], mc[0])):
        goal = read_as.get(metric)
        facts.slas.append(ValueCount(f"{metric} ({f'read as {goal}' if goal else 'not read'})", count))
    events = probe.read(
        "/api/v2/incremental/ticket_metric_events",
        ADMIN,
        lambda: client.get(
            "/api/v2/incremental/ticket_metric_events",
            {"start_time": int(probe.settings.since.timestamp())},
            what="the ticket metric events export",
        ),
        required=False,
    )
    seen = Counter(
        (str(e.get("metric")), str(e.get("type")))
        for e in (events or {}).get("ticket_metric_events") or []
        if isinstance(e, dict) and e.get("type") in ("apply_sla", "breach", "fulfill")
    )
    if seen:
        shown = ", ".join(f"{n} {kind} {metric}" for (metric, kind), n in sorted(seen.items()))
        facts.sla_notes.append(f"SLA events from the window's start (first page of the metric events export): {shown}")


def _csat(client: ZendeskClient, probe: Probe) -> None:
    """CSAT ratings received in the window: one page of up to 100, good and bad counted."""
    facts = probe.facts
    params = {"score": "received", "start_time": int(probe.settings.since.timestamp()), "page[size]": 100}
    body = probe.read(RATINGS_PATH, ADMIN, lambda: client.get(RATINGS_PATH, params, what="the satisfaction ratings"))
    if body is None:
        return
    scores = Counter(str(r.get("score")) for r in body.get("satisfaction_ratings") or [] if isinstance(r, dict))
    more = (body.get("meta") or {}).get("has_more") is True
    answers = scores["good"] + scores["bad"]
    first = " (first 100)" if more else ""
    facts.survey_notes.append(f"CSAT ratings received in the window{first}: {scores['good']} good, {scores['bad']} bad")
    facts.questions.append(
        QuestionFacts(
            QuestionUse(CSAT_QUESTION_ID, CSAT_QUESTION_NAME, CSAT_QUESTION_TEXT, answers),
            datatype="good/bad",
            scale="0..1",
        )
    )


def _calendars(client: ZendeskClient, probe: Probe) -> None:
    """The account's business-hours schedules (SLA policies in business hours run on them), for `calendars:`."""
    facts = probe.facts
    body = probe.read(
        "/api/v2/business_hours/schedules",
        ADMIN,
        lambda: client.get("/api/v2/business_hours/schedules", what="the business-hours schedules"),
        required=False,
    )
    schedules = [s for s in (body or {}).get("schedules") or [] if isinstance(s, dict)]
    for number, schedule in enumerate(schedules):
        note = f"{schedule.get('name')} ({schedule.get('time_zone')}): {_intervals(schedule.get('intervals'))}"
        if number < MAX_SCHEDULES:
            holidays = _holidays(client, probe, f"/api/v2/business_hours/schedules/{schedule.get('id')}/holidays")
            days = [
                f"{h.get('name')} {h.get('start_date')}..{h.get('end_date')}"
                for h in (holidays or {}).get("holidays") or []
                if isinstance(h, dict)
            ]
            note += f"; holidays: {', '.join(days) or 'none'}"
        else:
            note += "; holidays not read"
        facts.calendar_notes.append(note)


def _holidays(client: ZendeskClient, probe: Probe, path: str) -> dict[str, Any] | None:
    return probe.read(path, ADMIN, lambda: client.get(path, what="the holidays"), required=False)


def _intervals(intervals: object) -> str:
    """Zendesk's intervals (minutes from Sunday 00:00) as `Mon 09:00-18:00, ...`."""
    shown = []
    for interval in intervals if isinstance(intervals, list) else []:
        if not isinstance(interval, dict):
            continue
        start, end = interval.get("start_time"), interval.get("end_time")
        if isinstance(start, int) and isinstance(end, int):
            shown.append(f"{DAYS[start // 1440 % 7]} {_clock(start)}-{_clock(end)}")
    return ", ".join(shown) or "no hours"


def _clock(minutes: int) -> str:
    within = minutes % 1440 if minutes % 1440 or minutes == 0 else 1440
    return f"{within // 60:02d}:{within % 60:02d}"
