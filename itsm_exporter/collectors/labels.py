"""The grouping step: grouping labels, missing values, the per-source cardinality cap, label sets as group ids."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from itsm_exporter.collectors.arrays import FEW, BoolArray, IntArray
from itsm_exporter.collectors.facts import TicketFacts
from itsm_exporter.collectors.surveys import Responses
from itsm_exporter.records import OTHER, UNASSIGNED, UNKNOWN_TICKET


def grouping(
    facts: TicketFacts,
    responses: Responses,
    names: tuple[str, ...],
    group_by: Sequence[str],
    volume: BoolArray,
    cap: int,
) -> Grouping:
    """The label sets every metric is counted by: the source, then each `group_by` label of the tickets, capped
    per source to the `cap` values with most `volume` tickets; a response takes its ticket's label set."""
    labels = [capped_label(name, facts.frame[name], facts.source, len(names), volume, cap) for name in group_by]
    return build_grouping(names, labels, facts.source, responses.source, responses.ticket_rows)


@dataclass(frozen=True)
class CappedLabel:
    """One grouping label after the cap: each ticket's code into `vocabulary`."""

    name: str
    vocabulary: tuple[str, ...]
    codes: IntArray

    @property
    def unknown(self) -> int:
        """Code of the value given to surveys whose ticket is not in the store."""
        return self.vocabulary.index(UNKNOWN_TICKET)


def capped_label(
    label_name: str, values: pd.Series, sources: IntArray, n_sources: int, volume: BoolArray, max_values: int
) -> CappedLabel:
    """Keep per source the `max_values` values with most `volume` tickets (ties by name); the rest is `other`."""
    raw_codes, uniques = pd.factorize(values.to_numpy(dtype=object), size_hint=FEW)
    names = [str(value) for value in uniques]
    if UNASSIGNED not in names:
        names.append(UNASSIGNED)
    # In place, here and below: each temporary is one int64 per ticket (8 MB a million).
    codes = raw_codes.astype(np.int64, copy=False)
    codes[codes < 0] = names.index(UNASSIGNED)
    n_values = len(names)
    pairs = sources * n_values
    pairs += codes
    del raw_codes, codes
    present = np.bincount(pairs, minlength=n_sources * n_values).reshape(n_sources, n_values) > 0
    volumes = np.bincount(pairs[volume], minlength=n_sources * n_values).reshape(n_sources, n_values)
    name_rank = np.argsort(np.argsort(np.array(names, dtype=object)))
    kept = present.copy()
    for source in range(n_sources):
        candidates = np.flatnonzero(present[source])
        if len(candidates) > max_values:
            order = np.lexsort((name_rank[candidates], -volumes[source, candidates]))
            kept[source, candidates[order[max_values:]]] = False
    vocabulary = sorted({*(names[i] for i in np.flatnonzero(kept.any(axis=0))), OTHER, UNKNOWN_TICKET})
    position = {name: index for index, name in enumerate(vocabulary)}
    to_final = np.array([position.get(name, position[OTHER]) for name in names], dtype=np.int64)
    pair_to_final = np.where(kept, to_final[np.newaxis, :], position[OTHER]).ravel()
    return CappedLabel(name=label_name, vocabulary=tuple(vocabulary), codes=pair_to_final[pairs])


@dataclass(frozen=True)
class Grouping:
    """Label sets present in tickets or surveys, numbered in the order of their label values."""

    label_names: tuple[str, ...]
    """`source`, then the grouping labels in configured order."""
    label_values: tuple[tuple[str, ...], ...]
    sources: IntArray
    """Source index of each label set."""
    ticket_groups: IntArray
    survey_groups: IntArray

    @property
    def size(self) -> int:
        return len(self.label_values)


def build_grouping(
    source_names: tuple[str, ...],
    labels: list[CappedLabel],
    ticket_sources: IntArray,
    survey_sources: IntArray,
    survey_ticket_rows: IntArray,
) -> Grouping:
    """Number every (source, label values) combination; a survey takes its ticket's labels or `unknown`."""
    matched = survey_ticket_rows >= 0
    safe_rows = np.where(matched, survey_ticket_rows, 0)
    # Tickets then surveys in one array, keys built in place (radix encoding of source and label codes).
    all_keys = np.concatenate([ticket_sources, survey_sources]).astype(np.int64, copy=False)
    ticket_keys, survey_keys = all_keys[: len(ticket_sources)], all_keys[len(ticket_sources) :]
    for label in labels:
        radix = len(label.vocabulary)
        survey_codes = label.codes[safe_rows] if len(label.codes) else np.zeros(len(safe_rows), dtype=np.int64)
        all_keys *= radix
        ticket_keys += label.codes
        survey_keys += np.where(matched, survey_codes, label.unknown)
    inverse, distinct = pd.factorize(all_keys, size_hint=FEW)
    del all_keys, ticket_keys, survey_keys
    decoded = [_decode(int(key), source_names, labels) for key in distinct]
    order = sorted(range(len(decoded)), key=decoded.__getitem__)
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    groups = renumber[inverse]
    label_values = tuple(decoded[i] for i in order)
    return Grouping(
        label_names=("source", *(label.name for label in labels)),
        label_values=label_values,
        sources=np.array([source_names.index(values[0]) for values in label_values], dtype=np.int64),
        ticket_groups=groups[: len(ticket_sources)],
        survey_groups=groups[len(ticket_sources) :],
    )


def _decode(key: int, source_names: tuple[str, ...], labels: list[CappedLabel]) -> tuple[str, ...]:
    values: list[str] = []
    for label in reversed(labels):
        key, code = divmod(key, len(label.vocabulary))
        values.append(label.vocabulary[code])
    return (source_names[key], *reversed(values))
