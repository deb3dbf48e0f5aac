"""The built-in demo source: a seeded, realistic service desk with a planted watermelon.

The data is a pure function of (seed, now): each calendar day's tickets come from a generator
seeded by (seed, day), and a ticket shows only the events that happened by `now`. So a later sync
sees the same tickets further along (resolved, closed, surveyed), like a real upstream, and a
one-shot run at a fixed `--as-of` is reproducible.

Group profiles (resolution SLA met share, satisfied share) are chosen so that the dashboards tell
a story: "Network Operations" closes fast and meets its SLA while its customers are unhappy (the
watermelon); "Identity & Access" is red on both sides; the others are healthy. Customers belong to a
department (the `department` field, a segment): the "Warehouse" staff's tickets go to healthy teams
that meet their SLA, and the warehouse is unhappy all the same: a watermelon that no team view shows,
only the department view (issue 28). The survey answers plant what the impact analysis finds
(collectors/impact.py): reliability is a basic need, empathy a delighter, the other dimensions
performance factors.

Two clocks: "Network Operations" works around the clock; the other groups are a 9-to-5 desk
(DEMO_CALENDARS), whose answers, resolutions and SLA due times fall in its working hours, so the
business-time families and the wall clock's tell apart a ticket that waited over a weekend.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from itsm_exporter.connectors.base import RequestObserver, ScanPage, ignore_request
from itsm_exporter.connectors.demo.config import DemoSource
from itsm_exporter.records import (
    Answer,
    RecordKind,
    Segment,
    SlaClock,
    SlaOutcome,
    SurveyResponse,
    Ticket,
    TicketState,
)

OVERALL_QUESTION: Final = "Overall satisfaction"
PERCEPTION_QUESTIONS: Final = {
    "reliability": "The issue was fixed right the first time",
    "assurance": "The agent knew how to solve my problem",
    "tangibles": "The portal and updates were clear",
    "empathy": "The agent understood my situation",
    "responsiveness": "I got a quick first answer",
}
EXPECTATION_QUESTIONS: Final = {
    "reliability": "I expect the issue to be fixed right the first time",
    "assurance": "I expect the agent to know how to solve my problem",
    "tangibles": "I expect clear portal pages and updates",
    "empathy": "I expect the agent to understand my situation",
    "responsiveness": "I expect a quick first answer",
}
DEMO_SURVEYS: Final[dict[str, Any]] = {
    "overall": [OVERALL_QUESTION],
    "dimensions": {dimension: [question] for dimension, question in PERCEPTION_QUESTIONS.items()},
    "expectations": {dimension: [question] for dimension, question in EXPECTATION_QUESTIONS.items()},
}
DEMO_COMPLAINTS: Final[dict[str, list[str]]] = {"category": ["complaint"]}
DEMO_SEGMENTS: Final[dict[str, str]] = {"department": "caller_id.department.name"}
DEPARTMENT_FIELD: Final = "caller_id.department.name"
"""The demo desk names its fields as ServiceNow does: the caller's department, dot-walked."""
DEMO_URL: Final = "https://itsm-demo.example"
"""Where the demo's drill-down links point (`url` of `itsm-exporter demo`): nothing answers there."""
WATERMELON_GROUP: Final = "Network Operations"
WATERMELON_DEPARTMENT: Final = "Warehouse"
"""The department whose customers are unhappy while every team that serves it looks healthy."""
DEPARTMENT_WEIGHTS: Final = {"Finance": 35, "Sales": 30, "Engineering": 10, "Human Resources": 25}
ENGINEERING_TEAMS: Final = ("Network Operations", "Identity & Access")
"""Teams whose callers are mostly engineers (VPN, access rights): Engineering is red on both sides, and the
other departments, seldom served by the two weak teams, stay clear of either verdict."""
ENGINEERING_WEIGHTS: Final = {"Finance": 5, "Sales": 5, "Engineering": 85, "Human Resources": 5}
WAREHOUSE_TEAMS: Final = ("Service Desk", "Desktop Support", "Facilities", "Applications")
"""The teams warehouse staff call, none of them flagged: the healthy ones and Applications, whose SLA misses its
target (not Network Operations, the team watermelon, nor Identity & Access, whose SLA would turn the
warehouse's red too). Spread thin over four, the warehouse pulls no team under its satisfaction target."""
WAREHOUSE_SHARE: Final = 0.12
"""Of those teams' tickets: enough for the department to be judged in a week, too few (and not unhappy
enough) to pull a team under target."""
WAREHOUSE_SATISFIED: Final = 0.35
COMMENT_RATE: Final = {True: 0.15, False: 0.35}
"""Share of satisfied (True) and other respondents who write a comment (unhappy customers write more)."""
DESK_OPENS: Final = 9 * 3600.0
DESK_CLOSES: Final = 17 * 3600.0
DEMO_CALENDARS: Final[dict[str, Any]] = {
    "desk": {"timezone": "UTC", "hours": {"mon-fri": ["09:00-17:00"]}},
    "around-the-clock": {"timezone": "UTC", "hours": {"mon-sun": ["00:00-24:00"]}},
}
"""The demo source's `calendar` (desk) and its watermelon group's (`calendar_by_group`)."""
DEMO_CALENDAR_KEYS: Final[dict[str, Any]] = {
    "calendar": "desk",
    "calendar_by_group": {WATERMELON_GROUP: "around-the-clock"},
}
BASIC_NEED: Final = "reliability"
"""Planted basic need: a low rating comes with a dissatisfied customer; a high one adds little to a middle one."""
DELIGHTER: Final = "empathy"
"""Planted delighter: a high rating comes with a delighted customer (5 of 5); a low one costs little."""
PLANTED: Final[dict[str, Callable[[int], tuple[float, float, float]]]] = {
    BASIC_NEED: lambda overall: (0.75, 0.15, 0.10) if overall <= 2 else (0.03, 0.37, 0.60),
    DELIGHTER: lambda overall: (0.05, 0.25, 0.70) if overall == 5 else (0.16, 0.78, 0.06),
}
"""Chances of a low (1-2), middle (3) and high (4-5) rating of a planted dimension given the overall rating: the
same whatever the overall rating on the side where the dimension makes no difference."""

