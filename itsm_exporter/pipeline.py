"""What `once` and the daemon share: one sync of a source with its after-sync check, and one computation.

`sync_one` runs a source's SourceRunner and, after a success, holds the survey mapping against the
questions the store now holds (a WARNING per configured question that names nothing upstream, and
per answered question that no configured one names). `compute` loads what a computation at `as_of`
can see and turns it into the domain metric families: the daemon's snapshot and `once`'s output
come from this one function.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime

from prometheus_client.core import Metric

from itsm_exporter.collectors import compute_metrics
from itsm_exporter.config import Config
from itsm_exporter.kinds import capabilities
from itsm_exporter.source_config import SourceBase
from itsm_exporter.store import Store
from itsm_exporter.survey_mapping import check_mapping
from itsm_exporter.sync.runner import SourceRunner

log = logging.getLogger(__name__)


def sync_one(
    runner: SourceRunner,
    source: SourceBase,
    config: Config,
    store: Store,
    now: Callable[[], datetime],
    *,
    should_stop: Callable[[], bool] = lambda: False,
) -> bool:
    """One sync of `source`; after a success, the survey-mapping check at `now()`. True when it succeeded."""
    if not runner.run(source, config, should_stop=should_stop):
        return False
    warn_survey_mapping(store, source, config, now())
    return True


def compute(store: Store, config: Config, sources: Sequence[str], as_of: datetime) -> list[Metric]:
    """The domain families of `sources` at `as_of`, from what the store holds for the windows ending then and
    the earlier periods they are compared with.

    Only what a computation over those periods can see is loaded (`Config.lookback`), so memory follows the
    windows, not the history; the config is narrowed to `sources` (the daemon leaves stale ones out).
    """
    frames = store.load_frames(list(sources), since=as_of - config.lookback)
    serving = config.model_copy(update={"sources": [s for s in config.sources if s.name in sources]})
    return list(compute_metrics(frames, as_of, serving))


def warn_survey_mapping(store: Store, source: SourceBase, config: Config, now: datetime) -> None:
    """A WARNING for each configured question that names nothing upstream, and for each answered question
    that no configured one names: a misnamed question must not pass as a quiet survey."""
    longest = config.longest_window
    index = next(i for i, s in enumerate(config.sources) if s.name == source.name)
    questions = store.question_use(source.name, submitted_since=now - longest.delta)
    check = check_mapping(
        questions,
        source.surveys,
        implicit_overall=capabilities(source).implicit_overall,
        path=f"sources[{index}].surveys",
    )
    for unmatched in check.unmatched:
        closest = unmatched.closest
        log.warning(
            "configured survey question matches no question upstream",
            extra={
                "source": source.name,
                "config_path": unmatched.path,
                "question": unmatched.configured,
                "closest": (closest.text or closest.name or closest.question_id) if closest else "none stored yet",
                **({"closest_name": closest.name} if closest and closest.name else {}),
            },
        )
    for question in check.unmapped:
        log.warning(
            "answered survey question is unmapped",
            extra={
                "source": source.name,
                "question_id": question.question_id,
                "question_name": question.name or "",
                "question": question.text or question.name or question.question_id,
                "answers": question.answers,
                "window": str(longest),
            },
        )
