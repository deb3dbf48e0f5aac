"""A fake Zendesk Support account speaking the wire format of docs/api-notes.md ("Zendesk Support").

It serves what the connector and `discover` call: the cursor-based incremental ticket export
(`start_time` then `cursor`, `after_cursor`/`after_url`/`end_of_stream`, the `metric_sets`, `slas`,
`groups`, `brands` and `organizations` sideloads, deleted tickets unless `exclude_deleted`, the last
minute held back, 10 requests a minute on `/api/v2/incremental/` answered 429 with Retry-After), the
ticket metric events export, show_many, the search export and search count, satisfaction ratings with cursor
pagination, groups, brands, ticket fields, SLA policies, business-hours schedules and holidays, and
Zendesk's error bodies. Its clock is injectable (`now`), so the hold-back and the rate limit are
tested without waiting. The `after_url` and `links.next` it returns name the account's public host
(`PUBLIC_URL`), as real ones do: a client that followed them would leave the loopback.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.recording import Answer, Fault, JsonApiFake, RecordedRequest

EMAIL = "bot@acme.com"
TOKEN = "zd-api-token-123"
OAUTH_TOKEN = "zd-oauth-token-456"
PUBLIC_URL = "https://acme.zendesk.com"
"""Where Zendesk's own next-page URLs point: never this fake's loopback address."""
EXPORT_LIMIT = 10
"""Requests a minute on the incremental export endpoints."""
HOLD_BACK_SECONDS = 60
MAX_EXPORT_PAGE = 1000
MAX_SHOW_MANY = 100
MAX_CURSOR_PAGE = 100
SEARCH_EXPORT_MAX_PAGE = 1000
JSON_TYPE = "application/json; charset=utf-8"


def zd_time(moment: datetime) -> str:
    """`2011-05-05T10:38:52Z`: Zendesk writes UTC to the second."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def error(kind: str, description: str | None = None) -> dict[str, Any]:
    """Zendesk's error body."""
    return {"error": kind} | ({"description": description} if description is not None else {})