DAY: Final = 86400.0
BATCH_SIZE: Final = 1000

# Response and resolution targets by priority, seconds (a common ITIL-style matrix).
RESPONSE_TARGET: Final = {"p1": 900.0, "p2": 1800.0, "p3": 4 * 3600.0, "p4": 8 * 3600.0, "p5": DAY}
RESOLUTION_TARGET: Final = {"p1": 4 * 3600.0, "p2": 8 * 3600.0, "p3": 3 * DAY, "p4": 5 * DAY, "p5": 10 * DAY}
PRIORITY_WEIGHTS: Final = {"p1": 2, "p2": 10, "p3": 50, "p4": 30, "p5": 8}
CHANNEL_WEIGHTS: Final = {"portal": 45, "email": 30, "phone": 15, "chat": 8, "walk-in": 2}
AUTO_CLOSE: Final = 3 * DAY


@dataclass(frozen=True)
class GroupProfile:
    """How one support group behaves; factors are relative to the priority's SLA target."""

    name: str
    weight: float
    services: tuple[str, ...]
    resolution_factor: float
    """Median resolution time as a share of the resolution target (lognormal, sigma 0.6)."""
    response_factor: float
    satisfied: float
    """Probability that a respondent rates overall 4 or 5 of 5."""
    reopen: float
    reassign: float
    complaint: float
    dimension_bias: Mapping[str, float]
    """Added to a respondent's scores of the dimensions that are not PLANTED (points on the 1..5 scale)."""

    @property
    def around_the_clock(self) -> bool:
        """Works 24x7; the other groups work the desk's hours (DEMO_CALENDARS)."""
        return self.name == WATERMELON_GROUP

    def after(self, start: float, seconds: float) -> float:
        """When `seconds` of this group's working time have passed since `start`."""
        return start + seconds if self.around_the_clock else desk_time(start, seconds)


