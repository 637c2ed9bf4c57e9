"""The engine comparison dashboard: the same KPIs side by side for every engine present.

Each KPI once per engine (legend {{engine}}): rates and counts summed over an engine's instances,
latencies and ratios as the worst instance. Only llm:* series, so a new engine needs no change here.
The engine variable picks any set of engines; a link on the dashboard opens Mistral.rs vs Ollama.
"""

from __future__ import annotations

from .. import signals as s
from ..engines import mistralrs, ollama
from ..signals import Signal
from .panels import RESOURCE_FILTER, Panel, Query, dashboard, firing_alerts, sel, stat, timeseries

UID = "llmstack-mistral-vs-ollama"

SUMMED = "Summed over each engine's instances."
WORST = "The worst instance of each engine."


def _by_engine(title: str, signal: Signal, how: str, width: int = 8) -> Panel:
    agg, note = ("sum", SUMMED) if how == "sum" else ("max", WORST)
    return timeseries(title, [signal], [Query(f"{agg} by (engine) ({sel(signal)})", "{{engine}}")], note=note, width=width)


def build() -> dict:
    sections = [
        ("Traffic and latency", [
            # rate(mistral_http_requests_total[5m]) next to Ollama's request rate, as one query
            # over the shared schema: every engine's requests, one line each.
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
            timeseries(
                "Saturation: running sequences / capacity",
                [s.RUNNING, s.CAPACITY],
                [Query(f"max by (engine) ({sel(s.RUNNING)} / on (engine, env, instance, model) {sel(s.CAPACITY)})", "{{engine}}")],
                note="The busiest instance of each engine; 1 means every sequence slot is taken.",
                width=24,
            ),
        ]),
        ("Model", [
            stat("Model load time", s.MODEL_LOAD_SECONDS,
                 Query(f"max by (engine) ({sel(s.MODEL_LOAD_SECONDS, RESOURCE_FILTER)})", "{{engine}}"), note=WORST),
        ]),
        ("Alerts", [firing_alerts()]),
    ]
    pair = f"var-engine={mistralrs.ENGINE}&var-engine={ollama.ENGINE}"
    return dashboard(
        UID,
        "LLM engines compared",
        "The same inference KPIs side by side for every engine present (pick them with the engine variable), from the shared llm:* schema only.",
        sections,
        default_engine=None,
        links=[{
            "title": "Mistral.rs vs Ollama",
            "type": "link",
            "url": f"/d/{UID}?{pair}",
            "keepTime": True,
            "tooltip": "This dashboard with the engine variable set to mistralrs and ollama",
        }],
    )
