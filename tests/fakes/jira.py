"""A fake Jira Cloud / Data Center with Service Management fields, speaking the wire format of docs/api-notes.md.

It serves what the connector and the `jira` library call: serverInfo, field, myself, status, the
Cloud enhanced search (`/rest/api/3/search/jql`, token paging, no total, `id`-only default fields,
truncated embedded changelog, cut either way: `embedded_changelog_order`), the Data Center search
(`/rest/api/2/search`, startAt/total; 410 on Cloud), changelog paging, JSM feedback, and Jira's error
envelope. Dates are rendered in the API user's zone. Tests mutate issues between requests through
`on_request` or, numbered by search request, `on_search`, and read `requests`. Search pages are
positional over the data as it is when each page is asked for (Data Center `startAt`, Cloud's opaque
`nextPageToken` alike), as on real Jira.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from tests.fakes.recording import Answer, Fault, JsonApiFake, RecordedRequest

Mode = Literal["cloud", "datacenter"]
ChangelogOrder = Literal["oldest-first", "most-recent-first"]
"""How a search cuts an embedded changelog longer than its limit (docs/api-notes.md, Changelog): `oldest-first`
keeps the oldest entries with `total` the full count and `maxResults` the number shown; `most-recent-first` is
the platform spec read literally: the newest entries first, `maxResults` the limit, `total` the number shown."""

CATEGORIES = {
    "new": (2, "To Do", "blue-gray"),
    "indeterminate": (4, "In Progress", "yellow"),
    "done": (3, "Done", "green"),
}
STATUSES: dict[str, tuple[str, str]] = {
    "1": ("Open", "new"),
    "3": ("In Progress", "indeterminate"),
    "10001": ("Waiting for customer", "indeterminate"),
    "10002": ("Waiting for support", "indeterminate"),
    "5": ("Resolved", "done"),
    "6": ("Closed", "done"),
    "10003": ("Canceled", "done"),
}
PROJECTS = {"HELP": ("10000", "Help Desk"), "OPS": ("10100", "Operations")}

REQUEST_TYPE = "customfield_10010"
SLA_RESPONSE = "customfield_10020"
SLA_RESOLUTION = "customfield_10021"
SATISFACTION = "customfield_10030"
SATISFACTION_DATE = "customfield_10031"
TEAM = "customfield_10040"
ORGANIZATIONS = "customfield_10002"
SLA_PLUGIN = "com.atlassian.servicedesk:sd-sla-field"
FEEDBACK_PLUGIN = "com.atlassian.servicedesk:sd-request-feedback"

REMOVED_SEARCH = (
    "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
    "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046"
)
UNBOUNDED = "Unbounded JQL queries are not allowed here. Please add a search restriction to your query."
_MINUTE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}"
_JQL = re.compile(
    rf'^(?:\((?P<base>.*)\) AND )?updated >= "(?P<since>{_MINUTE})"(?: AND updated < "(?P<until>{_MINUTE})")?'
    r" ORDER BY updated ASC, key ASC$"
)
OPEN_ONLY = "statusCategory != Done"
_PROJECT_CLAUSE = re.compile(r"^project = (?P<key>[A-Z][A-Z0-9]*)$")
_ID_LOOKUP = re.compile(r"^(?:\((?P<base>.*)\) AND )?id in \((?P<ids>\d+(?:, \d+)*)\) ORDER BY key ASC$")
"""A lookup of issues by id, as the connector's `get` writes it."""


def errors(*messages: str, **by_field: str) -> dict[str, Any]:
    """Jira's error envelope."""
    return {"errorMessages": list(messages), "errors": by_field}


def jira_time(moment: datetime, zone: ZoneInfo) -> str:
    """`2024-11-13T20:27:56.526+0530`: the API user's zone, milliseconds, offset without colon."""
    local = moment.astimezone(zone)
    return f"{local:%Y-%m-%dT%H:%M:%S}.{local.microsecond // 1000:03d}{local:%z}"