def at(day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A UTC instant in March 2025, the month the standard account lives in."""
    return datetime(2025, 3, day, hour, minute, second, tzinfo=UTC)


@dataclass
class PolicyMetric:
    """One metric of the SLA policy applied to a ticket, as the `slas` sideload shows it."""

    metric: str
    stage: str
    """`active`, `paused` or `achieved`."""
    breach_at: datetime | None


@dataclass
class FakeTicket:
    id: int
    created: datetime
    updated: datetime
    status: str = "open"
    priority: str | None = "normal"
    group_id: int | None = None
    brand_id: int | None = None
    organization_id: int | None = None
    """The requester's organization."""
    channel: str = "web"
    tags: list[str] = field(default_factory=list)
    type: str | None = "incident"
    custom_fields: dict[int, Any] = field(default_factory=dict)
    reply_seconds: int | None = None
    """Calendar seconds from creation to the first public agent reply; None before it."""
    solved_at: datetime | None = None
    status_updated_at: datetime | None = None
    reopens: int = 0
    replies: int = 0
    group_stations: int = 1
    assignee_stations: int = 1
    policy: list[PolicyMetric] = field(default_factory=list)
    generated: datetime | None = None
    """`generated_timestamp`: moves with every change, system ones included; `updated` when None."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Raw values that replace the rendered ones: broken records for skip tests."""
    metric_overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def generated_ts(self) -> int:
        return int((self.generated or self.updated).timestamp())

    def touch(self, moment: datetime) -> None:
        """An update at `moment`: updated_at and generated_timestamp move."""
        self.updated = moment
        self.generated = moment


@dataclass
class FakeRating:
    id: int
    ticket_id: int
    score: str
    """offered, unoffered, good or bad."""
    created: datetime
    updated: datetime
    comment: str = ""
    reason: str | None = None


@dataclass
class Schedule:
    id: int
    name: str
    time_zone: str
    intervals: list[tuple[int, int]]
    """Minutes from Sunday 00:00 (Zendesk's start_time/end_time)."""
    holidays: list[tuple[str, str, str]] = field(default_factory=list)
    """(name, start_date, end_date)."""


def encode_cursor(ts: int, ticket: int) -> str:
    """An export cursor as Zendesk's look: base64 of `<generated_timestamp>.0||<id>|`."""
    return base64.b64encode(f"{ts}.0||{ticket}|".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, int] | None:
    try:
        text = base64.b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        ts, _, rest = text.partition(".0||")
        return int(ts), int(rest.rstrip("|"))
    except (ValueError, UnicodeDecodeError):
        return None


class FakeZendesk(JsonApiFake):
    """The fake account; use as a context manager, then point the connector at `url`."""

    json_type = JSON_TYPE

    def __init__(
        self,
        *,
        now: Callable[[], float] = time.time,
        email: str = EMAIL,
        token: str = TOKEN,
        oauth_token: str = OAUTH_TOKEN,
        export_limit: int = EXPORT_LIMIT,
        ratings_start_on: str = "updated_at",
    ) -> None:
        super().__init__()
        self.now = now
        self.email = email
        self.token = token
        self.oauth_token = oauth_token
        self.export_limit = export_limit
        self.ratings_start_on = ratings_start_on
        """Which time `start_time` filters ratings on (docs/api-notes.md: not documented)."""
        self.tickets: dict[int, FakeTicket] = {}
        self.ratings: dict[int, FakeRating] = {}
        self.groups: dict[int, str] = {}
        self.brands: dict[int, str] = {}
        self.organizations: dict[int, str] = {}
        self.ticket_fields: dict[int, tuple[str, list[str]]] = {}
        """id -> (title, option values)."""
        self.sla_policies: list[dict[str, Any]] = []
        self.schedules: list[Schedule] = []
        self.metric_events: list[dict[str, Any]] = []
        self.admin = True
        """Exports, ratings and policies are for admins: False answers them 403."""
        self._export_times: list[float] = []

    # -- scenario -------------------------------------------------------------------------------

    def add(self, *tickets: FakeTicket) -> None:
        for ticket in tickets:
            self.tickets[ticket.id] = ticket

    def rate(self, *ratings: FakeRating) -> None:
        for rating in ratings:
            self.ratings[rating.id] = rating

    def fail(
        self, status: int, path: str = "", *, times: int = 1, retry_after: str | None = None, body: Any = None
    ) -> None:
        """Answer the next matching requests with `status` and Zendesk's error body (or `body`)."""
        bodies = {
            400: error("InvalidValue", "Invalid search: the query is not understood"),
            401: error("Couldn't authenticate you"),
            403: error("Forbidden", "You do not have access to this page. Please contact the account owner."),
            404: error("RecordNotFound", "Not found"),
            429: error("APIRateLimitExceeded", "Number of allowed API requests per minute exceeded"),
            500: error("InternalError", "Something went wrong"),
            503: error("ServiceUnavailable", "Zendesk is temporarily unavailable"),
        }
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        self.faults.append(
            Fault(status, bodies.get(status, error(f"HTTP {status}")) if body is None else body, path, headers, times)
        )

    def served(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    def exports(self) -> list[RecordedRequest]:
        return self.served("/api/v2/incremental/tickets/cursor")

    # -- dispatch -------------------------------------------------------------------------------

    def _path(self, path: str) -> str:
        return path.removesuffix(".json")

    def _answer(self, request: RecordedRequest) -> Answer:
        if not self._authorized(request.headers.get("authorization", "")):
            return 401, error("Couldn't authenticate you"), {}, JSON_TYPE
        if request.path.startswith("/api/v2/incremental/"):
            limited = self._export_limit()
            if limited is not None:
                return (
                    429,
                    error("APIRateLimitExceeded", "Number of allowed API requests per minute exceeded"),
                    {"Retry-After": str(limited)},
                    JSON_TYPE,
                )
        if not self.admin and request.path != "/api/v2/users/me":
            return (
                403,
                error("Forbidden", "You do not have access to this page. Please contact the account owner."),
                {},
                JSON_TYPE,
            )
        status, payload = self._route(request)
        limits = {"X-Rate-Limit": "700", "X-Rate-Limit-Remaining": "699"}
        return status, payload, limits, JSON_TYPE

    def _authorized(self, header: str) -> bool:
        if header == f"Bearer {self.oauth_token}":
            return True
        expected = base64.b64encode(f"{self.email}/token:{self.token}".encode()).decode()
        return header == f"Basic {expected}"

    def _export_limit(self) -> int | None:
        """Seconds until a request is allowed again when the minute's budget is spent, else None (and counted)."""
        now = self.now()
        self._export_times = [t for t in self._export_times if now - t < 60]
        if len(self._export_times) >= self.export_limit:
            return max(1, int(60 - (now - self._export_times[0])) + 1)
        self._export_times.append(now)
        return None

    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        path = request.path
        routes: dict[str, Callable[[RecordedRequest], tuple[int, Any]]] = {
            "/api/v2/incremental/tickets/cursor": self._export,
            "/api/v2/incremental/ticket_metric_events": self._metric_events,
            "/api/v2/tickets/show_many": self._show_many,
            "/api/v2/search/export": self._search_export,
            "/api/v2/search/count": self._search_count,
            "/api/v2/satisfaction_ratings": self._ratings,
            "/api/v2/users/me": lambda _r: (
                200,
                {"user": {"id": 1, "email": self.email, "role": "admin" if self.admin else "agent"}},
            ),
            "/api/v2/groups": lambda r: self._cursor_page(
                r, "groups", [{"id": i, "name": n} for i, n in sorted(self.groups.items())]
            ),
            "/api/v2/brands": lambda r: self._cursor_page(
                r, "brands", [{"id": i, "name": n} for i, n in sorted(self.brands.items())]
            ),
            "/api/v2/ticket_fields": lambda r: self._cursor_page(r, "ticket_fields", self._fields()),
            "/api/v2/slas/policies": lambda _r: (
                200,
                {"sla_policies": self.sla_policies, "count": len(self.sla_policies)},
            ),
            "/api/v2/business_hours/schedules": lambda _r: (
                200,
                {"schedules": [self._schedule(s) for s in self.schedules]},
            ),
        }
        if path in routes:
            return routes[path](request)
        if path.startswith("/api/v2/business_hours/schedules/") and path.endswith("/holidays"):
            schedule_id = path.split("/")[-2]
            for schedule in self.schedules:
                if str(schedule.id) == schedule_id:
                    return 200, {"holidays": [
                        {"id": n, "name": name, "start_date": start, "end_date": end}
                        for n, (name, start, end) in enumerate(schedule.holidays, 1)
                    ]}  # fmt: skip
        return 404, error("InvalidEndpoint", "Not found")

    # -- tickets --------------------------------------------------------------------------------

    def _visible(self, exclude_deleted: bool) -> list[FakeTicket]:
        """What the export can show now: the last minute is held back; in (generated_timestamp, id) order."""
        cutoff = self.now() - HOLD_BACK_SECONDS
        shown = [t for t in self.tickets.values() if t.generated_ts < cutoff]
        if exclude_deleted:
            shown = [t for t in shown if t.status != "deleted"]
        return sorted(shown, key=lambda t: (t.generated_ts, t.id))

    def _export(self, request: RecordedRequest) -> tuple[int, Any]:
        per_page = int(request.param("per_page") or MAX_EXPORT_PAGE)
        if not 1 <= per_page <= MAX_EXPORT_PAGE:
            return 400, error("InvalidValue", f"per_page must be between 1 and {MAX_EXPORT_PAGE}")
        cursor, start = request.param("cursor"), request.param("start_time")
        if cursor is not None:
            position = decode_cursor(cursor)
            if position is None:
                return 400, error("InvalidPaginationParameter", "cursor is invalid")
        elif start is not None and start.lstrip("-").isdigit():
            if int(start) > self.now() - HOLD_BACK_SECONDS:
                return 400, error("InvalidValue", "start_time must be at least one minute in the past")
            position = (int(start) - 1, 2**62)
        else:
            return 400, error("InvalidValue", "start_time or cursor is required")
        rest = [
            t for t in self._visible(request.param("exclude_deleted") == "true") if (t.generated_ts, t.id) > position
        ]
        page, rest = rest[:per_page], rest[per_page:]
        after = encode_cursor(page[-1].generated_ts, page[-1].id) if page else encode_cursor(*position)
        include = set((request.param("include") or "").split(","))
        body: dict[str, Any] = {
            "tickets": [self.render(t, "slas" in include) for t in page],
            "after_cursor": after,
            "after_url": f"{PUBLIC_URL}/api/v2/incremental/tickets/cursor.json?cursor={after}",
            "before_cursor": None,
            "before_url": None,
            "end_of_stream": not rest,
        }
        return 200, body | self._sideloads(page, include)

    def _show_many(self, request: RecordedRequest) -> tuple[int, Any]:
        ids = [i for i in (request.param("ids") or "").split(",") if i]
        if not ids or len(ids) > MAX_SHOW_MANY or not all(i.isdigit() for i in ids):
            return 400, error("InvalidValue", f"ids: 1 to {MAX_SHOW_MANY} ticket ids")
        include = set((request.param("include") or "").split(","))
        found = [
            self.tickets[int(i)] for i in ids if int(i) in self.tickets and self.tickets[int(i)].status != "deleted"
        ]
        return 200, {"tickets": [self.render(t, "slas" in include) for t in found]} | self._sideloads(found, include)

    def _sideloads(self, tickets: list[FakeTicket], include: set[str]) -> dict[str, Any]:
        loaded: dict[str, Any] = {}
        live = [t for t in tickets if t.status != "deleted"]
        if "metric_sets" in include:
            loaded["metric_sets"] = [self.metric_set(t) for t in live]
        if "groups" in include:
            ids = sorted({t.group_id for t in live if t.group_id in self.groups})
            loaded["groups"] = [{"id": i, "name": self.groups[i]} for i in ids if i is not None]
        if "brands" in include:
            ids = sorted({t.brand_id for t in live if t.brand_id in self.brands})
            loaded["brands"] = [{"id": i, "name": self.brands[i]} for i in ids if i is not None]
        if "organizations" in include:
            ids = sorted({t.organization_id for t in live if t.organization_id in self.organizations})
            loaded["organizations"] = [{"id": i, "name": self.organizations[i]} for i in ids if i is not None]
        return loaded

    def render(self, ticket: FakeTicket, slas: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "url": f"{PUBLIC_URL}/api/v2/tickets/{ticket.id}.json",
            "id": ticket.id,
            "created_at": zd_time(ticket.created),
            "updated_at": zd_time(ticket.updated),
            "generated_timestamp": ticket.generated_ts,
            "type": ticket.type,
            "subject": f"Ticket {ticket.id}",
            "priority": ticket.priority,
            "status": ticket.status,
            "group_id": ticket.group_id,
            "brand_id": ticket.brand_id,
            "organization_id": ticket.organization_id,
            "tags": list(ticket.tags),
            "via": {"channel": ticket.channel, "source": {"from": {}, "to": {}, "rel": None}},
            "custom_fields": [{"id": i, "value": v} for i, v in sorted(ticket.custom_fields.items())],
        }
        rating = next((r for r in self.ratings.values() if r.ticket_id == ticket.id), None)
        body["satisfaction_rating"] = (
            {"id": rating.id, "score": rating.score, "comment": rating.comment} if rating else {"score": "unoffered"}
        )
        if slas:
            body["slas"] = {
                "policy_metrics": [
                    {"breach_at": zd_time(m.breach_at) if m.breach_at else None, "stage": m.stage, "metric": m.metric}
                    | self._remaining(m)
                    for m in ticket.policy
                ]
            }
        return body | ticket.overrides

    def _remaining(self, metric: PolicyMetric) -> dict[str, int]:
        """The time to breach as the sideload words it: the largest unit, negative once breached."""
        if metric.breach_at is None:
            return {}
        seconds = int(metric.breach_at.timestamp() - self.now())
        for unit, size in (("days", 86400), ("hours", 3600)):
            if abs(seconds) >= size:
                return {unit: int(seconds / size)}
        return {"minutes": int(seconds / 60)}

    def metric_set(self, ticket: FakeTicket) -> dict[str, Any]:
        reply = ticket.reply_seconds
        calendar = (
            {"calendar": reply // 60, "business": reply // 60}
            if reply is not None
            else {"calendar": None, "business": None}
        )
        body: dict[str, Any] = {
            "id": ticket.id + 100000,
            "ticket_id": ticket.id,
            "url": f"{PUBLIC_URL}/api/v2/ticket_metrics/{ticket.id + 100000}.json",
            "created_at": zd_time(ticket.created),
            "updated_at": zd_time(ticket.updated),
            "group_stations": ticket.group_stations,
            "assignee_stations": ticket.assignee_stations,
            "reopens": ticket.reopens,
            "replies": ticket.replies,
            "solved_at": zd_time(ticket.solved_at) if ticket.solved_at else None,
            "status_updated_at": zd_time(ticket.status_updated_at or ticket.updated),
            "reply_time_in_minutes": calendar,
            "reply_time_in_seconds": {"calendar": reply},
            "first_resolution_time_in_minutes": {"calendar": None, "business": None},
            "full_resolution_time_in_minutes": {"calendar": None, "business": None},
        }
        return body | ticket.metric_overrides

    # -- search ---------------------------------------------------------------------------------

    def _search_export(self, request: RecordedRequest) -> tuple[int, Any]:
        if request.param("filter[type]") != "ticket":
            return 400, error("InvalidValue", "filter[type] is required")
        query = request.param("query") or ""
        matched = self._search(query)
        if matched is None:
            return 400, error("InvalidValue", f"the fake does not understand the query {query!r}")
        size = int(request.param("page[size]") or 100)
        if not 1 <= size <= SEARCH_EXPORT_MAX_PAGE:
            return 400, error("InvalidValue", "page[size] is too large")
        after = request.param("page[after]")
        offset = int(base64.b64decode(after).decode()) if after else 0
        page = matched[offset : offset + size]
        more = offset + size < len(matched)
        cursor = base64.b64encode(str(offset + size).encode()).decode()
        return 200, {
            "results": [self.render(t, False) | {"result_type": "ticket"} for t in page],
            "meta": {"has_more": more, "after_cursor": cursor if more else None, "before_cursor": None},
            "links": {
                "next": f"{PUBLIC_URL}/api/v2/search/export.json?page[after]={cursor}" if more else None,
                "prev": None,
            },
        }

    def _search(self, query: str) -> list[FakeTicket] | None:
        """The query shapes the connector and discover write: `status<solved`, `updated<DAY`, `updated>=DAY`."""
        tickets = [t for t in self.tickets.values() if t.status != "deleted"]
        for term in query.split():
            if term == "type:ticket":
                continue
            if term == "status<solved":
                tickets = [t for t in tickets if t.status in ("new", "open", "pending", "hold")]
            elif term.startswith("updated<"):
                day = datetime.fromisoformat(term.removeprefix("updated<")).replace(tzinfo=UTC)
                tickets = [t for t in tickets if t.updated < day]
            elif term.startswith("updated>="):
                day = datetime.fromisoformat(term.removeprefix("updated>=")).replace(tzinfo=UTC)
                tickets = [t for t in tickets if t.updated >= day]
            else:
                return None
        return sorted(tickets, key=lambda t: t.id)

    def _search_count(self, request: RecordedRequest) -> tuple[int, Any]:
        matched = self._search(request.param("query") or "")
        if matched is None:
            return 400, error("InvalidValue", "the fake does not understand the query")
        return 200, {"count": len(matched)}

    # -- ratings, metric events, settings -------------------------------------------------------

    def _ratings(self, request: RecordedRequest) -> tuple[int, Any]:
        scores = {
            "received": ("good", "bad"),
            "good": ("good",),
            "bad": ("bad",),
            None: ("offered", "unoffered", "good", "bad"),
        }
        score = request.param("score")
        if score not in scores:
            return 400, error("InvalidValue", f"score {score!r}")
        ratings = sorted((r for r in self.ratings.values() if r.score in scores[score]), key=lambda r: r.id)
        start = request.param("start_time")
        if start is not None:
            on = (lambda r: r.updated) if self.ratings_start_on == "updated_at" else (lambda r: r.created)
            ratings = [r for r in ratings if on(r).timestamp() >= int(start)]
        return self._cursor_page(request, "satisfaction_ratings", [self._rating(r) for r in ratings])

    @staticmethod
    def _rating(rating: FakeRating) -> dict[str, Any]:
        return {
            "url": f"{PUBLIC_URL}/api/v2/satisfaction_ratings/{rating.id}.json",
            "id": rating.id,
            "assignee_id": 7,
            "group_id": 44,
            "requester_id": 8,
            "ticket_id": rating.ticket_id,
            "score": rating.score,
            "comment": rating.comment,
            "reason": rating.reason,
            "created_at": zd_time(rating.created),
            "updated_at": zd_time(rating.updated),
        }

    def _cursor_page(self, request: RecordedRequest, key: str, items: list[dict[str, Any]]) -> tuple[int, Any]:
        """Zendesk's cursor pagination: `page[size]` (at most 100), `page[after]`, `meta` and `links`."""
        size = int(request.param("page[size]") or MAX_CURSOR_PAGE)
        if not 1 <= size <= MAX_CURSOR_PAGE:
            return 400, error("InvalidPaginationParameter", f"page[size] must be at most {MAX_CURSOR_PAGE}")
        after = request.param("page[after]")
        offset = int(base64.b64decode(after).decode()) if after else 0
        page = items[offset : offset + size]
        more = offset + size < len(items)
        cursor = base64.b64encode(str(offset + size).encode()).decode()
        return 200, {
            key: page,
            "meta": {"has_more": more, "after_cursor": cursor if more else None, "before_cursor": None},
            "links": {"next": f"{PUBLIC_URL}{request.path}.json?page[after]={cursor}" if more else None, "prev": None},
        }

    def _metric_events(self, request: RecordedRequest) -> tuple[int, Any]:
        start = request.param("start_time")
        if start is None or not start.isdigit():
            return 400, error("InvalidValue", "start_time is required")
        cutoff = self.now() - HOLD_BACK_SECONDS
        events = sorted(
            (e for e in self.metric_events if int(start) <= _epoch(e["time"]) < cutoff),
            key=lambda e: (e["time"], e["id"]),
        )
        page = events[:MAX_EXPORT_PAGE]
        end_time = _epoch(page[-1]["time"]) if page else int(start)
        return 200, {
            "ticket_metric_events": page,
            "count": len(page),
            "end_time": end_time,
            "next_page": f"{PUBLIC_URL}/api/v2/incremental/ticket_metric_events.json?start_time={end_time}",
            "end_of_stream": len(events) <= MAX_EXPORT_PAGE,
        }

    def _fields(self) -> list[dict[str, Any]]:
        return [
            {
                "id": i,
                "title": title,
                "type": "tagger",
                "custom_field_options": [{"name": v, "value": v} for v in values],
            }
            for i, (title, values) in sorted(self.ticket_fields.items())
        ]

    @staticmethod
    def _schedule(schedule: Schedule) -> dict[str, Any]:
        return {
            "id": schedule.id,
            "name": schedule.name,
            "time_zone": schedule.time_zone,
            "intervals": [{"start_time": s, "end_time": e} for s, e in schedule.intervals],
        }


def _epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


# -- the standard account -------------------------------------------------------------------------

SUPPORT, BILLING = 360001, 360002
"""Group ids."""
BRAND = 9001
COMPLAINT_FIELD = 360077
TIER_FIELD = 360088
"""A custom field holding the customer's support tier (a segment)."""
WAREHOUSE, FINANCE = 7001, 7002
"""Organization ids."""


def standard_tickets() -> list[FakeTicket]:
    """The account of the exact-metric tests: March 2025, evaluated at `at(8)` over the window (Mar 1, Mar 8].

    1: urgent, Support, solved Mar 3 (first reply 30 min, met both SLAs), reopened once, rated good.
    2: high, Support, solved Mar 4 (first reply after its breach time: response breached), rated bad.
    3: normal, Billing, closed Mar 5, reassigned (2 groups), tagged complaint.
    4: low, Billing, open, first reply given, resolution SLA running (breaches Mar 9).
    5: normal, Support, pending: resolution SLA paused; complaint by custom field.
    6: urgent, no group, new: no reply; response SLA active and breached since Mar 7 12:00.
    7: deleted on Mar 6 (the export lists it with status deleted).
    8: open since Feb 1, untouched since Feb 2: an old backlog ticket a bounded first sync reads too.
    9: solved in February, updated Feb 10: out of the window; its rating of Mar 2 is in it.
    """
    sla_met = [
        PolicyMetric("first_reply_time", "achieved", at(2, 10)),
        PolicyMetric("requester_wait_time", "achieved", at(4)),
    ]
    return [
        FakeTicket(
            1, at(2, 9), at(3, 12), status="solved", priority="urgent", group_id=SUPPORT, brand_id=BRAND,
            organization_id=WAREHOUSE, custom_fields={TIER_FIELD: "gold"}, channel="email", reply_seconds=1800,
            solved_at=at(3, 12), reopens=1, replies=3, policy=sla_met,
        ),
        FakeTicket(
            2, at(2, 9), at(4, 8), status="solved", priority="high", group_id=SUPPORT, brand_id=BRAND,
            organization_id=WAREHOUSE,
            reply_seconds=7200, solved_at=at(4, 8), replies=2,
            policy=[
                PolicyMetric("first_reply_time", "achieved", at(2, 10)),
                PolicyMetric("requester_wait_time", "achieved", at(6)),
            ],
        ),
        FakeTicket(
            3, at(3, 9), at(5, 9), status="closed", priority="normal", group_id=BILLING, brand_id=BRAND,
            organization_id=FINANCE,
            tags=["billing", "complaint"], reply_seconds=600, solved_at=at(4, 9), status_updated_at=at(5, 9),
            group_stations=2, assignee_stations=2, replies=1,
        ),
        FakeTicket(
            4, at(4, 9), at(6, 10), status="open", priority="low", group_id=BILLING, brand_id=BRAND,
            reply_seconds=3600, replies=1,
            policy=[
                PolicyMetric("first_reply_time", "achieved", at(4, 17)),
                PolicyMetric("requester_wait_time", "active", at(9)),
            ],
        ),
        FakeTicket(
            5, at(5, 9), at(6, 12), status="pending", priority="normal", group_id=SUPPORT, brand_id=BRAND,
            custom_fields={COMPLAINT_FIELD: "formal_complaint"}, reply_seconds=900, replies=1,
            policy=[PolicyMetric("requester_wait_time", "paused", None)],
        ),
        FakeTicket(
            6, at(6, 9), at(6, 9), status="new", priority="urgent", channel="api",
            policy=[PolicyMetric("first_reply_time", "active", at(7, 12))],
        ),
        FakeTicket(7, at(5, 9), at(6, 14), status="deleted", priority="normal", group_id=SUPPORT, brand_id=BRAND),
        FakeTicket(
            8, datetime(2025, 2, 1, 9, tzinfo=UTC), datetime(2025, 2, 2, 9, tzinfo=UTC), status="hold",
            priority="high", group_id=SUPPORT, brand_id=BRAND, reply_seconds=120, replies=1,
        ),
        FakeTicket(
            9, datetime(2025, 2, 3, 9, tzinfo=UTC), datetime(2025, 2, 10, 9, tzinfo=UTC), status="solved",
            priority="normal", group_id=BILLING, brand_id=BRAND, reply_seconds=60,
            solved_at=datetime(2025, 2, 10, 9, tzinfo=UTC), replies=1,
        ),
    ]  # fmt: skip


def standard_ratings() -> list[FakeRating]:
    return [
        FakeRating(501, 1, "good", created=at(3, 12), updated=at(3, 15), comment="Quick!"),
        FakeRating(502, 2, "bad", created=at(4, 8), updated=at(4, 20), reason="Took too long"),
        FakeRating(503, 9, "good", created=datetime(2025, 2, 11, tzinfo=UTC), updated=at(2, 8)),
        FakeRating(504, 3, "offered", created=at(5, 9), updated=at(5, 9)),
    ]


def standard_account(fake: FakeZendesk) -> FakeZendesk:
    fake.groups.update({SUPPORT: "Support", BILLING: "Billing"})
    fake.brands[BRAND] = "Acme"
    fake.organizations.update({WAREHOUSE: "Warehouse", FINANCE: "Finance"})
    fake.ticket_fields[COMPLAINT_FIELD] = ("Complaint type", ["formal_complaint", "none"])
    fake.ticket_fields[TIER_FIELD] = ("Support tier", ["gold", "silver"])
    fake.add(*standard_tickets())
    fake.rate(*standard_ratings())
    fake.sla_policies.append(
        {
            "id": 25,
            "title": "Standard",
            "description": "Every ticket",
            "position": 1,
            "filter": {"all": [], "any": []},
            "policy_metrics": [
                {"priority": p, "metric": m, "target": t, "business_hours": True}
                for p in ("urgent", "high", "normal", "low")
                for m, t in (("first_reply_time", 60), ("requester_wait_time", 2880))
            ],
        }
    )
    fake.schedules.append(
        Schedule(
            1, "EMEA desk", "Europe/Paris", [(1440 * d + 540, 1440 * d + 1080) for d in range(1, 6)],
            holidays=[("Christmas", "2025-12-25", "2025-12-26")],
        )
    )  # fmt: skip
    return fake


@contextmanager
def fake_zendesk(**options: Any) -> Iterator[FakeZendesk]:
    """The standard account, served."""
    with FakeZendesk(**options) as fake:
        yield standard_account(fake)
