"""Seeded, vectorized generators of benchmark data: frames for the collectors, records for the store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from itsm_exporter.config import Config, parse_config
from itsm_exporter.frames import (
    ANSWER_DTYPES,
    QUESTION_DTYPES,
    SEGMENT_DTYPES,
    SLA_CLOCK_DTYPES,
    SURVEY_DTYPES,
    TICKET_DTYPES,
    Frames,
)
from itsm_exporter.records import TICKET_COLUMNS, Segment, SlaClock, Ticket

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DAY = 86400.0
HISTORY_DAYS = 60
"""Tickets opened over two 30-day windows: what a computation with the previous period loads (Config.lookback)."""
SOURCE = "bench"
QUESTIONS = {
    "overall": "Overall",
    "reliability": "Fixed first time",
    "assurance": "Knew the answer",
    "tangibles": "Clear updates",
    "empathy": "Understood me",
    "responsiveness": "Quick answer",
}
EXPECTATIONS = {"reliability": "Expect fixed first time", "responsiveness": "Expect quick answer"}


CALENDARS = {
    "desk": {
        "timezone": "Europe/Berlin",
        "hours": {"mon-thu": ["08:30-12:30", "13:30-17:30"], "fri": ["08:30-15:00"]},
        "holidays": {"country": "DE", "subdivision": "BY"},
    },
    "noc": {"timezone": "UTC", "hours": {"mon-sun": ["00:00-24:00"]}},
}
"""A 9-to-5 desk with lunch breaks and Bavaria's holidays, and a 24x7 operations centre."""


TRENDS = {
    "off": ({"previous_period": False}, {"enabled": False}),
    "default": ({}, {}),
    "all": ({"year_over_year": True}, {}),
}
"""bench_config's `trends`: the windows alone (as before issue 27); the defaults (the previous period and the
impact analysis); and the year-over-year period too."""


def bench_config(
    groups: int = 50, trends: str = "default", *, segments: int = 0, cap: int | None = None, calendars: bool = False
) -> Config:
    """Windows 7d and 30d, group_by [group] and `segments` segments (`segment_0`...), a label cap that keeps every
    one of `groups` groups (or `cap`); the trends and the impact analysis as TRENDS[trends] says; with `calendars`,
    the source on the desk's calendar and two of its groups on the 24x7 one."""
    periods, impact = TRENDS[trends]
    names = [f"segment_{n}" for n in range(segments)]
    on_calendars = {"calendar": "desk", "calendar_by_group": {"Group 00": "noc", "Group 01": "noc"}}
    return parse_config(
        {
            "windows": ["7d", "30d"],
            "trends": periods,
            "impact": impact,
            "group_by": ["group", *names],
            "max_label_values": cap or groups,
            **({"calendars": CALENDARS} if calendars else {}),
            "sources": [
                {
                    **(on_calendars if calendars else {}),
                    "name": SOURCE,
                    "kind": "demo",
                    "surveys": {
                        "overall": [QUESTIONS["overall"]],
                        "dimensions": {d: [q] for d, q in QUESTIONS.items() if d != "overall"},
                        "expectations": {d: [q] for d, q in EXPECTATIONS.items()},
                    },
                    "segments": {name: f"field_{n}" for n, name in enumerate(names)},
                }
            ],
        }
    )