GROUPS: Final = (
    GroupProfile("Service Desk", 30, ("Email", "Accounts", "Printing"), 0.30, 0.35, 0.96, 0.03, 0.10, 0.010, {}),
    GroupProfile("Desktop Support", 20, ("Laptops", "Printing", "Software"), 0.35, 0.40, 0.96, 0.04, 0.15, 0.010, {}),
    GroupProfile(
        WATERMELON_GROUP,
        18,
        ("VPN", "Wi-Fi", "Telephony"),
        0.30,
        0.90,
        0.42,
        0.18,
        0.45,
        0.060,
        {"responsiveness": -0.8, "tangibles": -0.3, "assurance": -0.6},
    ),
    GroupProfile("Applications", 15, ("ERP", "CRM", "Intranet"), 0.55, 0.45, 0.94, 0.05, 0.20, 0.015, {}),
    GroupProfile(
        "Identity & Access",
        10,
        ("Accounts", "SSO"),
        0.95,
        1.20,
        0.60,
        0.08,
        0.35,
        0.040,
        {"responsiveness": -1.0, "assurance": -0.5},
    ),
    GroupProfile("Facilities", 7, ("Badges", "Rooms"), 0.25, 0.30, 0.98, 0.02, 0.05, 0.005, {"tangibles": 0.3}),
)

SURVEY_RATE: Final = 0.40
EXPECTATION_RATE: Final = 0.5
"""Share of respondents who also answer the SERVQUAL expectation items."""


@dataclass(frozen=True)
class _Life:
    """Every event a demo ticket will ever have; `at(now)` shows the part that has happened."""

    id: str
    key: str
    opened: float
    first_response: float
    resolved: float | None
    closed: float
    canceled: bool
    on_hold: bool
    priority: str
    group: str
    service: str
    channel: str
    reassignments: int
    reopens: int
    response_met: bool
    resolution_met: bool
    category: str
    survey: tuple[float, tuple[Answer, ...]] | None
    response_due: float
    resolution_due: float
    """When its response and resolution SLAs breach, in its group's working time."""
    department: str | None = None
    commented: bool = False

    def last_event(self, now: float) -> float:
        """Time of the latest event that has happened by `now`."""
        events = [self.opened, self.first_response, self.closed, *([self.resolved] if self.resolved else [])]
        return max(t for t in events if t <= now)


WORK_WEEK: Final = 5 * (DESK_CLOSES - DESK_OPENS)


def desk_time(start: float, seconds: float) -> float:
    """The instant at which `seconds` of the desk's working time (Monday to Friday, DESK_OPENS to DESK_CLOSES
    UTC) have passed since `start`, counted from its next opening when it is closed."""
    t = _desk_opening(start)
    # A week later is the same instant of the week, exactly one working week on.
    weeks = math.floor(seconds / WORK_WEEK)
    t, seconds = t + weeks * 7 * DAY, seconds - weeks * WORK_WEEK
    while True:
        closes = math.floor(t / DAY) * DAY + DESK_CLOSES
        if seconds <= closes - t:
            return t + seconds
        seconds -= closes - t
        t = _desk_opening(closes)