def _sla_time(moment: datetime, zone: ZoneInfo) -> dict[str, Any]:
    local = moment.astimezone(zone)
    return {
        "iso8601": f"{local:%Y-%m-%dT%H:%M:%S%z}",
        "jira": jira_time(moment, zone),
        "friendly": f"{local:%d/%b/%y %I:%M %p}",
        "epochMillis": int(moment.timestamp() * 1000),
    }


def _millis(value: int) -> dict[str, Any]:
    sign = "-" if value < 0 else ""
    return {"millis": value, "friendly": f"{sign}{abs(value) // 3_600_000}h {abs(value) // 60_000 % 60}m"}


@dataclass
class SlaCycle:
    """One SLA cycle: completed when `stop` is set, else the ongoing one."""

    start: datetime
    goal_minutes: int
    stop: datetime | None = None
    breached: bool = False
    remaining_ms: int | None = None
    """Ongoing cycles only; negative once breached."""
    paused: bool = False
    """Ongoing cycles only: a paused cycle carries no breachTime (it moves when the clock resumes)."""
    breach_form: str = "full"
    """`full`: breachTime with iso8601, jira, friendly and epochMillis (current sites); `iso`: only iso8601."""


@dataclass
class FakeIssue:
    id: str
    key: str
    created: datetime
    updated: datetime
    status: str = "1"
    resolution: str | None = None
    resolved: datetime | None = None
    priority: str | None = "Medium"
    components: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    request_type: str | None = None
    team: str | None = None
    sla_response: list[SlaCycle] | None = None
    sla_resolution: list[SlaCycle] | None = None
    rating: int | None = None
    rated_at: datetime | None = None
    comment: str | None = None
    """The CSAT comment: in the Satisfaction field's value (`comment.body`) [U], and from the feedback endpoint."""
    organizations: list[str] = field(default_factory=list)
    histories: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)
    """Raw field values that replace the rendered ones: broken records for skip tests."""

    @property
    def project(self) -> str:
        return self.key.split("-")[0]


def history(history_id: int, created: datetime, *items: dict[str, Any], author: str = "agent") -> dict[str, Any]:
    """A changelog history; `created` is rendered when served."""
    return {"id": str(history_id), "author": {"displayName": author}, "created": created, "items": list(items)}


def status_change(from_id: str, to_id: str) -> dict[str, Any]:
    return {
        "field": "status", "fieldtype": "jira", "fieldId": "status",
        "from": from_id, "fromString": STATUSES[from_id][0], "to": to_id, "toString": STATUSES[to_id][0],
    }  # fmt: skip


def assignee_change(before: str | None, after: str | None) -> dict[str, Any]:
    return {
        "field": "assignee", "fieldtype": "jira", "fieldId": "assignee",
        "from": before, "fromString": before, "to": after, "toString": after,
    }  # fmt: skip


