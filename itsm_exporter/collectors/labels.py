"""The grouping step: grouping labels, missing values, the per-source cardinality cap, label sets as group ids.

Label sets come in views. The team view crosses the built-in labels of `group_by` (group, service, priority,
channel), as it always has. Each segment of `group_by` (a customer-side label such as `department`,
`segments:` in a source's config) is a view of its own: the source, `segment="<its name>"` and its value,
crossed with no other label. So a department is judged on all of its tickets, however they spread over
teams (a watermelon that no team view shows), the series grow by at most `max_label_values + 2` label sets
per segment and source instead of multiplying, and `segment=""` selects the team view alone (the recording
rules and the team panels sum over it without counting a ticket once per view).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from itsm_exporter.collectors.arrays import FEW, BoolArray, IntArray, KeyIndex, ObjectArray, positions_in
from itsm_exporter.collectors.facts import TicketFacts
from itsm_exporter.collectors.surveys import Responses
from itsm_exporter.records import OTHER, UNASSIGNED, UNKNOWN_TICKET

SEGMENT_LABEL = "segment"
"""The label that names the view of a segment's label sets; the team view's series do not have it."""


def grouping(
    facts: TicketFacts,
    responses: Responses,
    names: tuple[str, ...],
    group_by: Sequence[str],
    volume: BoolArray,
    cap: int,
    segments: Mapping[str, Coded] | None = None,
    segment_sources: Mapping[str, BoolArray] | None = None,
) -> Grouping:
    """The label sets every metric is counted by: the team view (the source, then each built-in `group_by` label
    of the tickets) and a view per segment of `group_by` (`segments`: its value per ticket, None where the ticket
    has none), each label capped per source to the `cap` values with most `volume` tickets. A response takes its
    ticket's label set in each view, or its own segment value where it carries one (Responses.segments). A
    segment's view shows the sources that define it (`segment_sources`, by source index; all when not given)."""
    segments = segments or {}
    team = [
        capped_label(name, facts.frame[name], facts.source, len(names), volume, cap)
        for name in group_by
        if name not in segments
    ]
    views = [build_grouping(names, team, facts.source, responses.source, responses.ticket_rows)]
    for name in (name for name in group_by if name in segments):
        own = responses.segments.get(name)
        label = capped_label(name, segments[name], facts.source, len(names), volume, cap, responses.source, own)
        view = build_grouping(names, [label], facts.source, responses.source, responses.ticket_rows, segment=name)
        if segment_sources is not None and name in segment_sources:
            view = replace(view, visible=segment_sources[name][view.sources])
        views.append(view)
    return views[0] if len(views) == 1 else combined(views)


@dataclass(frozen=True)
class Coded:
    """A label's value per row as codes into `uniques` (-1: none): what a factorization gives, for free where the
    frame's column is categorical (a segment's name and value: tables.Column.categorical)."""

    codes: IntArray
    uniques: ObjectArray

    def values(self) -> ObjectArray:
        """The values themselves, None where a row has none."""
        with_none = np.empty(len(self.uniques) + 1, dtype=object)  # code -1 takes the trailing None
        with_none[:-1] = self.uniques
        values: ObjectArray = with_none[self.codes]
        return values


def segment_values(
    frame: pd.DataFrame,
    sources: IntArray,
    ids: ObjectArray,
    names: tuple[str, ...],
    wanted: Sequence[str],
    parent_rows: IntArray | None = None,
) -> dict[str, Coded]:
    """Per parent row (tickets or responses, by `sources` and `ids`), the value of each `wanted` segment from its
    child table's frame (`source`, parent id, `name`, `value`), coded; -1 where the record has none.

    `parent_rows` (Frames.parent_rows, mapped onto these rows) gives each child row its parent row: no join.
    Without it the join is by key: the store lists a record's segments together (the table's key starts with the
    parent's), so each run of rows of one parent is looked up once. Any order is right, only slower.
    """
    name_codes, named = _codes(frame["name"])
    value_codes, uniques = _codes(frame["value"])
    values = {name: Coded(np.full(len(ids), -1, dtype=np.int64), uniques) for name in wanted}
    if not wanted or frame.empty:
        return values
    rows = parent_rows if parent_rows is not None else _rows_by_key(frame, sources, ids, names)
    # One scatter for every wanted segment: each child row's slot (its name's place in `wanted`, -1: not wanted).
    slot_of_name = np.full(len(named) + 1, -1, dtype=np.int64)  # the extra last slot answers name code -1
    known = list(named)
    for slot, name in enumerate(wanted):
        if name in known:
            slot_of_name[known.index(name)] = slot
    slots = slot_of_name[name_codes]
    kept = (slots >= 0) & (rows >= 0)
    table = np.full((len(wanted), len(ids)), -1, dtype=np.int64)
    cells = slots * len(ids) + rows  # flat indexes into the table: a 1-D scatter is the fast one
    if kept.all():  # every row named and placed: no selection to copy
        table.ravel()[cells] = value_codes
    else:
        table.ravel()[cells[kept]] = value_codes[kept]
    return {name: Coded(table[slot], uniques) for slot, name in enumerate(wanted)}