def _desk_opening(t: float) -> float:
    """The first instant at or after `t` when the desk works."""
    day = math.floor(t / DAY)
    while (day + 3) % 7 >= 5 or t >= day * DAY + DESK_CLOSES:  # 1970-01-01 was a Thursday: 5, 6 are the weekend
        day += 1
        t = day * DAY
    return max(t, day * DAY + DESK_OPENS)


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _survey(rng: random.Random, group: GroupProfile, satisfied_share: float | None = None) -> tuple[Answer, ...]:
    satisfied = rng.random() < (group.satisfied if satisfied_share is None else satisfied_share)
    overall = rng.choice((4, 5, 5)) if satisfied else rng.choice((1, 2, 2, 3))
    answers = [Answer(OVERALL_QUESTION, float(overall))]
    for dimension, question in PERCEPTION_QUESTIONS.items():
        if dimension in PLANTED:
            level = rng.choices(range(3), weights=PLANTED[dimension](overall))[0]
            answers.append(Answer(question, float(rng.choice(((1, 2), (3,), (4, 5))[level]))))
            continue
        # A fifth of a point up: overall ratings lean to 4 and 5, and without it these dimensions' low ratings
        # would weigh more than their high ones; they are meant as performance factors.
        score = overall + 0.2 + group.dimension_bias.get(dimension, 0.0) + rng.gauss(0, 0.6)
        answers.append(Answer(question, float(min(5, max(1, round(score))))))
    if rng.random() < EXPECTATION_RATE:
        for question in EXPECTATION_QUESTIONS.values():
            answers.append(Answer(question, float(rng.choice((4, 5, 5, 5)))))
    return tuple(answers)


@functools.lru_cache(maxsize=1024)
def _day_tickets(seed: int, day: int, tickets_per_day: int) -> tuple[_Life, ...]:
    """The tickets opened on epoch day `day`: fixed by (seed, day) alone, so each day is generated once and every
    later sync reuses it (400 days of a demo take seconds to generate)."""
    rng = random.Random(seed * 1_000_003 + day)
    # Departments and comments from a stream of their own: the tickets the other draws give stay as they were.
    customers = random.Random((seed * 1_000_003 + day) * 7 + 1)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; 0 = Monday
    volume = tickets_per_day * (1.2 if weekday < 5 else 0.5)
    count = max(0, round(rng.gauss(volume, math.sqrt(volume))))
    group_weights = {g.name: g.weight for g in GROUPS}
    profiles = {g.name: g for g in GROUPS}
    lives = []
    for n in range(count):
        group = profiles[_weighted(rng, group_weights)]
        priority = _weighted(rng, PRIORITY_WEIGHTS)
        # Office hours are busier: most tickets open between 08:00 and 18:00 UTC.
        hour = rng.uniform(8, 18) if rng.random() < 0.8 else rng.uniform(0, 24)
        # Whole seconds, as upstreams report them, so a time and the state derived from it agree.
        opened = float(round(day * DAY + hour * 3600))
        response = float(round(RESPONSE_TARGET[priority] * group.response_factor * math.exp(rng.gauss(0, 0.7))))
        resolution = max(
            float(round(RESOLUTION_TARGET[priority] * group.resolution_factor * math.exp(rng.gauss(0, 0.6)))), response
        )
        canceled = rng.random() < 0.02
        reopens = (1 + (rng.random() < 0.2)) if rng.random() < group.reopen else 0
        reassignments = sum(rng.random() < group.reassign for _ in range(3))
        resolved = None if canceled else group.after(opened, resolution)
        closed = opened + min(resolution, 2 * 3600) if canceled else group.after(opened, resolution) + AUTO_CLOSE
        warehouse = group.name in WAREHOUSE_TEAMS and customers.random() < WAREHOUSE_SHARE
        weights = ENGINEERING_WEIGHTS if group.name in ENGINEERING_TEAMS else DEPARTMENT_WEIGHTS
        department = WATERMELON_DEPARTMENT if warehouse else _weighted(customers, weights)
        survey = None
        commented = False
        if resolved is not None and rng.random() < SURVEY_RATE:
            answers = _survey(rng, group, WAREHOUSE_SATISFIED if warehouse else None)
            survey = (resolved + round(rng.uniform(3600, 3 * DAY)), answers)
            commented = customers.random() < COMMENT_RATE[answers[0].value >= 4]
        number = day * 1000 + n
        lives.append(
            _Life(
                id=f"demo-{number:08d}",
                key=f"INC{number:08d}",
                opened=opened,
                first_response=group.after(opened, response),
                resolved=resolved,
                closed=closed,
                canceled=canceled,
                on_hold=rng.random() < 0.15,
                priority=priority,
                group=group.name,
                service=rng.choice(group.services),
                channel=_weighted(rng, CHANNEL_WEIGHTS),
                reassignments=reassignments,
                reopens=reopens,
                response_met=response <= RESPONSE_TARGET[priority],
                resolution_met=resolution <= RESOLUTION_TARGET[priority],
                category="complaint" if rng.random() < group.complaint else "request",
                survey=survey,
                department=department,
                commented=commented,
                response_due=group.after(opened, RESPONSE_TARGET[priority]),
                resolution_due=group.after(opened, RESOLUTION_TARGET[priority]),
            )
        )
    lives += [_monitoring_alert(day, hour, profiles[WATERMELON_GROUP]) for hour in range(24)]
    return tuple(lives)


