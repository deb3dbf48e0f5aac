"""A fake ServiceNow instance on 127.0.0.1: the Table API wire format, OAuth, and fault switches.

What it reproduces (docs/api-notes.md): every scalar a string and "" for unset; the three
`sysparm_display_value` modes with and without reference links; dates displayed in the user's
zone and format (so a client that parses display dates fails); `Link` and `X-Total-Count`
headers; encoded queries (= != > >= < <= IN NOT IN LIKE ISEMPTY ISNOTEMPTY, ^, ^OR, ^NQ,
ORDERBY/ORDERBYDESC, dot-walking) where an invalid term is silently ignored; the Aggregate API's
count and group-by (`/api/now/stats/<table>`, counts as strings); unknown fields
silently dropped; the error envelope; 401 with WWW-Authenticate; the OAuth password and refresh
grants (form-encoded only); schedules (`cmn_schedule`, `cmn_schedule_span` with its compact local
date-times, `contract_sla.schedule`).

[U] switch: `metric_bounds=False` serves asmt_metric without `min`/`max` (unknown fields).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.fakes.loopback import LoopbackServer

DATETIME = "datetime"
DURATION = "duration"
CHOICE = "choice"
STRING = "string"
SCHEDULE_DATETIME = "schedule_date_time"
"""A schedule entry's time: `20250106T080000`, the schedule's local time without a zone."""

SCHEMA: dict[str, dict[str, str]] = {
    "incident": {
        "sys_id": STRING, "number": STRING, "state": CHOICE, "incident_state": CHOICE, "active": STRING,
        "opened_at": DATETIME, "resolved_at": DATETIME, "closed_at": DATETIME, "sys_updated_on": DATETIME,
        "sys_created_on": DATETIME, "priority": CHOICE, "impact": CHOICE, "urgency": CHOICE,
        "assignment_group": "ref:sys_user_group", "assigned_to": "ref:sys_user", "business_service": "ref:cmn_service",
        "caller_id": "ref:sys_user", "company": "ref:core_company", "location": "ref:cmn_location",
        "category": CHOICE, "contact_type": CHOICE, "reassignment_count": STRING, "reopen_count": STRING,
        "made_sla": STRING, "close_code": CHOICE, "short_description": STRING, "calendar_duration": DURATION,
    },
    "sys_user_group": {"sys_id": STRING, "name": STRING},
    "cmn_service": {"sys_id": STRING, "name": STRING},
    "sys_user": {"sys_id": STRING, "name": STRING, "user_name": STRING, "department": "ref:cmn_department"},
    "cmn_department": {"sys_id": STRING, "name": STRING},
    "core_company": {"sys_id": STRING, "name": STRING},
    "cmn_location": {"sys_id": STRING, "name": STRING},
    "contract_sla": {
        "sys_id": STRING, "name": STRING, "target": CHOICE, "duration": DURATION, "schedule": "ref:cmn_schedule",
    },
    "cmn_schedule": {"sys_id": STRING, "name": STRING, "time_zone": CHOICE, "type": CHOICE},
    "cmn_schedule_span": {
        "sys_id": STRING, "schedule": "ref:cmn_schedule", "name": STRING, "type": CHOICE, "all_day": STRING,
        "start_date_time": SCHEDULE_DATETIME, "end_date_time": SCHEDULE_DATETIME, "repeat_type": CHOICE,
        "days_of_week": STRING,
    },
    "task_sla": {
        "sys_id": STRING, "task": "ref:incident", "sla": "ref:contract_sla", "stage": CHOICE, "has_breached": STRING,
        "start_time": DATETIME, "end_time": DATETIME, "planned_end_time": DATETIME, "duration": DURATION,
        "business_duration": DURATION, "business_percentage": STRING, "sys_updated_on": DATETIME,
    },
    "sys_audit_delete": {
        "sys_id": STRING, "tablename": STRING, "documentkey": STRING, "display_value": STRING,
        "sys_created_on": DATETIME,
    },
    "asmt_metric": {
        "sys_id": STRING, "name": STRING, "question": STRING, "datatype": CHOICE, "min": STRING, "max": STRING,
        "scale_factor": STRING,
    },
    "asmt_assessment_instance": {
        "sys_id": STRING, "number": STRING, "state": CHOICE, "taken_on": DATETIME, "metric_type": STRING,
        "user": "ref:sys_user", "trigger_table": STRING, "trigger_id": "ref:incident", "sys_updated_on": DATETIME,
    },
    "asmt_metric_result": {
        "sys_id": STRING, "instance": "ref:asmt_assessment_instance", "metric": "ref:asmt_metric",
        "actual_value": STRING, "string_value": STRING, "sys_updated_on": DATETIME,
    },
}  # fmt: skip
DISPLAY_FIELD = {
    "incident": "number",
    "sys_user_group": "name",
    "cmn_service": "name",
    "sys_user": "name",
    "cmn_department": "name",
    "core_company": "name",
    "cmn_location": "name",
    "contract_sla": "name",
    "task_sla": "sys_id",
    "asmt_metric": "name",
    "sys_audit_delete": "display_value",
    "asmt_assessment_instance": "number",
    "asmt_metric_result": "sys_id",
    "cmn_schedule": "name",
    "cmn_schedule_span": "name",
}
CHOICES = {
    "state": {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed", "8": "Canceled"},
    "incident_state": {"1": "New", "2": "Active", "3": "Awaiting Problem", "4": "Awaiting User Info"},
    "priority": {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"},
    "contact_type": {"email": "Email", "phone": "Phone", "self-service": "Self-service", "walk-in": "Walk-in"},
    "target": {"response": "Response", "resolution": "Resolution"},
    "stage": {"in_progress": "In progress", "completed": "Completed", "cancelled": "Cancelled", "paused": "Paused"},
    "repeat_type": {"daily": "Daily", "weekdays": "Every Weekday (Mon-Fri)", "weekly": "Weekly", "yearly": "Yearly"},
    "type": {"exclude": "Excluded", "": ""},
}
USER_OFFSET = timedelta(hours=-5)
"""The API user's time zone: display dates are shifted by it and formatted MM/dd/yyyy hh:mm:ss a."""
ERROR_401 = {"message": "User Not Authenticated", "detail": "Required to provide Auth information"}
HIBERNATION_PAGE = (
    b"<!DOCTYPE html><html><head><title>Instance Hibernating page</title></head>"
    b"<body><p>Your instance is hibernating. Sign in to wake it up.</p></body></html>"
)
_TERM = re.compile(r"^([a-z0-9_.]+)(!=|>=|<=|=|>|<|NOT IN|IN|NOTLIKE|LIKE|STARTSWITH|ENDSWITH|ISNOTEMPTY|ISEMPTY)(.*)$")


