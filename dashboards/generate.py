"""Generate the dashboard's customer-segment block and drill-down links from the kinds' URL builders.

    python dashboards/generate.py           # rewrite dashboards/itsm-exporter.json
    python dashboards/generate.py --check   # exit 1 when the committed dashboard differs from the generated one

The rest of the dashboard is written by hand; this script owns, and rewrites whole on each run:
- the variables it lists in VARIABLES (after the hand-written ones): the segment to show, and the hidden ones
  the links read (the selected source's URL, the list fields of `group` and of the segment, the window in days);
- the panels of the row "Customers: segments and drill-down", placed after every other panel;
- the data links of the team table ("SLA met vs satisfied, per group") and of its own tables.
Each link comes from a kind's builder (connectors/<kind>/links.py, `SourceKind.links`), called with Grafana
variables as its values, so the URL forms are the ones tests/test_links.py checks. tests/test_dashboard.py fails
when the committed dashboard is not what this script writes; deploy/kubernetes/generate.py then copies it into the
dashboard ConfigMap.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from itsm_exporter import connectors  # noqa: E402,F401  (the built-in kinds register themselves)
from itsm_exporter.connectors.links import Placeholder  # noqa: E402
from itsm_exporter.kinds import kinds  # noqa: E402

DASHBOARD: Final = ROOT / "dashboards" / "itsm-exporter.json"
DATASOURCE: Final = {"type": "prometheus", "uid": "${datasource}"}
TEAM_TABLE: Final = "SLA met vs satisfied, per group"
ROW: Final = "Customers: segments and drill-down"
SEGMENT_TABLE: Final = "SLA met vs satisfied, per segment value"
WROTE_TABLE: Final = "Unhappy customers who wrote, per group"
DAYS: Final = Placeholder("${window_days}")
URL: Final = Placeholder("${source_url}")


def variable(name: str, query: str, *, label: str, hide: int = 2, regex: str = "") -> dict[str, Any]:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "query": query,
        "current": {"text": "", "value": ""},
        "hide": hide,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 2,
        "regex": regex,
        "sort": 1,
        "skipUrlSync": False,
    }


VARIABLES: Final = [
    variable("segment", 'label_values(itsm_tickets_opened{source=~"$source"}, segment)', label="Segment", hide=0),
    variable("source_url", 'label_values(itsm_source_info{source=~"$source"}, url)', label="Source URL"),
    variable(
        "group_field",
        'label_values(itsm_source_label_info{source=~"$source", label="group"}, field)',
        label="Group field",
    ),
    variable(
        "segment_field",
        'label_values(itsm_source_label_info{source=~"$source", label="$segment"}, field)',
        label="Segment field",
    ),
    # Grafana cannot compute: the window's length in days comes from its name (7d -> 7) through the regex.
    variable(
        "window_days",
        'label_values(itsm_tickets_opened{source=~"$source", window="$window"}, window)',
        label="Window in days",
        regex="/^(\\d+)d$/",
    ),
]


def links(field: Placeholder, value: Placeholder) -> list[dict[str, Any]]:
    """One link per distinct list of the registered kinds, for the row's label `field` and `value`."""
    found: dict[str, str] = {}
    for kind in kinds():
        if kind.links is None:
            continue
        product = kind.links.product
        breached = kind.links.breached(URL, field, value, DAYS)
        if breached is not None:
            found.setdefault(f"{product}: tickets that breached their SLA", breached)
        found.setdefault(
            f"{product}: unhappy customers' comments", kind.links.dissatisfied_comments(URL, field, value, DAYS)
        )
    return [{"title": title, "url": url, "targetBlank": True} for title, url in found.items()]


def target(ref: str, expr: str) -> dict[str, Any]:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": "__auto",
        "refId": ref,
        "format": "table",
        "instant": True,
        "range": False,
    }


def segment_expr(aggregate: str, metric: str, selector: str = "") -> str:
    """A segment view's series with the segment's value copied into `value` (label_join copies without a regex)."""
    labels = f'{selector}source=~"$source", segment="$segment", window="$window"'
    return f'{aggregate} by (source, value) (label_join({metric}{{{labels}}}, "value", "", "$segment"))'


def table(panel_id: int, title: str, description: str, grid: dict[str, int], targets: list[dict[str, Any]],
          table_links: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    return {
        "type": "table",
        "id": panel_id,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": grid,
        "targets": targets,
        "fieldConfig": {"defaults": {"links": table_links}, "overrides": []},
        "options": {"showHeader": True},
        "transformations": [{"id": "merge", "options": {}}],
    }


def block(first_id: int, y: int) -> list[dict[str, Any]]:
    """The row and its panels, from panel id `first_id` at height `y`."""
    segment_links = links(
        Placeholder("${segment_field:percentencode}"), Placeholder("${__data.fields.value:percentencode}")
    )
    group_links = links(
        Placeholder("${group_field:percentencode}"), Placeholder("${__data.fields.group:percentencode}")
    )
    return [
        {
            "type": "row",
            "id": first_id,
            "title": ROW,
            "collapsed": False,
            "panels": [],
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
        },
        table(
            first_id + 1,
            SEGMENT_TABLE,
            "Per value of the selected segment (a customer-side label such as department): the resolution SLA met "
            "ratio, the satisfied ratio, the watermelon flag over all of its tickets whichever teams handled them, "
            "and how many unhappy customers wrote. Links open the breached tickets and the comments in the ITSM tool "
            "(select one source).",
            {"x": 0, "y": y + 1, "w": 14, "h": 9},
            [
                target("A", segment_expr("min", "itsm_sla_met_ratio", 'sla="resolution", ')),
                target("B", segment_expr("min", "itsm_survey_satisfied_ratio")),
                target("C", segment_expr("max", "itsm_watermelon")),
                target("D", segment_expr("sum", "itsm_survey_dissatisfied_commented_responses")),
            ],
            segment_links,
        ),
        table(
            first_id + 2,
            WROTE_TABLE,
            "Dissatisfied survey responses of the window that carry a comment, per group: the comments themselves "
            "stay in the ITSM tool, one click away.",
            {"x": 14, "y": y + 1, "w": 10, "h": 9},
            [
                target(
                    "A",
                    'sum by (source, group) (itsm_survey_dissatisfied_commented_responses{source=~"$source", '
                    'segment="", group=~"$group", window="$window"})',
                )
            ],
            group_links,
        ),
    ]


def generated(model: dict[str, Any]) -> dict[str, Any]:
    """The dashboard with this script's part rewritten from the registered kinds."""
    names = {v["name"] for v in VARIABLES}
    hand = [v for v in model["templating"]["list"] if v["name"] not in names]
    model["templating"]["list"] = [*hand, *VARIABLES]
    panels = [p for p in model["panels"] if p["title"] not in (ROW, SEGMENT_TABLE, WROTE_TABLE)]
    for panel in panels:
        if panel["title"] == TEAM_TABLE:
            panel["fieldConfig"]["defaults"]["links"] = links(
                Placeholder("${group_field:percentencode}"), Placeholder("${__data.fields.group:percentencode}")
            )
    bottom = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    model["panels"] = [*panels, *block(len(panels) + 1, bottom)]
    return model


def render(model: dict[str, Any]) -> str:
    return json.dumps(model, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed dashboard differs")
    args = parser.parse_args()
    committed = DASHBOARD.read_text(encoding="utf-8")
    wanted = render(generated(json.loads(committed)))
    if args.check:
        if wanted != committed:
            print(f"{DASHBOARD.relative_to(ROOT)} differs from what dashboards/generate.py writes", file=sys.stderr)
            return 1
        return 0
    DASHBOARD.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
