"""What tests and benchmarks read back from a store, through its table declarations (store.schema).

The exporter itself only loads frames; reading whole records back is for checking what a sync stored.
"""

from __future__ import annotations

from typing import Any

from itsm_exporter.records import Batch, RecordKind, SurveyResponse, Ticket
from itsm_exporter.store import Store
from itsm_exporter.store.schema import decode, sql_columns


def stored_tickets(store: Store, source: str) -> list[Ticket]:
    """Every stored ticket of `source` as canonical records, sorted by id, with their SLA clocks."""
    return stored_records(store, "tickets", source)


def stored_surveys(store: Store, source: str) -> list[SurveyResponse]:
    """Every stored survey response of `source` with its answers (sorted by question id), sorted by id."""
    return stored_records(store, "surveys", source)


def stored_records(store: Store, name: str, source: str) -> list[Any]:
    """Every stored record of table `name` of `source`, sorted by key, with the items of its child tables.

    An owned child table's rows become the items of their parent (`Parent.items`), in the order the
    declaration gives; a catalogue that is not owned (the questions) fills in the rest of each item's
    attributes, matched on its key.
    """
    schema = store.schema
    table = schema.table(name)
    items: dict[str, dict[object, list[dict[str, object]]]] = {}
    catalogues: dict[str, list[tuple[tuple[str, ...], dict[tuple[object, ...], dict[str, object]]]]] = {}
    with store.reading() as db:
        texts = dict(db.execute("SELECT code, text FROM labels").fetchall())
        where = "source = (SELECT code FROM labels WHERE text = ?)" if "source" in table.coded else "source = ?"
        key = ", ".join(sql_columns(table, table.key))
        rows = db.execute(
            f"SELECT {', '.join(sql_columns(table))} FROM {name} WHERE {where} ORDER BY {key}", (source,)
        ).fetchall()
        for child in schema.children(name):
            assert child.parent is not None
            own = child.parent.key
            rest = [k for k in child.key if k not in own]
            order = ", ".join([*sql_columns(child, own), child.parent.order or ", ".join(sql_columns(child, rest))])
            child_rows = db.execute(
                f"SELECT {', '.join(sql_columns(child))} FROM {child.name} WHERE source = ? ORDER BY {order}",
                (source,),
            ).fetchall()
            decoded = [decode(child, child.names, row, texts) for row in child_rows]
            if child.parent.owned:
                by_parent = items.setdefault(child.parent.items, {})
                for values in decoded:
                    by_parent.setdefault(values[own[-1]], []).append({k: v for k, v in values.items() if k not in own})
            else:
                entries = {
                    tuple(values[k] for k in rest): {k: v for k, v in values.items() if k not in own}
                    for values in decoded
                }
                catalogues.setdefault(child.parent.items, []).append((tuple(rest), entries))
    item_types = {c.parent.items: c.record for c in schema.children(name) if c.parent is not None and c.parent.owned}
    records = []
    for row in rows:
        values = decode(table, table.names, row, texts)
        for attribute, by_parent in items.items():
            listed = by_parent.get(values[table.key[-1]], [])
            for match, entries in catalogues.get(attribute, []):
                for item in listed:
                    extra = entries.get(tuple(item[k] for k in match), {})
                    item.update({k: v for k, v in extra.items() if k not in item})
            values[attribute] = tuple(item_types[attribute](**item) for item in listed)
        records.append(table.record(**values))
    return records


def stored_count(store: Store, source: str, kind: RecordKind) -> int:
    """Stored records of one source and kind."""
    table = store.schema.table(f"{kind}s")
    where = "source = (SELECT code FROM labels WHERE text = ?)" if "source" in table.coded else "source = ?"
    with store.reading() as db:
        return int(db.execute(f"SELECT count(*) FROM {table.name} WHERE {where}", (source,)).fetchone()[0])


def delete_tickets(store: Store, source: str, ids: list[str]) -> int:
    """Remove tickets of `source` as a reconciliation does (a batch of deletions); returns how many were stored."""
    return store.commit_batch(source, Batch(kind="ticket", deleted_ticket_ids=tuple(ids)))
