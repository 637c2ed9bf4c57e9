"""The two Grafana dashboards, built from small panel factories over the shared `llm:*` schema.

Every query reads a recording rule from llmstack.schema (never an engine's raw metric), so the
dashboards work for any engine the rules map, and the same series back the alerts. Each panel takes
its unit and description from the schema's Signal.

Output is canonical: sorted keys, a fixed uid, no `id`/`version` (Grafana assigns those, and the
provider would diff on them every run), panel ids and grid positions assigned in order. The JSON is
committed under assets/dashboards/ and is byte-for-byte what the stack uploads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional, Sequence

from . import schema
from .artifacts import ARTIFACTS
from .engines import MISTRAL_ENGINE
from .schema import Signal

# Fixed uids: the dashboards, rules and datasource variable reference them, so they never change.
DATASOURCE_UID = "llmstack-prometheus"
DATASOURCE_NAME = "llmstack Prometheus"
FOLDER_UID = "llmstack-llm-inference"
FOLDER_TITLE = "LLM inference"
INFERENCE_UID = "llmstack-mistral-inference"
COMPARISON_UID = "llmstack-mistral-vs-ollama"

# Older schema versions are migrated by Grafana when a dashboard loads; 39 is understood by
# Grafana 10.4 and newer, including the pinned 12.x.
SCHEMA_VERSION = 39
TAGS = ["llmstack", "llm-inference"]
DS_REF = {"type": "prometheus", "uid": "${datasource}"}

# Label filters the panels apply. Inference KPIs carry the schema labels; resource series come
# from exporters (cAdvisor, DCGM) whose `instance`/`engine` are not the engine's, so they are
# filtered by env only.
KPI_FILTER = 'env=~"$env", instance=~"$instance", engine=~"$engine"'
RESOURCE_FILTER = 'env=~"$env"'
# Any shared-schema series: what the variables read their values from.
ANY_LLM_SERIES = '__name__=~"llm:.*"'

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


def stat(title: str, signal: Signal, query: Query, note: str = "", width: int = 8) -> Panel:
    return Panel(
        {
            "type": "stat",
            "title": title,
            "description": _describe([signal], note),
            "datasource": DS_REF,
            "fieldConfig": {"defaults": _field_defaults(signal.unit), "overrides": []},
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


def layout(sections: Sequence[tuple[str, Sequence[Panel]]]) -> list[dict]:
    """Rows of panels, flowed left to right and wrapped at 24 columns; ids assigned in order."""
    panels: list[dict] = []
    y = 0
    next_id = 1
    for title, members in sections:
        panels.append({"type": "row", "title": title, "id": next_id, "collapsed": False, "panels": [], "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}})
        next_id += 1
        y += 1
        x, row_height = 0, 0
        for p in members:
            if x + p.width > 24:
                x, y, row_height = 0, y + row_height, 0
            panels.append({**p.body, "id": next_id, "gridPos": {"x": x, "y": y, "w": p.width, "h": p.height}})
            next_id += 1
            x += p.width
            row_height = max(row_height, p.height)
        y += row_height
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


def dashboard(uid: str, title: str, description: str, sections, default_engine: Optional[str]) -> dict:
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
        "links": [],
        "templating": templating(default_engine),
        "panels": layout(sections),
    }


# --- "Mistral.rs inference" -------------------------------------------------------------------

def _one(title: str, signal: Signal, legend: str = "{{instance}} {{model}}", width: int = 8) -> Panel:
    return timeseries(title, [signal], [Query(sel(signal), legend)], width=width)


def inference_dashboard() -> dict:
    s = schema
    per_instance = "{{instance}} {{model}}"
    sections = [
        ("Traffic and latency", [
            _one("Requests per second", s.REQUESTS_RATE),
            timeseries("Latency: average and p95", [s.LATENCY_AVG, s.LATENCY_P95], [
                Query(sel(s.LATENCY_AVG), f"avg {per_instance}"),
                Query(sel(s.LATENCY_P95), f"p95 {per_instance}"),
            ]),
            _one("Error ratio (5xx)", s.ERROR_RATIO),
        ]),
        ("Tokens", [
            timeseries("Token throughput", [s.TOKENS_PROCESSED_RATE, s.TOKENS_GENERATED_RATE], [
                Query(sel(s.TOKENS_PROCESSED_RATE), f"processed {per_instance}"),
                Query(sel(s.TOKENS_GENERATED_RATE), f"generated {per_instance}"),
            ]),
            _one("Time to first token (p95)", s.TTFT_P95),
            _one("Inter-token latency (p95)", s.ITL_P95),
        ]),
        ("Queue and capacity", [
            _one("Requests in flight", s.IN_FLIGHT),
            _one("Queue depth", s.QUEUE_DEPTH),
            timeseries("Running sequences vs capacity", [s.RUNNING, s.CAPACITY], [
                Query(sel(s.RUNNING), f"running {per_instance}"),
                Query(sel(s.CAPACITY), f"capacity {per_instance}"),
            ]),
        ]),
        ("KV cache", [
            _one("KV-cache utilisation", s.KV_CACHE_UTILISATION),
            _one("Preemptions per second", s.PREEMPTIONS_RATE),
            _one("Prefix-cache hit ratio", s.PREFIX_CACHE_HIT_RATIO),
        ]),
        ("Resources", [
            stat("Model load time", s.MODEL_LOAD_SECONDS, Query(sel(s.MODEL_LOAD_SECONDS, RESOURCE_FILTER), "{{instance}}")),
            timeseries("GPU utilisation", [s.GPU_UTILISATION], [Query(sel(s.GPU_UTILISATION, RESOURCE_FILTER))],
                       note="No data without a GPU (the dev stack runs none)."),
            timeseries("GPU memory: used and total", [s.GPU_MEMORY_USED, s.GPU_MEMORY_TOTAL], [
                Query(sel(s.GPU_MEMORY_USED, RESOURCE_FILTER)),
                Query(sel(s.GPU_MEMORY_TOTAL, RESOURCE_FILTER)),
            ], note="No data without a GPU."),
            timeseries("GPU temperature", [s.GPU_TEMPERATURE], [Query(sel(s.GPU_TEMPERATURE, RESOURCE_FILTER))],
                       note="No data without a GPU."),
            timeseries("GPU power", [s.GPU_POWER], [Query(sel(s.GPU_POWER, RESOURCE_FILTER))], note="No data without a GPU."),
            timeseries("Container CPU", [s.CONTAINER_CPU], [Query(sel(s.CONTAINER_CPU, RESOURCE_FILTER))]),
            timeseries("Container memory: working set and limit", [s.CONTAINER_MEMORY, s.CONTAINER_MEMORY_LIMIT], [
                Query(sel(s.CONTAINER_MEMORY, RESOURCE_FILTER)),
                Query(sel(s.CONTAINER_MEMORY_LIMIT, RESOURCE_FILTER)),
            ], width=16),
        ]),
        ("Alerts", [firing_alerts()]),
    ]
    return dashboard(
        INFERENCE_UID,
        "Mistral.rs inference",
        "Mistral.rs inference KPIs, capacity, KV cache and resources, from the shared llm:* recording rules.",
        sections,
        default_engine=MISTRAL_ENGINE,
    )


# --- "Mistral.rs vs Ollama" -------------------------------------------------------------------
# Each KPI once per engine (legend {{engine}}): rates and counts summed over an engine's instances,
# latencies and ratios as the worst instance. Only llm:* series, so a new engine needs no change here.

SUMMED = "Summed over each engine's instances."
WORST = "The worst instance of each engine."


def _by_engine(title: str, signal: Signal, how: str, width: int = 8) -> Panel:
    agg, note = ("sum", SUMMED) if how == "sum" else ("max", WORST)
    return timeseries(title, [signal], [Query(f"{agg} by (engine) ({sel(signal)})", "{{engine}}")], note=note, width=width)


def comparison_dashboard() -> dict:
    s = schema
    sections = [
        ("Traffic and latency", [
            # The original request's "Inference Request Rate" panel, rate(mistral_http_requests_total[5m])
            # next to rate(ollama_http_requests_total[5m]), as one query over the shared schema.
            _by_engine("Inference request rate", s.REQUESTS_RATE, "sum", width=6),
            _by_engine("Latency (p95)", s.LATENCY_P95, "max", width=6),
            _by_engine("Latency (average)", s.LATENCY_AVG, "max", width=6),
            _by_engine("Error ratio (5xx)", s.ERROR_RATIO, "max", width=6),
        ]),
        ("Tokens", [
            _by_engine("Generated tokens per second", s.TOKENS_GENERATED_RATE, "sum"),
            _by_engine("Time to first token (p95)", s.TTFT_P95, "max"),
            _by_engine("Inter-token latency (p95)", s.ITL_P95, "max"),
        ]),
        ("Queue and capacity", [
            _by_engine("Requests in flight", s.IN_FLIGHT, "sum"),
            _by_engine("Queue depth", s.QUEUE_DEPTH, "sum"),
            _by_engine("KV-cache utilisation", s.KV_CACHE_UTILISATION, "max"),
        ]),
        ("Model", [
            stat("Model load time", s.MODEL_LOAD_SECONDS,
                 Query(f"max by (engine) ({sel(s.MODEL_LOAD_SECONDS, RESOURCE_FILTER)})", "{{engine}}"), note=WORST),
        ]),
        ("Alerts", [firing_alerts()]),
    ]
    return dashboard(
        COMPARISON_UID,
        "Mistral.rs vs Ollama",
        "The same inference KPIs side by side per engine, from the shared llm:* schema only.",
        sections,
        default_engine=None,
    )


DASHBOARDS = {
    "assets/dashboards/mistral-inference.json": inference_dashboard,
    "assets/dashboards/mistral-vs-ollama.json": comparison_dashboard,
}


def render(model: dict) -> str:
    """The canonical text of a dashboard: sorted keys, fixed indentation, trailing newline."""
    return json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


for _path, _build in DASHBOARDS.items():
    ARTIFACTS[_path] = (lambda build=_build: render(build()))
