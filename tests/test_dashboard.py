"""The Grafana dashboard and provisioning files, checked offline: Grafana's JSON schema, data sources, queries."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from test_rules import alerting_rules, known_metric_names, metric_names, recording_rules, viewless_selectors

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboards" / "itsm-exporter.json"
SCHEMA = ROOT / "dashboards" / "schema" / "dashboard.jsonschema.json"
DATASOURCE_PROVISIONING = ROOT / "dashboards" / "provisioning" / "datasources" / "prometheus.yaml"
DASHBOARD_PROVISIONING = ROOT / "dashboards" / "provisioning" / "dashboards" / "itsm-exporter.yaml"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}

# What the integration test (and a reader) substitutes for Grafana's variables.
VARIABLE_VALUES = {
    "source": "demo",
    "window": "7d",
    "group": ".*",
    "segment": "department",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def data_panels() -> list[dict[str, Any]]:
    return [panel for panel in dashboard()["panels"] if panel["type"] != "row"]


def panel_exprs() -> list[tuple[str, str]]:
    """(panel title, PromQL with Grafana variables) of every query of the dashboard."""
    return [(panel["title"], target["expr"]) for panel in data_panels() for target in panel["targets"]]


def expand(expr: str, values: dict[str, str] = VARIABLE_VALUES) -> str:
    """The expression as Grafana sends it to Prometheus with these variable values."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: values[m.group(1) or m.group(2)], expr)


def test_dashboard_is_valid_against_grafanas_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = [
        f"{list(error.absolute_path)}: {error.message}"
        for error in jsonschema.Draft7Validator(schema).iter_errors(dashboard())
    ]
    assert errors == []


def test_schema_rejects_what_grafana_would_not_load() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    broken = dashboard()
    broken["panels"][1]["gridPos"]["w"] = 25
    broken["templating"]["list"][0]["type"] = "dropdown"
    del broken["annotations"]
    messages = sorted(error.message for error in validator.iter_errors(broken))
    assert messages == [
        "'annotations' is a required property",
        "'dropdown' is not one of ['query', 'adhoc', 'constant', 'datasource', 'interval', 'textbox', 'custom', "
        "'system']",
        f"{broken['panels'][1]} is not valid under any of the given schemas",
    ]


def test_dashboard_identity_and_schema_version() -> None:
    model = dashboard()
    assert (model["uid"], model["title"]) == ("itsm-exporter", "ITSM service quality")
    assert 39 <= model["schemaVersion"] <= 41
    assert "id" not in model


def test_template_variables() -> None:
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    assert list(variables) == [
        "datasource", "source", "window", "group", "segment", "source_url", "group_field", "segment_field",
        "window_days",
    ]  # fmt: skip
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert variables["source"]["query"] == "label_values(itsm_source_up, source)"
    assert variables["window"]["query"] == 'label_values(itsm_tickets_opened{source=~"$source"}, window)'
    assert variables["group"]["query"] == 'label_values(itsm_tickets_opened{source=~"$source"}, group)'
    for name in ("source", "window", "group"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"] == DATASOURCE_REF
    assert (variables["source"]["multi"], variables["source"]["allValue"]) == (True, ".*")
    assert (variables["group"]["multi"], variables["group"]["allValue"]) == (True, ".*")
    assert variables["window"]["multi"] is False


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    for panel in data_panels():
        assert panel["datasource"] == DATASOURCE_REF, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE_REF, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]


def test_panel_ids_and_titles_are_unique() -> None:
    panels = dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert ids == list(range(1, len(panels) + 1))
    titles = [panel["title"] for panel in panels]
    assert len(set(titles)) == len(titles)


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_every_metric_in_a_query_exists() -> None:
    known = known_metric_names()
    variable_queries = [
        (v["name"], re.fullmatch(r"label_values\((.+), \w+\)", v["query"]).group(1))  # type: ignore[union-attr]
        for v in dashboard()["templating"]["list"]
        if v["type"] == "query"
    ]
    for title, expr in panel_exprs() + variable_queries:
        assert metric_names(expr), title
        assert metric_names(expr) - known == set(), title


def test_queries_follow_the_selected_source_and_expand_fully() -> None:
    for title, expr in panel_exprs():
        if expr != "itsm_build_info":
            assert 'source=~"$source"' in expr, title
        assert "$" not in expand(expr), title


def test_every_recording_rule_is_used() -> None:
    used = {name for _, expr in panel_exprs() for name in metric_names(expr)}
    used |= {name for rule in alerting_rules() for name in metric_names(rule["expr"])}
    assert {rule["record"] for rule in recording_rules()} - used == set()


def test_required_views_are_there() -> None:
    panels = {panel["title"]: panel for panel in data_panels()}
    table = panels["SLA met vs satisfied, per group"]
    assert table["type"] == "table"
    assert [metric_names(target["expr"]) for target in table["targets"]] == [
        {"itsm_sla_met_ratio"},
        {"itsm_survey_satisfied_ratio"},
        {"itsm_watermelon_gap_ratio"},
        {"itsm_watermelon"},
    ]
    assert [t["id"] for t in table["transformations"]] == ["merge", "organize"]
    heatmaps = {title: panel for title, panel in panels.items() if panel["type"] == "heatmap"}
    assert sorted(heatmaps) == [
        "Backlog age distribution",
        "First-response time distribution",
        "Resolution time distribution",
    ]
    for title, panel in heatmaps.items():
        (target,) = panel["targets"]
        assert (target["format"], target["legendFormat"]) == ("heatmap", "{{le}}"), title
        assert target["expr"].startswith("sum by (le) (itsm_") and "_bucket{" in target["expr"], title
        assert panel["options"]["calculate"] is False, title
    assert {panel["type"] for title, panel in panels.items() if "RATER" in title or "SERVQUAL" in title} == {"bargauge"}
    health = {name for title, expr in panel_exprs() for name in metric_names(expr) if name.startswith("itsm_source_")}
    assert health == {
        "itsm_source_up",
        "itsm_source_last_success_timestamp_seconds",
        "itsm_source_sync_duration_seconds",
        "itsm_source_records_synced_total",
        "itsm_source_api_requests_total",
    }