class FakeJira(JsonApiFake):
    """The fake site; use as a context manager, then point the connector at `url`."""

    methods = ("GET", "POST")

    def __init__(
        self,
        mode: Mode,
        *,
        time_zone: str = "Asia/Kolkata",
        username: str | None = "bot@acme.com",
        token: str = "api-token-123",
        satisfaction_field: bool = True,
        embedded_changelog_limit: int | None = None,
        embedded_changelog_order: ChangelogOrder = "oldest-first",
    ) -> None:
        super().__init__()
        self.mode = mode
        self.zone = ZoneInfo(time_zone)
        self.time_zone = time_zone
        self.username = username
        self.token = token
        self.satisfaction_field = satisfaction_field
        self.embedded_changelog_limit = embedded_changelog_limit if mode == "cloud" else None
        self.embedded_changelog_order: ChangelogOrder = embedded_changelog_order
        self.changelog_page_limit = 2
        self.issues: dict[str, FakeIssue] = {}
        self.feedback: dict[str, int] = {}
        self._search_callbacks: list[Callable[[int], None]] = []

    # -- scenario -------------------------------------------------------------------------------

    def add(self, *issues: FakeIssue) -> None:
        for issue in issues:
            self.issues[issue.id] = issue

    def fail(
        self, status: int, path: str = "", *, times: int = 1, retry_after: str | None = None, body: Any = None
    ) -> None:
        """Answer the next matching requests with `status` and Jira's error envelope (or `body`)."""
        messages = {
            400: "Error in the JQL Query: Expecting either 'OR' or 'AND' but got 'garbage'.",
            401: "You are not authenticated. Authentication required to perform this operation.",
            429: "Rate limit exceeded.",
            503: "Service Unavailable",
        }
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        if status == 429:
            headers |= {"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0", "RateLimit-Reason": "jira-burst"}
        envelope = errors(messages.get(status, f"HTTP {status}"))
        self.faults.append(Fault(status, envelope if body is None else body, path, headers, times))

    def searches(self) -> list[RecordedRequest]:
        return [r for r in self.requests if "/search" in r.path]

    def on_search(self, callback: Callable[[int], None]) -> None:
        """Call `callback` with the 0-based number of each search request, before it is answered."""
        self._search_callbacks.append(callback)

    # -- dispatch -------------------------------------------------------------------------------

    def _received(self, request: RecordedRequest) -> None:
        super()._received(request)
        if "/search" in request.path:
            number = len(self.searches()) - 1
            for callback in self._search_callbacks:
                callback(number)

    def _answer(self, request: RecordedRequest) -> Answer:
        if not self._authorized(request.headers.get("authorization", "")):
            envelope = errors("Client must be authenticated to access this resource.")
            return 401, envelope, {"WWW-Authenticate": 'Basic realm="protected-area"'}, self.json_type
        status, payload = self._route(request)
        return status, payload, {}, self.json_type

    def _authorized(self, header: str) -> bool:
        if self.username is None:
            return header == f"Bearer {self.token}"
        expected = base64.b64encode(f"{self.username}:{self.token}".encode()).decode()
        return header == f"Basic {expected}"

    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        path = request.path
        match = re.fullmatch(r"/rest/api/(2|3)/(.+)", path)
        if match:
            version, rest = match.groups()
            if self.mode == "datacenter" and version == "3":
                return 404, errors("null for uri: " + path)
            simple: dict[str, Callable[[], Any]] = {
                "serverInfo": self._server_info, "field": self._fields,
                "myself": self._myself, "status": self._statuses,
            }  # fmt: skip
            if rest in simple:
                return 200, simple[rest]()
            if rest == "search/jql" and self.mode == "cloud":
                return self._enhanced_search(request)
            if rest == "search/approximate-count" and self.mode == "cloud" and request.method == "POST":
                return self._approximate_count(request)
            if rest == "search":
                if self.mode == "cloud":
                    return 410, errors(REMOVED_SEARCH)
                return self._dc_search(request)
            changelog = re.fullmatch(r"issue/([A-Z]+-\d+)/changelog", rest)
            if changelog and self.mode == "cloud":
                return self._changelog_page(changelog.group(1), request)
            issue = re.fullmatch(r"issue/([A-Z]+-\d+)", rest)
            if issue:
                return self._issue(issue.group(1), request)
        feedback = re.fullmatch(r"/rest/servicedeskapi/request/([A-Z]+-\d+)/feedback", path)
        if feedback:
            return self._feedback(feedback.group(1), request)
        return 404, errors(f"null for uri: {self.url}{path}")

    # -- simple resources -----------------------------------------------------------------------

    def _server_info(self) -> dict[str, Any]:
        cloud = self.mode == "cloud"
        return {
            "baseUrl": self.url,
            "version": "1001.0.0-SNAPSHOT" if cloud else "9.12.4",
            "versionNumbers": [1001, 0, 0] if cloud else [9, 12, 4],
            "deploymentType": "Cloud" if cloud else "Server",
            "buildNumber": 100282 if cloud else 9120004,
            "buildDate": "2025-03-07T00:00:00.000+0000",
            "serverTime": jira_time(datetime(2025, 3, 10, tzinfo=UTC), self.zone),
            "scmInfo": "0123456789abcdef",
            "serverTitle": "Jira",
        }

    def _fields(self) -> list[dict[str, Any]]:
        def system(field_id: str, name: str, kind: str) -> dict[str, Any]:
            return {
                "id": field_id, "key": field_id, "name": name, "custom": False, "orderable": True,
                "navigable": True, "searchable": True, "clauseNames": [field_id],
                "schema": {"type": kind, "system": field_id},
            }  # fmt: skip

        def custom(field_id: str, name: str, kind: str, plugin: str) -> dict[str, Any]:
            number = int(field_id.split("_")[1])
            return {
                "id": field_id, "key": field_id, "name": name, "untranslatedName": name, "custom": True,
                "orderable": True, "navigable": True, "searchable": True,
                "clauseNames": [f"cf[{number}]", name],
                "schema": {"type": kind, "custom": plugin, "customId": number},
            }  # fmt: skip

        fields = [
            system("created", "Created", "datetime"),
            system("updated", "Updated", "datetime"),
            system("resolutiondate", "Resolved", "datetime"),
            system("status", "Status", "status"),
            system("resolution", "Resolution", "resolution"),
            system("priority", "Priority", "priority"),
            system("project", "Project", "project"),
            system("components", "Component/s", "array"),
            system("labels", "Labels", "array"),
            system("assignee", "Assignee", "user"),
            custom(REQUEST_TYPE, "Request Type", "sd-customerrequesttype", "com.atlassian.servicedesk:vp-origin"),
            custom(SLA_RESPONSE, "Time to first response", "sd-servicelevelagreement", SLA_PLUGIN),
            custom(SLA_RESOLUTION, "Time to resolution", "sd-servicelevelagreement", SLA_PLUGIN),
            custom(TEAM, "Team", "option", "com.atlassian.jira.plugin.system.customfieldtypes:select"),
            custom(ORGANIZATIONS, "Organizations", "array", "com.atlassian.servicedesk:sd-customer-organizations"),
        ]
        if self.satisfaction_field:
            fields += [
                custom(SATISFACTION, "Satisfaction", "sd-feedback", FEEDBACK_PLUGIN),
                custom(SATISFACTION_DATE, "Satisfaction date", "datetime", FEEDBACK_PLUGIN + "-date"),
            ]
        return fields

    def _myself(self) -> dict[str, Any]:
        identity = {"accountId": "5b10ac8d82e05b22cc7d4ef5"} if self.mode == "cloud" else {"name": "itsm-exporter"}
        return identity | {"emailAddress": self.username, "active": True, "timeZone": self.time_zone, "locale": "en_US"}

    def _statuses(self) -> list[dict[str, Any]]:
        return [self._status(status_id) for status_id in STATUSES]

    def _status(self, status_id: str) -> dict[str, Any]:
        name, category = STATUSES[status_id]
        category_id, category_name, colour = CATEGORIES[category]
        return {
            "self": f"{self.url}/rest/api/2/status/{status_id}", "description": "", "iconUrl": "", "name": name,
            "id": status_id,
            "statusCategory": {
                "self": f"{self.url}/rest/api/2/statuscategory/{category_id}", "id": category_id, "key": category,
                "colorName": colour, "name": category_name,
            },
        }  # fmt: skip

    # -- issues ---------------------------------------------------------------------------------

    def _sla(self, name: str, cycles: list[SlaCycle] | None) -> dict[str, Any] | None:
        if cycles is None:
            return None
        value: dict[str, Any] = {
            "id": "1" if name.endswith("response") else "2",
            "name": name,
            "_links": {"self": f"{self.url}/rest/servicedeskapi/request/1/sla/1"},
            "completedCycles": [],
            "slaDisplayFormat": "NEW_SLA_FORMAT",
        }
        for cycle in cycles:
            goal = cycle.goal_minutes * 60_000
            breach = _sla_time(datetime.fromtimestamp(cycle.start.timestamp() + goal / 1000, UTC), self.zone)
            if cycle.breach_form == "iso":
                breach = {"iso8601": breach["iso8601"]}
            shape: dict[str, Any] = {
                "startTime": _sla_time(cycle.start, self.zone),
                "breachTime": breach,
                "breached": cycle.breached,
                "goalDuration": _millis(goal),
            }
            if cycle.stop is not None:
                elapsed = int((cycle.stop - cycle.start).total_seconds() * 1000)
                shape |= {"stopTime": _sla_time(cycle.stop, self.zone), "elapsedTime": _millis(elapsed)}
                shape["remainingTime"] = _millis(goal - elapsed)
                value["completedCycles"].append(shape)
            else:
                remaining = cycle.remaining_ms if cycle.remaining_ms is not None else goal
                shape |= {
                    "elapsedTime": _millis(goal - remaining), "remainingTime": _millis(remaining),
                    "paused": cycle.paused, "withinCalendarHours": True,
                }  # fmt: skip
                if cycle.paused:
                    del shape["breachTime"]
                value["ongoingCycle"] = shape
        return value

    def render(self, issue: FakeIssue) -> dict[str, Any]:
        """Every field of an issue, as Jira renders it for this user."""
        zone = self.zone
        project_id, project_name = PROJECTS[issue.project]
        status_name, category = STATUSES[issue.status]
        fields: dict[str, Any] = {
            "created": jira_time(issue.created, zone),
            "updated": jira_time(issue.updated, zone),
            "resolutiondate": jira_time(issue.resolved, zone) if issue.resolved else None,
            "status": self._status(issue.status),
            "resolution": {"self": "", "id": "1", "name": issue.resolution} if issue.resolution else None,
            "priority": {"self": "", "iconUrl": "", "name": issue.priority, "id": "3"} if issue.priority else None,
            "project": {
                "self": f"{self.url}/rest/api/2/project/{project_id}", "id": project_id, "key": issue.project,
                "name": project_name, "projectTypeKey": "service_desk", "simplified": False, "avatarUrls": {},
            },
            "components": [{"self": "", "id": str(100 + i), "name": c} for i, c in enumerate(issue.components)],
            "labels": list(issue.labels),
            "assignee": None,
            REQUEST_TYPE: None if issue.request_type is None else {
                "_links": {"jiraRest": f"{self.url}/rest/api/2/issue/{issue.id}"},
                "requestType": {
                    "_links": {}, "id": "12", "name": issue.request_type, "description": "", "helpText": "",
                    "issueTypeId": "10004", "serviceDeskId": "1", "portalId": "1", "groupIds": ["2"],
                },
                "currentStatus": {
                    "status": status_name, "statusCategory": category.upper(),
                    "statusDate": _sla_time(issue.updated, zone),
                },
            },
            TEAM: None if issue.team is None else {"self": "", "value": issue.team, "id": "10050"},
            ORGANIZATIONS: [
                {"id": str(i), "name": name, "_links": {"self": f"{self.url}/rest/servicedeskapi/organization/{i}"}}
                for i, name in enumerate(issue.organizations, start=1)
            ],
            SLA_RESPONSE: self._sla("Time to first response", issue.sla_response),
            SLA_RESOLUTION: self._sla("Time to resolution", issue.sla_resolution),
        }  # fmt: skip
        if self.satisfaction_field:
            fields[SATISFACTION] = (
                None
                if issue.rating is None
                else {"self": f"{self.url}/rest/servicedeskapi/request/{issue.id}/feedback", "rating": issue.rating}
                | ({"comment": {"body": issue.comment}} if issue.comment else {})
            )
            fields[SATISFACTION_DATE] = jira_time(issue.rated_at, zone) if issue.rated_at else None
        return fields | issue.overrides

    def _histories(self, issue: FakeIssue) -> list[dict[str, Any]]:
        return [h | {"created": jira_time(h["created"], self.zone)} for h in issue.histories]

    def _issue_json(self, issue: FakeIssue, wanted: list[str] | None, changelog: bool) -> dict[str, Any]:
        version = "3" if self.mode == "cloud" else "2"
        shaped: dict[str, Any] = {"id": issue.id}
        if wanted is not None:
            rendered = self.render(issue)
            every = "*all" in wanted or "*navigable" in wanted
            shaped = {
                "expand": "operations,versionedRepresentations,editmeta,changelog,renderedFields",
                "id": issue.id,
                "self": f"{self.url}/rest/api/{version}/issue/{issue.id}",
                "key": issue.key,
                "fields": {k: v for k, v in rendered.items() if every or k in wanted},
            }
        if changelog:
            histories = self._histories(issue)
            limit = self.embedded_changelog_limit
            if self.embedded_changelog_order == "most-recent-first":
                shown = histories[::-1][:limit]
                page, total = limit if limit is not None else len(shown), len(shown)
            else:
                shown = histories[:limit]
                page, total = len(shown), len(histories)
            shaped["changelog"] = {"startAt": 0, "maxResults": page, "total": total, "histories": shown}
        return shaped

    def _find(self, key: str) -> FakeIssue | None:
        return next((i for i in self.issues.values() if i.key == key), None)

    def _issue(self, key: str, request: RecordedRequest) -> tuple[int, Any]:
        issue = self._find(key)
        if issue is None:
            return 404, errors("Issue does not exist or you do not have permission to see it.")
        wanted = ",".join(request.query.get("fields", ["*all"])).split(",")
        changelog = "changelog" in ",".join(request.query.get("expand", []))
        limit, self.embedded_changelog_limit = self.embedded_changelog_limit, None
        try:
            return 200, self._issue_json(issue, wanted, changelog)
        finally:
            self.embedded_changelog_limit = limit

    def _changelog_page(self, key: str, request: RecordedRequest) -> tuple[int, Any]:
        issue = self._find(key)
        if issue is None:
            return 404, errors("Issue does not exist or you do not have permission to see it.")
        start = int(request.query.get("startAt", ["0"])[0])
        size = min(int(request.query.get("maxResults", ["100"])[0]), self.changelog_page_limit)
        histories = self._histories(issue)
        values = histories[start : start + size]
        return 200, {
            "self": f"{self.url}{request.path}", "maxResults": size, "startAt": start, "total": len(histories),
            "isLast": start + len(values) >= len(histories), "values": values,
        }  # fmt: skip

    def _feedback(self, key: str, request: RecordedRequest) -> tuple[int, Any]:
        if request.headers.get("x-experimentalapi") != "opt-in":
            return 412, {"errorMessage": "This API is experimental. Experimental APIs are not guaranteed to be stable"}
        if key not in self.feedback:
            return 404, {"errorMessage": "No feedback exists for this request", "i18nErrorMessage": {}}
        return 200, {"type": "csat", "rating": self.feedback[key], "comment": {"body": "thanks"}}

    # -- search ---------------------------------------------------------------------------------

    def _search_params(self, request: RecordedRequest) -> dict[str, Any]:
        if request.method == "POST":
            body = json.loads(request.body or b"{}")
            fields = body.get("fields")
            return {
                "jql": body.get("jql", ""),
                "fields": fields if isinstance(fields, list) else None,
                "expand": body.get("expand") or "",
                "maxResults": body.get("maxResults"),
                "nextPageToken": body.get("nextPageToken"),
                "startAt": body.get("startAt", 0),
            }
        query = request.query
        fields = [f for value in query.get("fields", []) for f in value.split(",") if f]
        return {
            "jql": query.get("jql", [""])[0],
            "fields": fields or None,
            "expand": ",".join(query.get("expand", [])),
            "maxResults": int(query["maxResults"][0]) if "maxResults" in query else None,
            "nextPageToken": query.get("nextPageToken", [None])[0],
            "startAt": int(query.get("startAt", ["0"])[0]),
        }

    def _matching(self, jql: str) -> tuple[int, Any]:
        """Evaluate the JQL subset the connector emits; anything else is a 400 like Jira's parser."""
        if self.mode == "cloud" and (not jql.strip() or jql.strip().upper().startswith("ORDER BY")):
            return 400, errors(UNBOUNDED)
        lookup = _ID_LOOKUP.match(jql)
        match = lookup or _JQL.match(jql)
        if match is None:
            return 400, errors(f"Error in the JQL Query: the fake does not understand {jql!r}")
        if lookup is not None:
            wanted = set(lookup["ids"].split(", "))
            issues = [i for i in self.issues.values() if i.id in wanted]
        else:
            # Jira reads JQL minute literals in the API user's zone.
            since = datetime.strptime(match["since"], "%Y-%m-%d %H:%M").replace(tzinfo=self.zone)
            issues = [i for i in self.issues.values() if i.updated >= since]
            if match["until"] is not None:
                until = datetime.strptime(match["until"], "%Y-%m-%d %H:%M").replace(tzinfo=self.zone)
                issues = [i for i in issues if i.updated < until]
        base = match["base"]
        if base is not None and (base == OPEN_ONLY or base.endswith(f") AND {OPEN_ONLY}")):
            # The open backlog: statuses outside the done category (JQL `statusCategory != Done`).
            issues = [i for i in issues if STATUSES[i.status][1] != "done"]
            base = None if base == OPEN_ONLY else base.removesuffix(f" AND {OPEN_ONLY}").removeprefix("(")[:-1]
        if base is not None:
            clause = _PROJECT_CLAUSE.match(base.strip())
            if clause is None:
                return 400, errors(f"Error in the JQL Query: the fake does not understand {base!r}")
            if clause["key"] not in PROJECTS:
                return 400, errors(f"The value '{clause['key']}' does not exist for the field 'project'.")
            issues = [i for i in issues if i.project == clause["key"]]
        if lookup is not None:
            issues.sort(key=lambda i: (i.project, int(i.key.split("-")[1])))
        else:
            issues.sort(key=lambda i: (i.updated, i.project, int(i.key.split("-")[1])))
        return 200, issues

    def _enhanced_search(self, request: RecordedRequest) -> tuple[int, Any]:
        params = self._search_params(request)
        status, found = self._matching(params["jql"])
        if status != 200:
            return status, found
        wanted = params["fields"]
        limit = 100 if wanted and wanted != ["id"] else 5000
        size = min(params["maxResults"] or 50, limit)
        token = params["nextPageToken"]
        offset = json.loads(base64.b64decode(token))["offset"] if token else 0
        page = found[offset : offset + size]
        is_last = offset + len(page) >= len(found)
        body: dict[str, Any] = {
            "issues": [self._issue_json(i, wanted, "changelog" in params["expand"]) for i in page],
            "isLast": is_last,
        }
        if not is_last:
            body["nextPageToken"] = base64.b64encode(json.dumps({"offset": offset + len(page)}).encode()).decode()
        return 200, body

    def _approximate_count(self, request: RecordedRequest) -> tuple[int, Any]:
        """Cloud's `{"count": N}` for a JQL (POST body `{"jql"}`); ORDER BY is optional there, and this
        fake's parser only knows the connector's ordered shape, so it is added when absent."""
        jql = str(json.loads(request.body or b"{}").get("jql", ""))
        if " ORDER BY " not in jql:
            jql += " ORDER BY updated ASC, key ASC"
        status, found = self._matching(jql)
        return (status, found) if status != 200 else (200, {"count": len(found)})

    def _dc_search(self, request: RecordedRequest) -> tuple[int, Any]:
        params = self._search_params(request)
        status, found = self._matching(params["jql"])
        if status != 200:
            return status, found
        size = min(params["maxResults"] or 50, 1000)
        start = params["startAt"]
        wanted = params["fields"] or ["*navigable"]
        page = found[start : start + size]
        return 200, {
            "expand": "schema,names", "startAt": start, "maxResults": size, "total": len(found),
            "issues": [self._issue_json(i, wanted, "changelog" in params["expand"]) for i in page],
        }  # fmt: skip


