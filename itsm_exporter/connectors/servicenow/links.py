"""ServiceNow list views behind a number (drill-down): `<table>_list.do?sysparm_query=<encoded query>`.

The list view takes the same encoded query as the Table API (docs/api-notes.md, "List views"): a grouping label
filters on its field, dot-walked where it is a reference (`assignment_group.name=Service Desk`), and a segment on
the path configured for it (`caller_id.department.name=Warehouse`). The window is relative to the day the link is
opened (`javascript:gs.daysAgoStart(N)`), as the exporter's window is relative to its evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from itsm_exporter.connectors.links import Part, encoded, joined
from itsm_exporter.connectors.servicenow.config import ServiceNowSource

LIST_FIELDS: Final = {
    "group": "assignment_group.name",
    "service": "business_service.name",
    "priority": "priority",
    "channel": "contact_type",
}
"""Each built-in label's field in an encoded query (the incident fields of connector.LABEL_FIELDS): references by
their display name, dot-walked. Not imported from the connector: registering the kind must not load pysnow."""
QUERY_SAFE: Final = "=^._:()!<>"
"""Kept readable in `sysparm_query`, as ServiceNow writes its own list URLs; the rest is percent-encoded."""
SURVEY_TASK: Final = "instance.task_id."
"""From a survey answer to its incident: the assessment instance's task reference (docs/api-notes.md)."""


class ServiceNowLinks:
    product = "ServiceNow"

    def label_field(self, source: ServiceNowSource, label: str) -> str | None:
        return source.segments.get(label) or LIST_FIELDS.get(label)

    def breached(self, base: Part, field: Part, value: Part, days: Part) -> str:
        window = ("^resolved_at>=javascript:gs.daysAgoStart(", days, ")")
        return list_url(base, "incident", (field, "=", value, *window, "^made_sla=false"))

    def dissatisfied_comments(self, base: Part, field: Part, value: Part, days: Part) -> str:
        # A list of answers cannot select the instances whose overall answer is low: it shows every written answer
        # of the window beside its instance, whose other answers the list's related records show.
        window = ("^instance.taken_on>=javascript:gs.daysAgoStart(", days, ")")
        return list_url(
            base, "asmt_metric_result", (SURVEY_TASK, field, "=", value, *window, "^string_valueISNOTEMPTY")
        )


def list_url(base: Part, table: str, terms: Sequence[Part]) -> str:
    """`<base>/<table>_list.do?sysparm_query=<terms>`, literal terms percent-encoded but for the query's operators."""
    return joined(base, f"/{table}_list.do?sysparm_query={encoded(*terms, safe=QUERY_SAFE)}")