def ticket_arrays(
    n: int, groups: int, seed: int, history_days: float = HISTORY_DAYS, complaint_share: float = 0.02
) -> dict[str, np.ndarray]:
    """Column arrays of `n` tickets opened over `history_days` before AS_OF."""
    rng = np.random.default_rng(seed)
    now = AS_OF.timestamp()
    opened = np.floor(now - rng.uniform(0, history_days * DAY, n))
    first_response = opened + np.floor(rng.lognormal(7.5, 1.2, n))
    resolution = np.floor(rng.lognormal(11.0, 1.3, n))
    resolved = opened + resolution
    state = np.where(resolved <= now, np.where(rng.random(n) < 0.5, "closed", "resolved"), "open")
    canceled = rng.random(n) < 0.02
    state = np.where(canceled, "canceled", state)
    state = np.where((state == "open") & (rng.random(n) < 0.2), "on_hold", state)
    done = (state == "closed") | (state == "resolved")
    resolved = np.where(done, resolved, np.nan)
    # A few closed tickets have no resolved time: the collectors fall back to closed_at.
    closed = np.where(state == "closed", resolved + 3 * DAY, np.where(canceled, opened + 600, np.nan))
    closed = np.where(closed > now, now, closed)
    no_resolved = (state == "closed") & (rng.random(n) < 0.05)
    resolved = np.where(no_resolved, np.nan, resolved)
    first_response = np.where(first_response <= now, first_response, np.nan)
    updated = np.fmax(np.fmax(opened, first_response), np.fmax(resolved, closed))
    priority = np.array(["p1", "p2", "p3", "p4", "p5"], dtype=object)[rng.choice(5, n, p=[0.02, 0.1, 0.5, 0.3, 0.08])]
    outcomes = np.array(["met", "breached"], dtype=object)
    sla_resolution = np.where(done, outcomes[(rng.random(n) < 0.12).astype(int)], "unknown")
    sla_response = np.where(np.isnan(first_response), "unknown", outcomes[(rng.random(n) < 0.2).astype(int)])
    return {
        # 32 hex digits in random order, like ServiceNow sys_ids: the store's key B-tree sees random inserts.
        "id": np.array([f"{a:016x}{b:016x}" for a, b in rng.integers(0, 2**63, (n, 2))], dtype=object),
        "opened_at": opened,
        "first_response_at": first_response,
        "resolved_at": resolved,
        "closed_at": closed,
        "updated_at": updated,
        "state": _shared(state),
        "group": np.array([f"Group {g:02d}" for g in range(groups)], dtype=object)[rng.integers(0, groups, n)],
        "service": np.array(["Email", "VPN", "ERP", "Laptops"], dtype=object)[rng.integers(0, 4, n)],
        "priority": priority,
        "channel": np.array(["portal", "email", "phone"], dtype=object)[rng.integers(0, 3, n)],
        "reassignments": rng.poisson(0.4, n).astype(np.int64),
        "reopens": (rng.random(n) < 0.06).astype(np.int64),
        "sla_response": _shared(sla_response),
        "sla_resolution": _shared(sla_resolution),
        "complaint": rng.random(n) < complaint_share,
    }