@dataclass(frozen=True)
class Reply:
    """A scripted answer that replaces the next normal one for a table (or "oauth")."""

    kind: Literal["status", "html", "truncate", "drop"] = "status"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None


def status(code: int, message: str = "", headers: dict[str, str] | None = None) -> Reply:
    """An error status with ServiceNow's envelope (`message` defaults by status)."""
    default = {429: "Rate limit exceeded", 500: "Internal server error", 503: "Service Unavailable"}
    text = message or default.get(code, "failure")
    return Reply("status", code, headers or {}, {"message": text, "detail": None})


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    table: str | None
    params: dict[str, str]
    headers: dict[str, str]
    form: dict[str, str] = field(default_factory=dict)


class FakeServiceNow:
    """In-memory tables behind a ThreadingHTTPServer; use as a context manager, read `url`."""

    def __init__(
        self,
        *,
        user: str = "itsm-exporter",
        password: str = "Sn0w-pass!",
        client_id: str | None = None,
        client_secret: str | None = None,
        metric_bounds: bool = True,
        token_lifetime: int = 1800,
    ) -> None:
        self.user, self.password = user, password
        self.client_id, self.client_secret = client_id, client_secret
        self.metric_bounds = metric_bounds
        self.token_lifetime = token_lifetime
        self.tables: dict[str, dict[str, dict[str, str]]] = {name: {} for name in SCHEMA}
        self.requests: list[LoggedRequest] = []
        self.faults: dict[str, deque[Reply]] = {}
        self.denied: set[str] = set()
        self.on_request: Callable[[LoggedRequest], None] | None = None
        self.access_tokens: set[str] = set()
        self.refresh_tokens: set[str] = set()
        self.lock = threading.RLock()
        self._counter = 0
        self._server: LoopbackServer | None = None
        self.url = ""

    def __enter__(self) -> FakeServiceNow:
        fake = self

        class Handler(_Handler):
            owner = fake

        self._server = LoopbackServer(Handler)
        self.url = self._server.url()
        return self

    def __exit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.stop()

    # ----- data -----
    def new_id(self, table: str) -> str:
        with self.lock:
            self._counter += 1
            return hashlib.md5(f"{table}:{self._counter}".encode(), usedforsecurity=False).hexdigest()

    def add(self, table: str, **fields: str) -> str:
        """Insert a record (unset schema fields are "", sys_id generated unless given); returns its sys_id."""
        with self.lock:
            record = dict.fromkeys(SCHEMA[table], "")
            record.update(fields)
            record["sys_id"] = fields["sys_id"] if "sys_id" in fields else self.new_id(table)
            self.tables[table][record["sys_id"]] = record
            return record["sys_id"]

    def update(self, table: str, sys_id: str, **fields: str) -> None:
        with self.lock:
            self.tables[table][sys_id].update(fields)

    def delete(self, table: str, sys_id: str, at: str) -> None:
        """Delete a record as ServiceNow does: gone from its table, one sys_audit_delete row created at `at`."""
        with self.lock:
            record = self.tables[table].pop(sys_id)
        display = record.get(DISPLAY_FIELD.get(table, "sys_id"), sys_id)
        self.add("sys_audit_delete", tablename=table, documentkey=sys_id, display_value=display, sys_created_on=at)

    def fail(self, key: str, *replies: Reply) -> None:
        """Queue scripted replies for the next requests to a table, or to "oauth"."""
        with self.lock:
            self.faults.setdefault(key, deque()).extend(replies)

    def revoke_tokens(self) -> None:
        """Invalidate every access token (as expiry or revocation would); refresh tokens stay valid."""
        with self.lock:
            self.access_tokens.clear()

    def table_requests(self, table: str) -> list[LoggedRequest]:
        return [r for r in self.requests if r.table == table]

    # ----- query engine -----
    def resolve(self, table: str, record: dict[str, str], path: str) -> tuple[str, str, str] | None:
        """(value, display value, kind) of a field or dot-walked path; None for an unknown field."""
        name, _, rest = path.partition(".")
        kind = self._schema(table).get(name)
        if kind is None:
            return None
        raw = record.get(name, "")
        if rest:
            if not kind.startswith("ref:"):
                return None
            target = kind[4:]
            referenced = self.tables[target].get(raw)
            if referenced is None:
                return ("", "", STRING) if rest.split(".")[0] in self._schema(target) else None
            return self.resolve(target, referenced, rest)
        return raw, self._display(kind, name, raw), kind

    def _schema(self, table: str) -> dict[str, str]:
        schema = SCHEMA[table]
        if table == "asmt_metric" and not self.metric_bounds:
            return {k: v for k, v in schema.items() if k not in ("min", "max")}
        return schema

    def _display(self, kind: str, name: str, raw: str) -> str:
        if not raw:
            return ""
        if kind.startswith("ref:"):
            target = kind[4:]
            referenced = self.tables[target].get(raw)
            return referenced.get(DISPLAY_FIELD[target], "") if referenced else ""
        if kind in (DATETIME, DURATION):
            try:
                moment = datetime.strptime(raw, "%Y-%m-%d %H:%M:%S")
            except ValueError:
                return raw  # corrupt data is shown as stored
            if kind == DATETIME:
                return (moment + USER_OFFSET).strftime("%m/%d/%Y %I:%M:%S %p")
            elapsed = moment - datetime(1970, 1, 1)
            return f"{elapsed.days} Days {elapsed.seconds // 3600} Hours {elapsed.seconds % 3600 // 60} Minutes"
        if kind == SCHEDULE_DATETIME:
            return datetime.strptime(raw, "%Y%m%dT%H%M%S").strftime("%m/%d/%Y %I:%M:%S %p")
        if kind == CHOICE:
            return CHOICES.get(name, {}).get(raw, raw)
        return raw

    def query(self, table: str, encoded: str) -> list[dict[str, str]]:
        """Records of `table` matching an encoded query, in its ORDERBY order (sys_id last, as a tiebreak)."""
        order: list[tuple[str, bool]] = []
        subqueries: list[list[list[str]]] = []
        for sub in encoded.split("^NQ") if encoded else []:
            groups: list[list[str]] = []
            for part in sub.split("^"):
                if part.startswith("ORDERBYDESC"):
                    order.append((part[len("ORDERBYDESC") :], True))
                elif part.startswith("ORDERBY"):
                    order.append((part[len("ORDERBY") :], False))
                elif part.startswith("OR") and groups:
                    groups[-1].append(part[2:])
                elif part:
                    groups.append([part])
            subqueries.append(groups)
        records = list(self.tables[table].values())
        if subqueries:
            records = [
                r
                for r in records
                if any(all(any(self._match(table, r, t) for t in group) for group in groups) for groups in subqueries)
            ]
        records.sort(key=lambda r: r["sys_id"])
        for path, descending in reversed(order):  # stable sorts: the first ORDERBY ends up the primary key
            records.sort(key=lambda r: self._sort_key(table, r, path), reverse=descending)
        return records

    def _sort_key(self, table: str, record: dict[str, str], path: str) -> str:
        resolved = self.resolve(table, record, path)
        return resolved[0] if resolved is not None else ""

    def _match(self, table: str, record: dict[str, str], term: str) -> bool:
        parsed = _TERM.match(term)
        if parsed is None:
            return True  # ServiceNow ignores an invalid term
        path, op, operand = parsed.groups()
        resolved = self.resolve(table, record, path)
        if resolved is None:
            return True  # ... and a term on an unknown field
        actual = resolved[0]
        if op == "=":
            return actual == operand
        if op == "!=":
            return actual != operand
        if op in (">", ">=", "<", "<="):
            return {">": actual > operand, ">=": actual >= operand, "<": actual < operand, "<=": actual <= operand}[op]
        if op in ("IN", "NOT IN"):
            return (actual in operand.split(",")) == (op == "IN")
        if op in ("LIKE", "NOTLIKE"):
            return (operand.lower() in actual.lower()) == (op == "LIKE")
        if op == "STARTSWITH":
            return actual.lower().startswith(operand.lower())
        if op == "ENDSWITH":
            return actual.lower().endswith(operand.lower())
        return (actual == "") == (op == "ISEMPTY")

    def render(
        self, table: str, record: dict[str, str], fields: Iterable[str], mode: str, links: bool
    ) -> dict[str, Any]:
        """One record in the requested display mode; unknown fields are left out."""
        out: dict[str, Any] = {}
        for path in fields:
            resolved = self.resolve(table, record, path)
            if resolved is None:
                continue
            raw, shown, kind = resolved
            is_ref = kind.startswith("ref:")
            link = f"{self.url}/api/now/table/{kind[4:]}/{raw}" if is_ref else ""
            if is_ref and not raw:
                out[path] = ""
            elif mode == "all":
                out[path] = {"display_value": shown, "value": raw} | ({"link": link} if is_ref and links else {})
            elif mode == "true":
                out[path] = {"display_value": shown, "link": link} if is_ref and links else shown
            else:
                out[path] = {"link": link, "value": raw} if is_ref and links else raw
        return out