MONITORING_PRIORITY: Final = "p2"
MONITORING_MARGIN: Final = 1.0
"""Seconds before its resolution target that an hourly monitoring alert is resolved."""


def _monitoring_alert(day: int, hour: int, group: GroupProfile) -> _Life:
    """An hourly ticket raised by the monitoring integration, answered in minutes and resolved a second
    inside its 8-hour target: the planted watermelon's perfect SLA record. At any instant the one raised
    7 to 8 hours earlier is open with its resolution SLA at risk, so the demo always shows that state."""
    number = day * 100 + hour  # its own id space: a day may hold any number of ordinary tickets
    opened = day * DAY + hour * 3600.0 + 120.0
    resolved = opened + RESOLUTION_TARGET[MONITORING_PRIORITY] - MONITORING_MARGIN
    return _Life(
        id=f"demo-alert-{number:07d}",
        key=f"ALR{number:07d}",
        opened=opened,
        first_response=opened + 600.0,
        resolved=resolved,
        closed=resolved + AUTO_CLOSE,
        canceled=False,
        on_hold=False,
        priority=MONITORING_PRIORITY,
        group=group.name,
        service=group.services[0],
        channel="monitoring",
        reassignments=0,
        reopens=0,
        response_met=True,
        resolution_met=True,
        category="request",
        survey=None,
        response_due=opened + RESPONSE_TARGET[MONITORING_PRIORITY],
        resolution_due=opened + RESOLUTION_TARGET[MONITORING_PRIORITY],
    )