def clock_arrays(columns: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Running SLA clocks of the open tickets, as epoch seconds (NaN: no such clock): a response clock
    until the first response, a resolution clock (paused while on hold) until resolved."""
    rng = np.random.default_rng(seed + 2)
    n = len(columns["opened_at"])
    is_open = np.isin(columns["state"], ["open", "on_hold"])
    opened = columns["opened_at"]
    response = np.where(is_open & np.isnan(columns["first_response_at"]), opened + 4 * 3600.0, np.nan)
    resolution = np.where(is_open, opened + np.floor(rng.uniform(4 * 3600, 10 * DAY, n)), np.nan)
    return {"response": response, "resolution": resolution, "paused": columns["state"] == "on_hold"}


def _clock_frame(ids: np.ndarray, clocks: dict[str, np.ndarray]) -> pd.DataFrame:
    parts = []
    for sla in ("response", "resolution"):
        rows = np.flatnonzero(~np.isnan(clocks[sla]))
        parts.append(
            pd.DataFrame(
                {
                    "source": SOURCE,
                    "ticket_id": np.array([i.encode().decode() for i in ids[rows]], dtype=object),
                    "sla": sla,
                    "breach_at": clocks[sla][rows],
                    "paused": clocks["paused"][rows] & (sla == "resolution"),
                    "goal_seconds": np.nan,
                    "breached": False,
                }
            )
        )
    return pd.concat(parts, ignore_index=True).astype(SLA_CLOCK_DTYPES)


def _shared(values: np.ndarray) -> np.ndarray:
    """Object array referencing one str per distinct value, as the store loads label columns."""
    uniques, codes = np.unique(values, return_inverse=True)
    return np.array([str(u) for u in uniques], dtype=object)[codes]


def frames(
    tickets: int, surveys: int, groups: int = 50, seed: int = 7, segments: int = 0, segment_values: int = 200
) -> Frames:
    """Frames with `tickets` tickets and `surveys` responses (each about a resolved ticket), every ticket with a value
    of each of `segments` segments (`segment_values` values each)."""
    rng = np.random.default_rng(seed + 1)
    columns = ticket_arrays(tickets, groups, seed)
    columns["key"] = np.array([f"INC{i:08d}" for i in range(tickets)], dtype=object)
    ticket_frame = pd.DataFrame(
        {c: (SOURCE if c == "source" else columns[c]) for c in TICKET_COLUMNS}, columns=list(TICKET_COLUMNS)
    ).astype(TICKET_DTYPES)
    resolved_rows = np.flatnonzero(~np.isnan(columns["resolved_at"]))
    about = rng.choice(resolved_rows, size=surveys, replace=False)
    submitted = np.fmin(columns["resolved_at"][about] + rng.uniform(3600, 3 * DAY, surveys), AS_OF.timestamp())
    survey_ids = np.array([f"s{i:08d}" for i in range(surveys)], dtype=object)
    survey_frame = pd.DataFrame(
        {
            "source": SOURCE,
            "id": survey_ids,
            "ticket_source": SOURCE,
            # Copies: the store loads a survey's ticket id as its own string, not the ticket's.
            "ticket_id": np.array([ticket_id.encode().decode() for ticket_id in columns["id"][about]], dtype=object),
            "ticket_key": None,
            "submitted_at": np.floor(submitted),
            # A third of the respondents write a comment (its own generator: the other columns stay as they were).
            "commented": np.random.default_rng(seed + 3).random(surveys) < 1 / 3,
        }
    ).astype(SURVEY_DTYPES)
    # Every response answers the perception items; one in three also the expectation items.
    parts = []
    for question in QUESTIONS.values():
        parts.append((survey_ids, question, rng.integers(1, 6, surveys).astype(np.float64)))
    expecting = np.flatnonzero(rng.random(surveys) < 1 / 3)
    with_expectations = survey_ids[expecting]
    for question in EXPECTATIONS.values():
        parts.append((with_expectations, question, rng.integers(3, 6, len(with_expectations)).astype(np.float64)))
    # Each answer's survey row, as the store gives it (Frames.parent_rows).
    answer_rows = np.concatenate([np.arange(surveys)] * len(QUESTIONS) + [expecting] * len(EXPECTATIONS)).astype(
        np.int64
    )
    answer_frame = pd.DataFrame(
        {
            "source": SOURCE,
            "survey_id": np.concatenate([ids for ids, _, _ in parts]),
            "question_id": np.concatenate([_repeated(q, len(ids)) for ids, q, _ in parts]),
            "value": np.concatenate([values for _, _, values in parts]),
            "scale_min": 1.0,
            "scale_max": 5.0,
        }
    ).astype(ANSWER_DTYPES)
    # In the store's order (its primary key): the answers of one survey together.
    order = answer_frame.sort_values(["survey_id", "question_id"], kind="stable").index.to_numpy()
    answer_frame = answer_frame.iloc[order].reset_index(drop=True)
    answer_rows = answer_rows[order]
    # The questions table: each question's id is its text here (as a CSV export's column headers).
    question_ids = [*QUESTIONS.values(), *EXPECTATIONS.values()]
    question_frame = pd.DataFrame(
        {"source": SOURCE, "question_id": question_ids, "name": None, "text": question_ids}
    ).astype(QUESTION_DTYPES)
    return Frames(
        tickets=ticket_frame,
        surveys=survey_frame,
        answers=answer_frame,
        questions=question_frame,
        sla_clocks=_clock_frame(columns["id"], clock_arrays(columns, seed)),
        ticket_segments=segment_frame(columns["id"], segments, segment_values, seed),
        # Each segment row's ticket row, as the store gives it from the rowids of its load (store.load_frames).
        parent_rows={"ticket_segments": np.repeat(np.argsort(columns["id"]), segments), "answers": answer_rows},
    )


def segment_frame(ids: np.ndarray, segments: int, values: int, seed: int) -> pd.DataFrame:
    """Every ticket's value of each segment, as the store loads ticket_segments: in key order (ticket, name), one
    string per ticket id (not the tickets frame's own: the store reads the child table on its own) and per value."""
    rng = np.random.default_rng(seed + 4)
    order = np.argsort(ids)
    own_ids = np.array([i.encode().decode() for i in ids[order]], dtype=object)
    names = np.array([f"segment_{n}" for n in range(segments)], dtype=object)
    vocabulary = np.array([f"Value {v:03d}" for v in range(values)], dtype=object)
    return pd.DataFrame(
        {
            "source": _repeated(SOURCE, len(ids) * segments),
            "ticket_id": np.repeat(own_ids, segments),
            "name": np.tile(names, len(ids)),
            "value": vocabulary[rng.integers(0, values, len(ids) * segments)],
        }
    ).astype(SEGMENT_DTYPES)


def _repeated(value: str, n: int) -> np.ndarray:
    """`n` references to one string, as the store loads a low-cardinality column (np.full copies it n times)."""
    array = np.empty(n, dtype=object)
    array.fill(value)
    return array


def ticket_records(
    n: int,
    groups: int = 50,
    seed: int = 7,
    chunk: int = 10_000,
    history_days: float = HISTORY_DAYS,
    complaint_share: float = 0.02,
    segments: int = 0,
    segment_values: int = 200,
) -> Iterator[list[Ticket]]:
    """The same tickets as canonical records, in chunks (a million records at once would dominate memory); each
    with a value of each of `segments` segments (`segment_values` values each, drawn as segment_frame draws)."""
    columns = ticket_arrays(n, groups, seed, history_days, complaint_share)
    clocks = clock_arrays(columns, seed)
    drawn = np.random.default_rng(seed + 4).integers(0, segment_values, (n, segments))
    names = [f"segment_{s}" for s in range(segments)]
    vocabulary = [f"Value {v:03d}" for v in range(segment_values)]
    for start in range(0, n, chunk):
        rows = range(start, min(n, start + chunk))
        yield [
            Ticket(
                source=SOURCE,
                id=str(columns["id"][i]),
                key=f"INC{i:08d}",
                opened_at=_moment(columns["opened_at"][i]),  # type: ignore[arg-type]
                state=columns["state"][i],
                updated_at=_moment(columns["updated_at"][i]),  # type: ignore[arg-type]
                first_response_at=_moment(columns["first_response_at"][i]),
                resolved_at=_moment(columns["resolved_at"][i]),
                closed_at=_moment(columns["closed_at"][i]),
                priority=columns["priority"][i],
                group=columns["group"][i],
                service=columns["service"][i],
                channel=columns["channel"][i],
                reassignments=int(columns["reassignments"][i]),
                reopens=int(columns["reopens"][i]),
                sla_response=columns["sla_response"][i],
                sla_resolution=columns["sla_resolution"][i],
                complaint=bool(columns["complaint"][i]),
                sla_clocks=_clocks(clocks, i),
                segments=tuple(Segment(name, vocabulary[v]) for name, v in zip(names, drawn[i], strict=True)),
            )
            for i in rows
        ]


def _clocks(clocks: dict[str, np.ndarray], i: int) -> tuple[SlaClock, ...]:
    return tuple(
        SlaClock(sla, _moment(clocks[sla][i]), paused=bool(clocks["paused"][i]) and sla == "resolution")
        for sla in ("response", "resolution")
        if not np.isnan(clocks[sla][i])
    )


def _moment(seconds: float) -> datetime | None:
    return None if np.isnan(seconds) else datetime.fromtimestamp(float(seconds), UTC)