class _Handler(BaseHTTPRequestHandler):
    owner: FakeServiceNow
    protocol_version = "HTTP/1.0"

    def log_message(self, *_: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        fake = self.owner
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        match = re.fullmatch(r"/api/now(?:/v[12])?/table/([A-Za-z0-9_]+)(?:/([0-9a-f]{32}))?", parts.path)
        stats = re.fullmatch(r"/api/now(?:/v[12])?/stats/([A-Za-z0-9_]+)", parts.path)
        table = match.group(1) if match else stats.group(1) if stats else None
        content_type = self.headers.get("Content-Type", "")
        form = dict(parse_qsl(body)) if "x-www-form-urlencoded" in content_type else {}
        logged = LoggedRequest(method, parts.path, table, params, dict(self.headers.items()), form)
        with fake.lock:
            fake.requests.append(logged)
            if fake.on_request is not None:
                fake.on_request(logged)
            key = "oauth" if parts.path == "/oauth_token.do" else table or ""
            queue = fake.faults.get(key)
            scripted = queue.popleft() if queue else None
            if scripted is not None and scripted.kind == "drop":
                self.close_connection = True
                return
            if scripted is not None and scripted.kind == "html":
                self._send(200, HIBERNATION_PAGE, {"Content-Type": "text/html;charset=UTF-8"})
                return
            if scripted is not None and scripted.kind == "status":
                self._json(scripted.status, {"error": scripted.error, "status": "failure"}, scripted.headers)
                return
            if parts.path == "/oauth_token.do" and method == "POST":
                self._oauth(content_type, form)
                return
            if not self._authorized():
                self._fail(
                    401, ERROR_401["message"], ERROR_401["detail"], {"WWW-Authenticate": 'BASIC realm="Service-now"'}
                )
                return
            if table is None or method != "GET":
                self._fail(400, "Requested URI does not represent any resource")
                return
            if table not in SCHEMA:
                self._fail(400, f"Invalid table {table}")
                return
            if table in fake.denied:
                self._fail(403, "User Not Authorized", f"ACL denies read on {table}")
                return
            if stats:
                self._stats(table, params)
                return
            self._table(table, match.group(2) if match else None, params, truncate=scripted is not None)

    def _authorized(self) -> bool:
        fake = self.owner
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic ") and fake.client_id is None:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user == fake.user and password == fake.password
        return header.startswith("Bearer ") and header[7:] in fake.access_tokens

    def _oauth(self, content_type: str, form: dict[str, str]) -> None:
        fake = self.owner
        denied = {"error_description": "access_denied", "error": "server_error"}
        if "x-www-form-urlencoded" not in content_type:
            self._json(401, denied)
            return
        if form.get("client_id") != fake.client_id or form.get("client_secret") != fake.client_secret:
            self._json(401, denied)
            return
        grant = form.get("grant_type")
        if grant == "password":
            ok = form.get("username") == fake.user and form.get("password") == fake.password
        elif grant == "refresh_token":
            ok = form.get("refresh_token", "") in fake.refresh_tokens
        else:
            ok = False
        if not ok:
            self._json(401, denied)
            return
        access, refresh = fake.new_id("access"), fake.new_id("refresh")
        fake.access_tokens.add(access)
        fake.refresh_tokens.add(refresh)
        self._json(
            200,
            {
                "access_token": access,
                "refresh_token": refresh,
                "scope": "useraccount",
                "token_type": "Bearer",
                "expires_in": fake.token_lifetime,
            },
        )

    def _table(self, table: str, sys_id: str | None, params: dict[str, str], *, truncate: bool) -> None:
        fake = self.owner
        mode = params.get("sysparm_display_value", "false").lower()
        links = params.get("sysparm_exclude_reference_link", "false").lower() != "true"
        fields = [f for f in params.get("sysparm_fields", "").split(",") if f] or list(fake._schema(table))
        if sys_id is not None:
            record = fake.tables[table].get(sys_id)
            if record is None:
                self._fail(404, "No Record found", "Record doesn't exist or ACL restricts the record retrieval")
                return
            self._json(200, {"result": fake.render(table, record, fields, mode, links)})
            return
        matched = fake.query(table, params.get("sysparm_query", ""))
        limit = int(params.get("sysparm_limit") or 10000)
        offset = max(int(params.get("sysparm_offset") or 0), 0)
        page = matched[offset : offset + limit]
        headers = {}
        if params.get("sysparm_no_count", "false").lower() != "true":
            headers["X-Total-Count"] = str(len(matched))
        suppress = params.get("sysparm_suppress_pagination_header", "false").lower() == "true"
        if len(matched) > limit and not suppress:
            headers["Link"] = self._links(table, params, offset, limit, len(matched))
        payload = json.dumps({"result": [fake.render(table, r, fields, mode, links) for r in page]}).encode()
        if truncate:
            payload = payload[: len(payload) // 2]
        self._send(200, payload, {"Content-Type": "application/json;charset=UTF-8", **headers})

    def _stats(self, table: str, params: dict[str, str]) -> None:
        """The Aggregate API's count: `{"result": {"stats": {"count": "N"}}}`, or with `sysparm_group_by` a
        list of `{"stats": ..., "groupby_fields": [{"field", "value", "display_value"}]}` (counts are strings;
        `value` is the display value with sysparm_display_value=true, both with `all`)."""
        fake = self.owner
        if params.get("sysparm_count", "false").lower() != "true":
            self._json(200, {"result": {"stats": {}}})
            return
        matched = fake.query(table, params.get("sysparm_query", ""))
        group_by = params.get("sysparm_group_by", "")
        if not group_by:
            self._json(200, {"result": {"stats": {"count": str(len(matched))}}})
            return
        mode = params.get("sysparm_display_value", "false").lower()
        groups: dict[tuple[str, str], int] = {}
        for record in matched:
            raw, shown, _kind = fake.resolve(table, record, group_by) or ("", "", STRING)
            groups[(raw, shown)] = groups.get((raw, shown), 0) + 1
        result = []
        for (raw, shown), count in sorted(groups.items()):
            field_value = {"field": group_by, "value": shown if mode == "true" else raw}
            if mode == "all":
                field_value["display_value"] = shown
            result.append({"stats": {"count": str(count)}, "groupby_fields": [field_value]})
        self._json(200, {"result": result})

    def _links(self, table: str, params: dict[str, str], offset: int, limit: int, total: int) -> str:
        def link(rel: str, at: int) -> str:
            query = urlencode({**params, "sysparm_offset": str(at)})
            return f'<{self.owner.url}/api/now/table/{table}?{query}>;rel="{rel}"'

        rels = [link("first", 0)]
        if offset > 0:
            rels.append(link("prev", max(offset - limit, 0)))
        if offset + limit < total:
            rels.append(link("next", offset + limit))
        rels.append(link("last", (total - 1) // limit * limit))
        return ",".join(rels)

    def _fail(self, code: int, message: str, detail: str | None = None, headers: dict[str, str] | None = None) -> None:
        self._json(code, {"error": {"message": message, "detail": detail}, "status": "failure"}, headers)

    def _json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": "application/json;charset=UTF-8", **(headers or {})}
        self._send(code, json.dumps(body).encode(), headers)

    def _send(self, code: int, payload: bytes, headers: dict[str, str]) -> None:
        self.send_response(code)
        for name, text in headers.items():
            self.send_header(name, text)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def source_settings(fake: FakeServiceNow, **settings: Any) -> dict[str, Any]:
    """The config mapping of a `servicenow` source pointing at `fake` (Basic auth unless overridden)."""
    base: dict[str, Any] = {
        "name": "sn",
        "kind": "servicenow",
        "url": fake.url,
        "username": fake.user,
        "password": fake.password,
    }
    if fake.client_id is not None:
        base |= {"client_id": fake.client_id, "client_secret": fake.client_secret}
    return base | settings


def add_incident(
    fake: FakeServiceNow, number: str, updated: str, *, state: str = "2", opened_at: str | None = None, **fields: str
) -> str:
    """An incident updated at `updated` (opened then unless said), `active` as ServiceNow sets it from its state."""
    active = "true" if state in ("1", "2", "3") else "false"
    return fake.add(
        "incident", number=number, state=state, active=active, opened_at=opened_at or updated,
        sys_updated_on=updated, **fields,
    )  # fmt: skip