def test_datasource_provisioning() -> None:
    config = yaml.safe_load(DATASOURCE_PROVISIONING.read_text())
    assert config["apiVersion"] == 1
    (source,) = config["datasources"]
    assert (source["type"], source["access"], source["isDefault"]) == ("prometheus", "proxy", True)
    assert source["url"].startswith("http")


def test_dashboard_provisioning() -> None:
    config = yaml.safe_load(DASHBOARD_PROVISIONING.read_text())
    assert config["apiVersion"] == 1
    (provider,) = config["providers"]
    assert (provider["type"], provider["folder"]) == ("file", "ITSM")
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/itsm-exporter"


def test_the_now_row_comes_first_with_the_live_state_next_to_the_backlog() -> None:
    rows = [panel for panel in dashboard()["panels"] if panel["type"] == "row"]
    assert rows[0]["title"].startswith("Now") and rows[0]["gridPos"]["y"] == 0
    now_row = [p for p in data_panels() if p["gridPos"]["y"] < rows[1]["gridPos"]["y"]]
    names = {name for panel in now_row for target in panel["targets"] for name in metric_names(target["expr"])}
    assert names == {
        "itsm_awaiting_first_response_tickets",
        "itsm_awaiting_first_response_age_seconds_bucket",
        "itsm_sla_running_tickets",
        "itsm_backlog_tickets",
    }


def test_the_committed_dashboard_is_what_its_generator_writes() -> None:
    """dashboards/generate.py owns the segment block and every drill-down link: none is written by hand."""
    generate = _generator()
    assert generate.render(generate.generated(dashboard())) == DASHBOARD.read_text(encoding="utf-8")


def test_a_segment_rows_link_opens_the_documented_list_of_that_department() -> None:
    """Issue 28's demo: the Warehouse row's link, its variables filled as Grafana fills them, is the ServiceNow
    list view of the department's breached incidents (the form tests/test_links.py checks)."""
    panel = next(p for p in data_panels() if p["title"] == "SLA met vs satisfied, per segment value")
    [link] = [
        k
        for k in panel["fieldConfig"]["defaults"]["links"]
        if k["title"] == "ServiceNow: tickets that breached their SLA"
    ]
    filled = {
        "source_url": "https://itsm-demo.example",
        "segment_field:percentencode": "caller_id.department.name",
        "__data.fields.value:percentencode": "Warehouse",
        "window_days": "30",
    }
    url = re.sub(r"\$\{([^}]+)\}", lambda m: filled[m.group(1)], link["url"])
    assert url == (
        "https://itsm-demo.example/incident_list.do?sysparm_query=caller_id.department.name=Warehouse"
        "^resolved_at>=javascript:gs.daysAgoStart(30)^made_sla=false"
    )
    team = next(p for p in data_panels() if p["title"] == "SLA met vs satisfied, per group")
    titles = [k["title"] for k in team["fieldConfig"]["defaults"]["links"]]
    assert titles == [
        "ServiceNow: tickets that breached their SLA", "ServiceNow: unhappy customers' comments",
        "Jira: tickets that breached their SLA", "Jira: unhappy customers' comments",
        "Zendesk: unhappy customers' comments",  # Zendesk's search cannot select a breached SLA
    ]  # fmt: skip


def test_every_query_reads_one_view() -> None:
    """The team panels select segment="" (else a department's series would be summed with its teams'), the segment
    block the selected segment's view; per-source families (targets, source info) have no view."""
    for title, expr in panel_exprs():
        assert viewless_selectors(expr) == [], title


def test_the_business_hours_row_shows_both_clocks() -> None:
    """One contiguous block: which calendar each group uses, the live wait the overdue alert reads there, and each
    business-time duration next to its wall-clock twin."""
    panels = dashboard()["panels"]
    (start,) = [i for i, p in enumerate(panels) if p["type"] == "row" and p["title"].startswith("Business hours")]
    end = next((i for i in range(start + 1, len(panels)) if panels[i]["type"] == "row"), len(panels))
    block = panels[start + 1 : end]
    assert block and all(p["type"] != "row" for p in block)
    names = [{name for target in p["targets"] for name in metric_names(target["expr"])} for p in block]
    assert names == [
        {"itsm_calendar_info"},
        {"itsm_awaiting_first_response_business_age_seconds_bucket"},
        {
            "source_group_window:itsm_first_response_business_time_seconds:histogram_quantile",
            "source_group_window:itsm_first_response_time_seconds:histogram_quantile",
        },
        {"source_group_window:itsm_resolution_business_time_seconds:histogram_quantile"},
        {"itsm_backlog_business_age_seconds_bucket", "source_group:itsm_backlog_age_seconds:histogram_quantile"},
    ]


def _generator() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("dashboard_generator", ROOT / "dashboards" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
