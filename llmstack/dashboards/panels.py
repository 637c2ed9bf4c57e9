"""Panel factories and the dashboard frame every dashboard shares.

Every query reads a series of the `llm:*` catalogue (llmstack/signals.py, never an engine's raw
metric), so the dashboards work for any engine the rules map, and the same series back the alerts.
Each panel takes its unit and description from the catalogue's Signal.

Output is canonical: sorted keys, a fixed uid, no `id`/`version` (Grafana assigns those, and the
provider would diff on them every run), panel ids and grid positions assigned in order. The JSON is
committed under assets/dashboards/ and is byte-for-byte what the stack uploads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

from ..signals import Signal

# Fixed uids: the dashboards, rules and datasource variable reference them, so they never change.
DATASOURCE_UID = "llmstack-prometheus"
DATASOURCE_NAME = "llmstack Prometheus"
FOLDER_UID = "llmstack-llm-inference"
FOLDER_TITLE = "LLM inference"

# Older schema versions are migrated by Grafana when a dashboard loads; 39 is understood by
# Grafana 10.4 and newer, including the pinned 12.x.
SCHEMA_VERSION = 39
TAGS = ["llmstack", "llm-inference"]
DS_REF = {"type": "prometheus", "uid": "${datasource}"}

# Label filters the panels apply. Inference KPIs carry the schema labels; resource series come
# from exporters (cAdvisor, DCGM) whose `instance`/`engine` are not the engine's, so they are
# filtered by env only.
KPI_FILTER = 'env=~"$env", instance=~"$instance", engine=~"$engine"'
# Fleet records have no `instance`: they are the whole fleet whatever the instance variable picks.
FLEET_FILTER = 'env=~"$env", engine=~"$engine"'
RESOURCE_FILTER = 'env=~"$env"'
# Any shared-schema series: what the variables read their values from.
ANY_LLM_SERIES = '__name__=~"llm:.*"'

# Every dashboard of the stack in one menu, carrying the time range and the variables across.
DASHBOARD_LINKS = {
    "title": "LLM dashboards",
    "type": "dashboards",
    "tags": ["llmstack"],
    "asDropdown": True,
    "includeVars": True,
    "keepTime": True,
}

FIRING_ALERTS_EXPR = 'ALERTS{alertstate="firing"}'


def sel(signal: Signal, filters: str = KPI_FILTER) -> str:
    return f"{signal.name}{{{filters}}}"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = "__auto"


@dataclass(frozen=True)
class Panel:
    """A panel before layout: `width` columns wide, placed left to right by `layout()`."""

    body: dict
    width: int = 8
    height: int = 8


def _describe(signals: Sequence[Signal], note: str = "") -> str:
    text = " ".join(s.description for s in signals)
    return f"{text} {note}".strip()


def _unit(signals: Sequence[Signal]) -> str:
    units = {s.unit for s in signals}
    if len(units) != 1:
        raise ValueError(f"one panel, one unit: {[s.name for s in signals]} have {sorted(units)}")
    return units.pop()


def _targets(queries: Sequence[Query], instant: bool = False, table: bool = False) -> list[dict]:
    out = []
    for i, q in enumerate(queries):
        target = {
            "datasource": DS_REF,
            "editorMode": "code",
            "expr": q.expr,
            "legendFormat": q.legend,
            "range": not instant,
            "instant": instant,
            "refId": chr(ord("A") + i),
        }
        if table:
            target["format"] = "table"
        out.append(target)
    return out


def _field_defaults(unit: str) -> dict:
    defaults: dict = {"unit": unit, "min": 0}
    if unit == "percentunit":
        defaults["max"] = 1
    return defaults


def timeseries(title: str, signals: Sequence[Signal], queries: Sequence[Query], note: str = "", width: int = 8) -> Panel:
    return Panel(
        {
            "type": "timeseries",
            "title": title,
            "description": _describe(signals, note),
            "datasource": DS_REF,
            "fieldConfig": {
                "defaults": {**_field_defaults(_unit(signals)), "custom": {"fillOpacity": 10, "showPoints": "never"}},
                "overrides": [],
            },
            "options": {
                "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                "tooltip": {"mode": "multi", "sort": "desc"},
            },
            "targets": _targets(queries),
        },
        width=width,
    )


def stat(title: str, signal: Signal, query: Query, note: str = "", width: int = 8, unit: str = "") -> Panel:
    """`unit` overrides the signal's, for a query that derives another quantity from it."""
    return Panel(
        {
            "type": "stat",
            "title": title,
            "description": _describe([signal], note),
            "datasource": DS_REF,
            "fieldConfig": {"defaults": _field_defaults(unit or signal.unit), "overrides": []},
            "options": {
                "colorMode": "value",
                "graphMode": "none",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                "textMode": "value_and_name",
            },
            "targets": _targets([query], instant=True),
        },
        width=width,
    )