# -- the standard test site -------------------------------------------------------------------

TOKEN = "api-token-123"
EMAIL = "bot@acme.com"
ZONES = {"cloud": "Asia/Kolkata", "datacenter": "America/Phoenix"}
"""+0530 on Cloud, -0700 on Data Center: offsets on both sides of UTC."""


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def fake_jira(mode: Mode, **options: Any) -> FakeJira:
    """A fake of the given deployment with the first-sync issues loaded."""
    fake = FakeJira(
        mode,
        time_zone=ZONES[mode],
        username=EMAIL if mode == "cloud" else None,
        token=TOKEN,
        embedded_changelog_limit=3,
        **options,
    )
    fake.add(*first_issues())
    return fake


def first_issues() -> list[FakeIssue]:
    return [
        FakeIssue(
            "10001", "HELP-1", at(3, 8), at(4, 10), status="5", resolution="Done", resolved=at(3, 12),
            priority="High", components=["Email"], team="Network", request_type="Get IT help",
            sla_response=[SlaCycle(at(3, 8), 60, stop=at(3, 8, 30))],
            sla_resolution=[SlaCycle(at(3, 8), 480, stop=at(3, 12))],
            rating=5, rated_at=at(4, 10),
            histories=[
                history(1, at(3, 8, 5), assignee_change(None, "alice")),
                history(2, at(3, 8, 30), status_change("1", "3")),
                history(3, at(3, 12), status_change("3", "5")),
            ],
        ),
        FakeIssue(
            "10002", "HELP-2", at(4, 9), at(5, 11), status="3", priority="Highest", team="Apps",
            sla_response=[SlaCycle(at(4, 9), 60, stop=at(4, 13), breached=True)],
            sla_resolution=[SlaCycle(at(4, 9), 480, breached=True, remaining_ms=-7_200_000)],
            histories=[
                history(4, at(4, 9, 10), assignee_change(None, "alice")),
                history(5, at(4, 10), assignee_change("alice", "bob")),
                history(6, at(4, 11), assignee_change("bob", None)),
                history(7, at(5, 11), assignee_change(None, "carol")),
            ],
        ),
        FakeIssue(
            "10003", "HELP-3", at(5, 7), at(7, 18), status="6", resolution="Done", resolved=at(7, 16),
            priority="Low", components=["VPN", "Network"],
            sla_response=[SlaCycle(at(5, 7), 60, stop=at(5, 7, 20))],
            sla_resolution=[
                SlaCycle(at(5, 7), 480, stop=at(6, 9)),
                SlaCycle(at(6, 12), 480, stop=at(7, 16), breached=True),
            ],
            rating=2, rated_at=at(7, 18),
            histories=[
                history(8, at(5, 7, 5), assignee_change(None, "dave")),
                history(9, at(5, 7, 20), status_change("1", "3")),
                history(10, at(6, 9), status_change("3", "5")),
                history(11, at(6, 12), status_change("5", "3")),
                history(12, at(7, 16), status_change("3", "6")),
            ],
        ),
        FakeIssue(
            "10004", "HELP-4", at(6, 10), at(6, 15), status="10001", priority="Lowest", labels=["complaint", "vip"],
            sla_resolution=[SlaCycle(at(6, 10), 480, remaining_ms=25_200_000, paused=True)],
        ),
        FakeIssue(
            "10005", "HELP-5", at(6, 11), at(6, 12, 30), status="10003", resolution="Won't Do", resolved=at(6, 12, 30),
            sla_response=[SlaCycle(at(6, 11), 60, remaining_ms=1_800_000)],
        ),
        FakeIssue("10006", "HELP-6", at(7, 8), at(7, 9), overrides={"created": "yesterday"}),
        FakeIssue(
            "10007", "HELP-7", at(7, 8), at(7, 8, 30), status="10002", priority="Urgent",
            sla_response=[SlaCycle(at(7, 8), 60, remaining_ms=1_800_000, breach_form="iso")],
        ),
        FakeIssue("10008", "HELP-8", at(1, 9), at(2, 9), status="5", resolution="Done", resolved=at(1, 17)),
    ]  # fmt: skip


def change_for_incremental(fake: FakeJira) -> None:
    """HELP-2 is resolved, old HELP-8 gets its rating, HELP-9 is new."""
    help2 = fake.issues["10002"]
    help2.status, help2.resolution, help2.resolved, help2.updated = "5", "Done", at(8, 10), at(8, 10)
    help2.sla_resolution = [SlaCycle(at(4, 9), 480, stop=at(8, 10), breached=True)]
    help2.histories.append(history(13, at(8, 10), status_change("3", "5")))
    help8 = fake.issues["10008"]
    help8.rating, help8.rated_at, help8.updated = 1, at(8, 12), at(8, 12)
    fake.add(FakeIssue("10009", "HELP-9", at(8, 13), at(8, 13), priority="Critical", team="Network"))
