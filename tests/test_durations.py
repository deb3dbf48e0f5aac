"""The elapsed-time seam: every published duration is measured on the clock given to compute_metrics.

The clocks here are real Clock implementations, not mocks: one that counts only the even UTC hours
(a calendar computed as F(end) - F(start) on a closed form of its working seconds, as a business-hours
calendar will be), and one that scales each ticket's durations by a factor of its row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.collectors.arrays import FloatArray, IntArray
from itsm_exporter.collectors.durations import WALL_CLOCK, Clock, Durations
from itsm_exporter.collectors.facts import ticket_facts
from itsm_exporter.config import parse_config
from itsm_exporter.frames import Frames
from itsm_exporter.records import SlaClock, Ticket

AS_OF = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)  # an even hour
HOUR = timedelta(hours=1)
MINUTES = timedelta(minutes=1)


@dataclass(frozen=True)
class EvenHoursClock:
    """Counts the seconds of the even UTC hours only (00:00-01:00, 02:00-03:00, ...)."""

    def elapsed(self, start: FloatArray, end: FloatArray, rows: IntArray) -> FloatArray:
        return self._working(end) - self._working(start)

    @staticmethod
    def _working(t: FloatArray) -> FloatArray:
        """Working seconds from the epoch (an even hour) to t."""
        periods, into = np.divmod(t, 7200.0)
        working: FloatArray = periods * 3600.0 + np.minimum(into, 3600.0)
        return working


@dataclass(frozen=True)
class RowScaledClock:
    """Wall-clock seconds times a factor per ticket row: a calendar chosen per ticket."""

    factors: FloatArray

    def elapsed(self, start: FloatArray, end: FloatArray, rows: IntArray) -> FloatArray:
        scaled: FloatArray = (end - start) * self.factors[rows]
        return scaled


def ticket(ticket_id: str, opened: datetime, state: str = "open", **fields: object) -> Ticket:
    return Ticket("sn", ticket_id, f"SN-{ticket_id}", opened, state, opened, group="desk", **fields)  # type: ignore[arg-type]


def at(hour: int, minute: int = 0) -> datetime:
    return AS_OF.replace(hour=hour, minute=minute)


TICKETS = [
    # Opened 07:00 (odd hour), answered 08:30, resolved 11:00: 30 min and 2 h of even hours.
    ticket("fixed", at(7), "resolved", first_response_at=at(8, 30), resolved_at=at(11)),
    # A complaint opened 06:30, resolved 09:15: 06:30-07:00 and 08:00-09:00.
    ticket("complaint", at(6, 30), "resolved", resolved_at=at(9, 15), complaint=True),
    # Backlog since 09:00, never answered: 10:00-11:00 of age; its response SLA breaches at 14:30.
    ticket("waiting", at(9), sla_clocks=(SlaClock("response", at(14, 30)),)),
    # Backlog since 10:30, answered 11:00: 30 min of age and of first response; resolution due 16:00.
    ticket("answered", at(10, 30), first_response_at=at(11), sla_clocks=(SlaClock("resolution", at(16)),)),
]


def metrics_on(clock: Clock) -> list[Metric]:
    config = parse_config(
        {"sources": [{"name": "sn", "kind": "demo"}], "windows": ["7d"], "buckets": [1800, 3600]}, check_files=False
    )
    return compute_metrics(Frames.from_records(TICKETS, []), AS_OF, config, clock=clock)


def value(metrics: list[Metric], name: str, **labels: str) -> float:
    wanted = {"source": "sn", "group": "desk", **labels}
    found = [s.value for f in metrics for s in f.samples if s.name == name and s.labels == wanted]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


# (family, extra labels) -> (sum on the wall clock, sum on the even-hours clock, observations)
SUMS = {
    ("itsm_first_response_time_seconds", (("window", "7d"),)): (5400 + 1800, 1800 + 1800, 2),
    ("itsm_resolution_time_seconds", (("window", "7d"),)): (14400 + 9900, 7200 + 5400, 2),
    ("itsm_complaint_resolution_time_seconds", (("window", "7d"),)): (9900, 5400, 1),
    ("itsm_backlog_age_seconds", ()): (10800 + 5400, 3600 + 1800, 2),
    ("itsm_awaiting_first_response_age_seconds", ()): (10800, 3600, 1),
    ("itsm_sla_time_to_breach_seconds", (("sla", "response"),)): (9000, 5400, 1),
    ("itsm_sla_time_to_breach_seconds", (("sla", "resolution"),)): (14400, 7200, 1),
}


@pytest.mark.parametrize(("family", "labels"), list(SUMS))
def test_every_published_duration_is_measured_on_the_given_clock(
    family: str, labels: tuple[tuple[str, str], ...]
) -> None:
    wall, even_hours, count = SUMS[(family, labels)]
    for clock, expected in ((WALL_CLOCK, wall), (EvenHoursClock(), even_hours)):
        metrics = metrics_on(clock)
        assert value(metrics, f"{family}_gsum", **dict(labels)) == expected, clock
        assert value(metrics, f"{family}_gcount", **dict(labels)) == count, clock


def test_buckets_hold_the_clock_s_durations() -> None:
    """On the wall clock one first response took 90 min; on even hours both took 30 min."""
    wall, even = metrics_on(WALL_CLOCK), metrics_on(EvenHoursClock())
    name = "itsm_first_response_time_seconds_bucket"
    assert value(wall, name, window="7d", le="1800.0") == 1
    assert value(even, name, window="7d", le="1800.0") == 2


def test_the_clock_is_told_the_ticket_of_each_duration() -> None:
    """Rows are rows of the ticket facts (here the frame's order), for SLA clocks too: the one clock of
    the second ticket is measured with that ticket's factor, not with the first row's."""
    tickets = [
        ticket("first", AS_OF - HOUR),
        ticket("second", AS_OF - 2 * HOUR, sla_clocks=(SlaClock("response", AS_OF + 2 * HOUR),)),
    ]
    config = parse_config({"sources": [{"name": "sn", "kind": "demo"}], "windows": ["7d"]}, check_files=False)
    clock = RowScaledClock(np.array([1.0, 3.0]))
    metrics = compute_metrics(Frames.from_records(tickets, []), AS_OF, config, clock=clock)
    assert value(metrics, "itsm_awaiting_first_response_age_seconds_gsum") == 1 * 3600 + 3 * 7200
    assert value(metrics, "itsm_sla_time_to_breach_seconds_gsum", sla="response") == 3 * 7200


@dataclass(frozen=True)
class NegativeClock:
    """Says every duration is an hour shorter than on the wall, and refuses an unknown instant."""

    def elapsed(self, start: FloatArray, end: FloatArray, rows: IntArray) -> FloatArray:
        assert np.isfinite(start).all() and np.isfinite(end).all()
        shorter: FloatArray = end - start - 3600.0
        return shorter


def test_unknown_instants_never_reach_the_clock_and_negative_durations_count_as_zero() -> None:
    tickets = [
        ticket("quick", AS_OF - 3 * HOUR, first_response_at=AS_OF - 3 * HOUR + 10 * MINUTES),
        ticket("slow", AS_OF - 3 * HOUR, first_response_at=AS_OF - HOUR),
        ticket("unanswered", AS_OF - 3 * HOUR),
    ]
    facts = ticket_facts(Frames.from_records(tickets, []).tickets, ("sn",), AS_OF.timestamp())
    durations = Durations(facts, NegativeClock(), AS_OF.timestamp())
    measured = durations.first_response(np.ones(3, dtype=bool))
    assert measured.rows.tolist() == [0, 1]
    assert measured.seconds.tolist() == [0.0, 3600.0]