def _codes(column: pd.Series) -> tuple[IntArray, ObjectArray]:
    """A column's codes and values: a categorical's own, or a factorization."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()  # int8 or int16: used as indexes, no need to widen
        return codes, column.cat.categories.to_numpy(dtype=object)
    factorized, uniques = pd.factorize(column.to_numpy(dtype=object), size_hint=FEW)
    return factorized.astype(np.int64), np.asarray(uniques, dtype=object)


def _rows_by_key(frame: pd.DataFrame, sources: IntArray, ids: ObjectArray, names: tuple[str, ...]) -> IntArray:
    """The parent row of each child row, joined by (source, parent id) one run of a parent's rows at a time."""
    parent = frame.columns[1]  # the parent's id (Parent.key: source, then the id)
    child_ids = frame[parent].to_numpy(dtype=object)
    child_sources = frame["source"].to_numpy(dtype=object)
    starts = np.ones(len(child_ids), dtype=bool)
    starts[1:] = (child_ids[1:] != child_ids[:-1]) | (child_sources[1:] != child_sources[:-1])
    heads = np.flatnonzero(starts)
    head_rows = KeyIndex(sources, ids).find(positions_in(frame["source"].iloc[heads], names), child_ids[heads])
    rows: IntArray = head_rows[np.cumsum(starts) - 1]
    return rows


@dataclass(frozen=True)
class CappedLabel:
    """One grouping label after the cap: each ticket's code into `vocabulary` (and each response's own, -1: none)."""

    name: str
    vocabulary: tuple[str, ...]
    codes: IntArray
    own_codes: IntArray | None = None
    """Codes of the values responses carry themselves (a CSV export's segment column), -1 where none."""

    @property
    def unknown(self) -> int:
        """Code of the value given to surveys whose ticket is not in the store."""
        return self.vocabulary.index(UNKNOWN_TICKET)


def capped_label(
    label_name: str,
    values: pd.Series | Coded,
    sources: IntArray,
    n_sources: int,
    volume: BoolArray,
    max_values: int,
    own_sources: IntArray | None = None,
    own_values: ObjectArray | None = None,
) -> CappedLabel:
    """Keep per source the `max_values` values with most `volume` tickets (ties by name); the rest is `other`.

    `values` per ticket, or already coded (a segment's). Values that responses carry themselves (`own_values`,
    None where a response has none) are capped with the tickets' and rank after every value that has volume."""
    has_own = own_values is not None and own_sources is not None
    if isinstance(values, Coded) and not has_own:
        n_tickets = len(values.codes)
        raw_codes, uniques = values.codes.copy(), values.uniques  # a copy: the codes are set in place below
    else:
        ticket_values = values.values() if isinstance(values, Coded) else values.to_numpy(dtype=object)
        n_tickets = len(ticket_values)
        if has_own:
            assert own_values is not None and own_sources is not None
            ticket_values = np.concatenate([ticket_values, own_values])
            sources = np.concatenate([sources, own_sources])
            volume = np.concatenate([volume, np.zeros(len(own_values), dtype=bool)])
        raw_codes, uniques = pd.factorize(ticket_values, size_hint=FEW)
    names = [str(value) for value in uniques]
    if UNASSIGNED not in names:
        names.append(UNASSIGNED)
    missing = raw_codes < 0
    # In place, here and below: each temporary is one int64 per ticket (8 MB a million).
    codes = raw_codes.astype(np.int64, copy=False)
    codes[missing] = names.index(UNASSIGNED)
    n_values = len(names)
    pairs = sources * n_values
    pairs += codes
    del raw_codes, codes
    # A response without its own value leaves the presence and the ranking to its ticket.
    counted = np.ones(len(pairs), dtype=bool)
    counted[n_tickets:] = ~missing[n_tickets:]
    present = np.bincount(pairs[counted], minlength=n_sources * n_values).reshape(n_sources, n_values) > 0
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
    final = pair_to_final[pairs]
    own_codes = None
    if has_own:
        own_codes = np.where(missing[n_tickets:], -1, final[n_tickets:])
    return CappedLabel(name=label_name, vocabulary=tuple(vocabulary), codes=final[:n_tickets], own_codes=own_codes)


