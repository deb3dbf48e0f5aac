"""Drill-down links: URLs of the ITSM tool's own lists behind a number, built by each kind (its `links.py`).

A number on a dashboard (a group's breached SLAs, a department's unhappy customers who wrote) has its records
in the ITSM tool. Each kind that has a list view with a query in its URL builds those URLs (ServiceNow's
`<table>_list.do?sysparm_query=`, Jira's `/issues/?jql=`, Zendesk's `/agent/search/1?q=`); the dashboard generator
(dashboards/generate.py) calls the builders with Grafana variables as the values, so no link is written
by hand in the dashboard JSON. The exporter publishes what the links need per source: its base URL
(`itsm_source_info`) and the list field of each grouping label (`itsm_source_label_info`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote


@dataclass(frozen=True)
class Placeholder:
    """Text the dashboard fills in when the link is opened (a Grafana variable), written as is."""

    text: str


Part = str | Placeholder
"""A value in a link: literal text (percent-encoded here) or a placeholder (encoded by whoever fills it)."""


def encoded(*parts: Part, safe: str = "") -> str:
    """The parts joined, each literal percent-encoded (`safe` characters kept) and each placeholder kept as is."""
    return "".join(part.text if isinstance(part, Placeholder) else quote(part, safe=safe) for part in parts)


def joined(base: Part, path: str) -> str:
    """`path` under the base URL, whether or not the base ends with a slash."""
    if isinstance(base, Placeholder):
        return f"{base.text}{path}"
    return f"{base.rstrip('/')}{path}"


class ListLinks(Protocol):
    """A kind's list URLs. `field` is the list-query field of the row's label (`label_field`), `value` its value,
    `days` the window in days: each a literal or a placeholder."""

    product: str
    """What the links open, for their titles: `ServiceNow`, `Jira`."""

    def label_field(self, source: Any, label: str) -> str | None:
        """The field a list query filters `label` (a grouping label or a segment of `source`) on; None: none."""
        ...

    def breached(self, base: Part, field: Part, value: Part, days: Part) -> str | None:
        """The tickets of the row resolved in the window that breached their resolution SLA; None where the tool's
        lists cannot select them (Zendesk's search has no SLA keyword): no link rather than a wrong list."""
        ...

    def dissatisfied_comments(self, base: Part, field: Part, value: Part, days: Part) -> str:
        """The survey responses of the row submitted in the window that are dissatisfied and carry a comment (or,
        where the tool's lists cannot tell dissatisfied apart, every one with a comment)."""
        ...
