"""Zendesk's ticket search behind a number (drill-down): `/agent/search/1?type=ticket&q=<search>`.

The agent interface's search page takes the Support search syntax in `q` (docs/api-notes.md, "Agent search"):
a grouping label filters on its search keyword (`group:"Support"`, `brand:"Acme"`, `organization:"Warehouse"`, a
custom field as `custom_field_<id>:"value"`), a window is a relative time (`updated>30days`), and the CSAT
rating is the `satisfaction` keyword, whose `badwithcomment` value is exactly "unhappy customers who wrote".
Zendesk's search has no keyword for an SLA breach: the breached tickets have no link (a view filtered on the
SLA is how Zendesk lists them), rather than a list that would say otherwise.
"""

from __future__ import annotations

from typing import Final

from itsm_exporter.connectors.links import Part, encoded, joined
from itsm_exporter.connectors.zendesk.config import ZendeskSource

SEARCH_KEYWORDS: Final = {"group": "group", "channel": "via"}
"""Built-in labels whose values are what the search keyword takes: the group's name, the channel (`via:email`).
The priority label is not (p1 is Zendesk's `urgent`)."""


def search_keyword(source: ZendeskSource, label: str) -> str | None:
    """The search keyword that filters `label` (a built-in label or a segment of `source`), None when none does."""
    field = source.segments.get(label) or ({"service": source.service_field}.get(label))
    if field is None:
        return SEARCH_KEYWORDS.get(label)
    if field in ("organization", "brand"):
        return field
    return f"custom_field_{field}" if field.isdigit() else None  # service_field `none`


class ZendeskLinks:
    product = "Zendesk"

    def label_field(self, source: ZendeskSource, label: str) -> str | None:
        return search_keyword(source, label)

    def breached(self, base: Part, field: Part, value: Part, days: Part) -> str | None:
        return None  # no search keyword selects a breached SLA (module docstring)

    def dissatisfied_comments(self, base: Part, field: Part, value: Part, days: Part) -> str:
        # A rating updates its ticket: the tickets updated in the window that carry a bad rating with a comment.
        return search(base, (field, ':"', value, '" satisfaction:badwithcomment updated>', days, "days"))


def search(base: Part, terms: tuple[Part, ...]) -> str:
    """`<base>/agent/search/1?type=ticket&q=<terms>`, the literal terms percent-encoded."""
    return joined(base, f"/agent/search/1?type=ticket&q={encoded(*terms)}")
