"""Jira's issue navigator behind a number (drill-down): `/issues/?jql=<JQL>`.

A grouping label filters on its JQL field: the configured `group_field` / `service_field` or segment field, named
as JQL names it (`project`, `component`, `"Customer Request Type"`, `Organizations`, `cf[10040]` for a custom
field by id, a quoted name otherwise). Windows are JQL relative dates (`resolved >= -30d`). SLA breaches are JSM's
`breached()` function on "Time to resolution"; the CSAT rating is the `Satisfaction` field (docs/api-notes.md,
"Issue navigator").
"""

from __future__ import annotations

import re
from typing import Final

from itsm_exporter.connectors.jira.config import JiraSource
from itsm_exporter.connectors.links import Part, encoded, joined

JQL_FIELDS: Final = {
    "project": "project",
    "components": "component",
    "requesttype": '"Customer Request Type"',
    "organizations": "Organizations",
    "organization": "Organizations",
    "labels": "labels",
    "priority": "priority",
    "issuetype": "issuetype",
}
"""Configured field names (and ids) that JQL names otherwise, by their casefolded name."""
_CUSTOM_FIELD = re.compile(r"customfield_(\d+)")


def jql_field(name: str) -> str:
    """How JQL names a configured field: its JQL name, `cf[id]` for a custom field id, else the name quoted."""
    custom = _CUSTOM_FIELD.fullmatch(name)
    if custom:
        return f"cf[{custom.group(1)}]"
    known = JQL_FIELDS.get(name.casefold())
    return known if known is not None else '"' + name.replace('"', '\\"') + '"'


class JiraLinks:
    product = "Jira"

    def label_field(self, source: JiraSource, label: str) -> str | None:
        configured = {"group": source.group_field, "service": source.service_field, "priority": "priority"}
        name = source.segments.get(label) or configured.get(label)
        return jql_field(name) if name else None  # no channel: JSM's request channel has no field to filter on

    def breached(self, base: Part, field: Part, value: Part, days: Part) -> str:
        return navigator(
            base, (field, ' = "', value, '" AND resolved >= -', days, 'd AND "Time to resolution" = breached()')
        )

    def dissatisfied_comments(self, base: Part, field: Part, value: Part, days: Part) -> str:
        # JQL cannot ask whether a rating has a comment: the rated-low requests of the window, each with its comment.
        window = ('" AND "Satisfaction date" >= -', days, "d AND Satisfaction <= 2")
        return navigator(base, (field, ' = "', value, *window))


def navigator(base: Part, jql: tuple[Part, ...]) -> str:
    """`<base>/issues/?jql=<JQL>`, the literal JQL percent-encoded."""
    return joined(base, f"/issues/?jql={encoded(*jql)}")
