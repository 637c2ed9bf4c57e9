"""The "Mistral.rs inference" dashboard: one engine's KPIs, capacity, KV cache and resources."""

from __future__ import annotations

from .. import signals as s
from ..engines import mistralrs
from ..signals import Signal
from .panels import RESOURCE_FILTER, Panel, Query, dashboard, firing_alerts, sel, stat, timeseries

UID = "llmstack-mistral-inference"
BURN_PANEL_WINDOWS = ("5m", "1h", "6h", "1d", "3d")  # each page and ticket pair's long window, and the fastest


def _one(title: str, signal: Signal, legend: str = "{{instance}} {{model}}", width: int = 8) -> Panel:
    return timeseries(title, [signal], [Query(sel(signal), legend)], width=width)


def build() -> dict:
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
        ("Service level objectives", [
            stat("Error budget left (30 days)", s.SLO_BURN_RATES["5m"],
                 Query(f"1 - avg_over_time({sel(s.SLO_BURN_RATES['5m'])}[30d])", "{{slo}} {{instance}}"),
                 note="1 minus the mean 5-minute burn rate over 30 days, over the minutes with traffic: 100% untouched, "
                      "0 spent, below 0 overspent. Time-weighted, so a quiet hour counts as much as a busy one.",
                 unit="percentunit"),
            timeseries("Burn rate: page and ticket windows", [s.SLO_BURN_RATES[w] for w in BURN_PANEL_WINDOWS], [
                Query(sel(s.SLO_BURN_RATES[w]), f"{{{{slo}}}} {w} {{{{instance}}}}") for w in BURN_PANEL_WINDOWS
            ], note="1 spends the budget in exactly 30 days. Pages: 14.4 over 1h and 5m, 6 over 6h and 30m. "
                    "Tickets: 3 over 1d and 2h, 1 over 3d and 6h. A window Prometheus holds less than 90% of has no line yet.",
               width=16),
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
        ("Black-box probes: the server seen from outside", [
            timeseries("Probe success (5m)", [s.PROBE_SUCCESS_RATIO], [Query(sel(s.PROBE_SUCCESS_RATIO), "{{probe}} {{instance}}")], width=12),
            timeseries("Probe latency", [s.PROBE_DURATION], [Query(sel(s.PROBE_DURATION), "{{probe}} {{instance}}")], width=12),
        ]),
        ("Alerts", [firing_alerts()]),
    ]
    return dashboard(
        UID,
        "Mistral.rs inference",
        "Mistral.rs inference KPIs, capacity, KV cache and resources, from the shared llm:* recording rules.",
        sections,
        default_engine=mistralrs.ENGINE,
    )