@dataclass(frozen=True)
class Grouping:
    """Label sets present in tickets or surveys, numbered view by view in the order of their label values."""

    label_names: tuple[str, ...]
    """The team view's label names: `source`, then the built-in grouping labels in configured order."""
    label_values: tuple[tuple[str, ...], ...]
    sources: IntArray
    """Source index of each label set."""
    ticket_groups: IntArray
    """The label set of each ticket: one per ticket, or (tickets, views) with a segment view (see the module)."""
    survey_groups: IntArray
    set_names: tuple[tuple[str, ...], ...] = ()
    """The label names of each label set when views differ in them; empty: every set has `label_names`."""
    visible: BoolArray | None = None
    """Label sets that have series: a segment's view leaves out the sources that do not define it (their
    tickets are counted there, all `unassigned`, and never shown). None: every set."""

    @property
    def size(self) -> int:
        return len(self.label_values)


def build_grouping(
    source_names: tuple[str, ...],
    labels: list[CappedLabel],
    ticket_sources: IntArray,
    survey_sources: IntArray,
    survey_ticket_rows: IntArray,
    *,
    segment: str | None = None,
) -> Grouping:
    """Number every (source, label values) combination; a survey takes its ticket's labels or `unknown`, or its own
    value of a label where it has one. A segment view's label sets also carry `segment="<its name>"`."""
    matched = survey_ticket_rows >= 0
    safe_rows = np.where(matched, survey_ticket_rows, 0)
    # Tickets then surveys in one array, keys built in place (radix encoding of source and label codes).
    all_keys = np.concatenate([ticket_sources, survey_sources]).astype(np.int64, copy=False)
    ticket_keys, survey_keys = all_keys[: len(ticket_sources)], all_keys[len(ticket_sources) :]
    for label in labels:
        radix = len(label.vocabulary)
        survey_codes = label.codes[safe_rows] if len(label.codes) else np.zeros(len(safe_rows), dtype=np.int64)
        survey_codes = np.where(matched, survey_codes, label.unknown)
        if label.own_codes is not None:
            survey_codes = np.where(label.own_codes >= 0, label.own_codes, survey_codes)
        all_keys *= radix
        ticket_keys += label.codes
        survey_keys += survey_codes
    space = len(source_names) * math.prod(len(label.vocabulary) for label in labels)
    if space <= max(len(all_keys), 1 << 16):
        # Few possible keys (a label or two): the distinct ones from a bincount, numbered by a lookup table,
        # instead of hashing every ticket's key.
        distinct = np.flatnonzero(np.bincount(all_keys, minlength=space))
        inverse = None
    else:
        inverse, distinct = pd.factorize(all_keys, size_hint=FEW)
    decoded = [_decode(int(key), source_names, labels) for key in distinct]
    order = sorted(range(len(decoded)), key=decoded.__getitem__)
    renumber = np.empty(len(order), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    if inverse is None:
        number_of_key = np.empty(space, dtype=np.int64)
        number_of_key[distinct] = renumber
        groups = number_of_key[all_keys]
    else:
        groups = renumber[inverse]
    del all_keys, ticket_keys, survey_keys
    label_values = tuple(decoded[i] for i in order)
    names = ("source", *(label.name for label in labels))
    if segment is not None:
        names = ("source", SEGMENT_LABEL, segment)
        label_values = tuple((values[0], segment, *values[1:]) for values in label_values)
    return Grouping(
        label_names=names,
        label_values=label_values,
        sources=np.array([source_names.index(values[0]) for values in label_values], dtype=np.int64),
        ticket_groups=groups[: len(ticket_sources)],
        survey_groups=groups[len(ticket_sources) :],
    )


def combined(views: Sequence[Grouping]) -> Grouping:
    """The views as one numbering: each view's sets after the previous ones', a column of group ids per view."""
    offsets = np.cumsum([0, *(view.size for view in views)])[:-1]
    return Grouping(
        label_names=views[0].label_names,
        label_values=tuple(values for view in views for values in view.label_values),
        sources=np.concatenate([view.sources for view in views]),
        # int32: every count gathers these rows (a column per view), and half the bytes is a third less time.
        ticket_groups=np.stack(
            [(view.ticket_groups + offset).astype(np.int32) for view, offset in zip(views, offsets, strict=True)], 1
        ),
        survey_groups=np.stack([view.survey_groups + offset for view, offset in zip(views, offsets, strict=True)], 1),
        set_names=tuple(view.label_names for view in views for _ in range(view.size)),
        visible=np.concatenate(
            [np.ones(view.size, dtype=bool) if view.visible is None else view.visible for view in views]
        ),
    )


def _decode(key: int, source_names: tuple[str, ...], labels: list[CappedLabel]) -> tuple[str, ...]:
    values: list[str] = []
    for label in reversed(labels):
        key, code = divmod(key, len(label.vocabulary))
        values.append(label.vocabulary[code])
    return (source_names[key], *reversed(values))