class DemoConnector:
    """A simulated upstream; incremental like a real one: each sync returns what changed since the last."""

    def __init__(
        self,
        source: DemoSource,
        *,
        now: Callable[[], datetime] | None = None,
        observe_request: RequestObserver = ignore_request,
    ) -> None:
        self.name = source.name
        self.source = source
        """The configuration this connector reads (the sync plans get theirs from its kind's capabilities)."""
        self._now = now or (lambda: datetime.now(UTC))
        self._observe_request = observe_request
        complaint_values = {value.lower() for value in source.complaints.get("category", [])}
        self._is_complaint: Callable[[str], bool] = lambda category: category.lower() in complaint_values
        # The demo's customer field: the department only (a monitoring alert has none); another field has no value.
        self._segments = {label: field for label, field in source.segments.items() if field == DEPARTMENT_FIELD}

    phases: tuple[RecordKind, ...] = ("ticket", "survey")

    def scan(self, phase: RecordKind, since: datetime | None, token: str | None = None) -> Iterator[ScanPage]:
        """The generated records of `phase` with an event after `since`, as they stand now."""
        now = self._now().timestamp()
        start = now - self.source.days * DAY
        lives = self._lives(start, now)
        after = -math.inf if since is None else since.timestamp()
        pages = self._ticket_pages(lives, after, now) if phase == "ticket" else self._survey_pages(lives, after, now)
        for page in pages:
            # Each page stands for one page of a real upstream: count it as one successful request,
            # so the demo's request panels and alerts show what they would show in production.
            self._observe_request("200")
            yield page

    def _lives(self, start: float, now: float) -> list[_Life]:
        first, last = math.floor(start / DAY), math.floor(now / DAY)
        return [
            life
            for day in range(first, last + 1)
            for life in _day_tickets(self.source.seed, day, self.source.tickets_per_day)
            if start < life.opened <= now
        ]

    def _ticket_pages(self, lives: list[_Life], since: float, now: float) -> Iterator[ScanPage]:
        changed = [self._ticket(life, now) for life in lives if life.last_event(now) > since]
        yield from _pages("ticket", changed, now)

    def _survey_pages(self, lives: list[_Life], since: float, now: float) -> Iterator[ScanPage]:
        surveys = [
            SurveyResponse(
                source=self.name,
                id=f"survey-{life.id}",
                submitted_at=_moment(life.survey[0]),
                answers=life.survey[1],
                ticket_id=life.id,
                ticket_key=life.key,
                commented=life.commented,
            )
            for life in lives
            if life.survey is not None and since < life.survey[0] <= now
        ]
        yield from _pages("survey", surveys, now)

    def _ticket(self, life: _Life, now: float) -> Ticket:
        resolved = life.resolved if life.resolved is not None and life.resolved <= now else None
        closed = life.closed if life.closed <= now else None
        responded = life.first_response <= now
        state: TicketState
        if life.canceled and closed is not None:
            state = "canceled"
        elif closed is not None:
            state = "closed"
        elif resolved is not None:
            state = "resolved"
        else:
            state = "on_hold" if life.on_hold else "open"
        known = state in ("resolved", "closed")
        response_sla: SlaOutcome = ("met" if life.response_met else "breached") if responded else "unknown"
        resolution_sla: SlaOutcome = ("met" if life.resolution_met else "breached") if known else "unknown"
        return Ticket(
            source=self.name,
            id=life.id,
            key=life.key,
            opened_at=_moment(life.opened),
            state=state,
            updated_at=_moment(life.last_event(now)),
            first_response_at=_moment(life.first_response) if responded and state != "canceled" else None,
            resolved_at=_moment(resolved) if resolved is not None else None,
            closed_at=_moment(closed) if closed is not None else None,
            priority=life.priority,
            group=life.group,
            service=life.service,
            channel=life.channel,
            reassignments=life.reassignments,
            reopens=life.reopens if known else 0,
            sla_response=response_sla if state != "canceled" else "unknown",
            sla_resolution=resolution_sla,
            complaint=self._is_complaint(life.category),
            sla_clocks=_clocks(life, state, responded),
            segments=tuple(Segment(label, life.department) for label in self._segments if life.department),
        )

    def close(self) -> None:
        """Nothing to release: the demo holds no connection."""


def _clocks(life: _Life, state: TicketState, responded: bool) -> tuple[SlaClock, ...]:
    """The running SLA clocks of a demo ticket: response until the first answer, resolution until resolved
    (paused while on hold, as service desks pause it while waiting on the customer)."""
    if state not in ("open", "on_hold"):
        return ()
    clocks = []
    if not responded:
        target = RESPONSE_TARGET[life.priority]
        clocks.append(SlaClock("response", _moment(life.response_due), goal_seconds=target))
    target = RESOLUTION_TARGET[life.priority]
    clocks.append(SlaClock("resolution", _moment(life.resolution_due), paused=state == "on_hold", goal_seconds=target))
    return tuple(clocks)


def _pages(kind: RecordKind, records: list[Any], now: float) -> Iterator[ScanPage]:
    """Pages of BATCH_SIZE; only the last carries a position (now), so a crash mid-way re-reads all."""
    position = _moment(now)
    if not records:
        yield ScanPage(position=position, total_expected=0)
        return
    for offset in range(0, len(records), BATCH_SIZE):
        chunk = tuple(records[offset : offset + BATCH_SIZE])
        last = offset + BATCH_SIZE >= len(records)
        yield ScanPage(
            tickets=chunk if kind == "ticket" else (),
            surveys=chunk if kind == "survey" else (),
            position=position if last else None,
            fetched_so_far=offset + len(chunk),
            total_expected=len(records),
        )
