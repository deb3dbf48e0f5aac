"""The demo desk's drill-down links: ServiceNow's list views on the instance it stands for (its `url`).

The demo names its fields as ServiceNow does (`assignment_group.name`, `caller_id.department.name`), so its
lists are the ones such an instance serves: the same forms as connectors/servicenow/links.py, written here
because source kinds do not import each other (tests/test_links.py holds the two to the same URLs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from itsm_exporter.connectors.demo.config import DemoSource
from itsm_exporter.connectors.links import Part, encoded, joined

LIST_FIELDS: Final = {"group": "assignment_group.name", "service": "business_service.name", "priority": "priority"}
QUERY_SAFE: Final = "=^._:()!<>"


class DemoLinks:
    product = "ServiceNow"

    def label_field(self, source: DemoSource, label: str) -> str | None:
        return source.segments.get(label) or LIST_FIELDS.get(label)

    def breached(self, base: Part, field: Part, value: Part, days: Part) -> str:
        window = ("^resolved_at>=javascript:gs.daysAgoStart(", days, ")")
        return _list(base, "incident", (field, "=", value, *window, "^made_sla=false"))

    def dissatisfied_comments(self, base: Part, field: Part, value: Part, days: Part) -> str:
        window = ("^instance.taken_on>=javascript:gs.daysAgoStart(", days, ")")
        terms = ("instance.task_id.", field, "=", value, *window, "^string_valueISNOTEMPTY")
        return _list(base, "asmt_metric_result", terms)


def _list(base: Part, table: str, terms: Sequence[Part]) -> str:
    return joined(base, f"/{table}_list.do?sysparm_query={encoded(*terms, safe=QUERY_SAFE)}")