def firing_alerts(width: int = 24) -> Panel:
    return Panel(
        {
            "type": "table",
            "title": "Firing alerts",
            "description": "Alerts Prometheus is firing right now (ALERTS{alertstate=\"firing\"}): the same ones "
            "Grafana forwards to the contact points. The Watchdog always fires; it proves the pipeline works.",
            "datasource": DS_REF,
            "fieldConfig": {"defaults": {"unit": "none"}, "overrides": []},
            "options": {"showHeader": True, "sortBy": [{"desc": False, "displayName": "severity"}]},
            "targets": _targets([Query(FIRING_ALERTS_EXPR, "")], instant=True, table=True),
            "transformations": [
                {"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True, "__name__": True, "alertstate": True}}}
            ],
        },
        width=width,
        height=8,
    )


@dataclass(frozen=True)
class RepeatedRow:
    """A collapsed row Grafana repeats once per selected value of `variable`, its panels inside it.

    Collapsed, so a refresh queries none of its panels until someone opens one copy: 64 instances
    cost one row header each, not 64 sets of queries. It must be the last section, so the nested
    panels' positions (where they land when opened) overlap nothing.
    """

    title: str
    variable: str
    panels: Sequence[Panel]


def _flow(members: Sequence[Panel], y: int, next_id: int) -> tuple[list[dict], int, int]:
    """Panels left to right from row `y`, wrapped at 24 columns: (panels, next free y, next id)."""
    out = []
    x, row_height = 0, 0
    for p in members:
        if x + p.width > 24:
            x, y, row_height = 0, y + row_height, 0
        out.append({**p.body, "id": next_id, "gridPos": {"x": x, "y": y, "w": p.width, "h": p.height}})
        next_id += 1
        x += p.width
        row_height = max(row_height, p.height)
    return out, y + row_height, next_id


def layout(sections: Sequence) -> list[dict]:
    """Rows of panels, flowed left to right and wrapped at 24 columns; ids assigned in order.
    A section is (title, panels), or a RepeatedRow as the last one."""
    panels: list[dict] = []
    y = 0
    next_id = 1
    for i, section in enumerate(sections):
        if isinstance(section, RepeatedRow):
            if i != len(sections) - 1:
                raise ValueError(f"the repeated row {section.title!r} must be the last section")
            row = {"type": "row", "title": section.title, "id": next_id, "collapsed": True, "repeat": section.variable,
                   "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}}
            row["panels"], _, next_id = _flow(section.panels, y + 1, next_id + 1)
            panels.append(row)
            continue
        title, members = section
        panels.append({"type": "row", "title": title, "id": next_id, "collapsed": False, "panels": [], "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}})
        flowed, y, next_id = _flow(members, y + 1, next_id + 1)
        panels += flowed
    return panels


def _variable(name: str, label: str, query: str, default: Optional[str]) -> dict:
    current = {"text": [default], "value": [default]} if default else {"text": ["All"], "value": ["$__all"]}
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS_REF,
        "query": query,
        "definition": query,
        "refresh": 2,  # on time range change: a new instance shows up without a reload
        "includeAll": True,
        "allValue": ".*",
        "multi": True,
        "sort": 1,
        "current": current,
        "hide": 0,
        "regex": "",
        "options": [],
    }


def templating(default_engine: Optional[str]) -> dict:
    return {
        "list": [
            {
                "name": "datasource",
                "label": "Data source",
                "type": "datasource",
                "query": "prometheus",
                "current": {"text": DATASOURCE_NAME, "value": DATASOURCE_UID},
                "hide": 0,
                "refresh": 1,
                "regex": "",
                "includeAll": False,
                "multi": False,
                "options": [],
            },
            _variable("env", "Environment", f"label_values({{{ANY_LLM_SERIES}}}, env)", None),
            _variable("instance", "Instance", f'label_values({{{ANY_LLM_SERIES}, env=~"$env"}}, instance)', None),
            _variable("engine", "Engine", f'label_values({{{ANY_LLM_SERIES}, env=~"$env"}}, engine)', default_engine),
        ]
    }


def dashboard(uid: str, title: str, description: str, sections, default_engine: Optional[str], links: Sequence[dict] = ()) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": TAGS,
        "editable": False,  # managed by Pulumi: edits in the UI would be overwritten on the next `up`
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "timezone": "",
        "schemaVersion": SCHEMA_VERSION,
        "annotations": {"list": []},
        "links": [DASHBOARD_LINKS, *links],
        "templating": templating(default_engine),
        "panels": layout(sections),
    }


def render(model: dict) -> str:
    """The canonical text of a dashboard: sorted keys, fixed indentation, trailing newline."""
    return json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
