"""The "LLM fleet" dashboard: one page that reads the same at 1 instance and at 64.

A dashboard of its own rather than rows on "Mistral.rs inference": that one draws one line per
instance in every panel, which is what you want for a handful of servers and unreadable at 64, and
its uid and layout stay as they are. No panel here draws a line per instance: one per engine and
model, or the 5 worst instances at any moment:

- Fleet totals: the fleet records (llmstack/fleet.py), one series per engine and model summed over
  every instance, so their cost does not grow with the fleet. They are the whole fleet of the
  selected env and engine; the instance variable does not narrow them.
- Worst instance: the fleet's max of each per-instance quantile and of the KV cache (quantiles do
  not add up across instances; the worst is what an alert would page on).
- Top 5: which instances those are, among the ones the instance variable selects. Each step picks
  its own five, so over a long range the legend lists every instance that was ever among them
  (55 to 64 of 64 over 30 days in docs/benchmarks.md).
- One collapsed row per selected instance (repeated over the instance variable) with that
  instance's own KPIs, opened one at a time.

Only llm:* series, so any engine with a mapping shows up.
"""

from __future__ import annotations

from .. import signals as s
from ..signals import Signal
from .panels import FLEET_FILTER, Panel, Query, RepeatedRow, dashboard, firing_alerts, sel, stat, timeseries

UID = "llmstack-llm-fleet"
TOP_K = 5

WHOLE_FLEET = "The whole fleet of the selected env and engine: the instance variable does not narrow it."
PER_MODEL = "{{engine}} {{model}}"
TOP = (f"The {TOP_K} worst of the selected instances at each moment; over a long range an instance shows "
       f"for the stretches it was among them.")


def _fleet(signal: Signal) -> str:
    return sel(signal, FLEET_FILTER)


def _total(title: str, signal: Signal, width: int = 8, note: str = WHOLE_FLEET) -> Panel:
    return timeseries(title, [signal], [Query(_fleet(signal), PER_MODEL)], note=note, width=width)


def _pair(title: str, a: tuple[str, Signal], b: tuple[str, Signal], width: int = 8, note: str = WHOLE_FLEET) -> Panel:
    return timeseries(title, [a[1], b[1]], [Query(_fleet(a[1]), f"{a[0]} {PER_MODEL}"), Query(_fleet(b[1]), f"{b[0]} {PER_MODEL}")],
                      note=note, width=width)


def _top(title: str, signal: Signal, width: int = 8) -> Panel:
    return timeseries(title, [signal], [Query(f"topk({TOP_K}, {sel(signal)})", "{{instance}}")], note=TOP, width=width)


def _instance(title: str, signal: Signal, width: int = 8) -> Panel:
    return timeseries(title, [signal], [Query(sel(signal), "{{model}}")], width=width)


def build() -> dict:
    sections = [
        ("Fleet totals", [
            stat("Instances", s.FLEET_INSTANCES, Query(_fleet(s.FLEET_INSTANCES), PER_MODEL), note=WHOLE_FLEET, width=4),
            _total("Requests per second", s.FLEET_REQUESTS_RATE, width=10),
            _total("5xx errors per second", s.FLEET_ERRORS_RATE, width=10),
            _total("Error ratio (5xx)", s.FLEET_ERROR_RATIO, width=6),
            _pair("Token throughput", ("processed", s.FLEET_TOKENS_PROCESSED_RATE), ("generated", s.FLEET_TOKENS_GENERATED_RATE), width=6),
            _pair("Requests in flight and queued", ("in flight", s.FLEET_IN_FLIGHT), ("queued", s.FLEET_QUEUE_DEPTH), width=6),
            _pair("Running sequences vs capacity", ("running", s.FLEET_RUNNING), ("capacity", s.FLEET_CAPACITY), width=6),
        ]),
        ("Worst instance", [
            _total("Latency p95, worst instance", s.FLEET_LATENCY_P95_MAX, width=6),
            _total("Time to first token p95, worst instance", s.FLEET_TTFT_P95_MAX, width=6),
            _total("Inter-token latency p95, worst instance", s.FLEET_ITL_P95_MAX, width=6),
            _total("KV-cache utilisation, fullest instance", s.FLEET_KV_CACHE_MAX, width=6),
        ]),
        (f"Top {TOP_K} instances", [
            _top(f"Error ratio (5xx): top {TOP_K}", s.ERROR_RATIO),
            _top(f"Latency p95: top {TOP_K}", s.LATENCY_P95),
            _top(f"KV-cache utilisation: top {TOP_K}", s.KV_CACHE_UTILISATION),
        ]),
        ("Alerts", [firing_alerts()]),
        RepeatedRow("Instance $instance", "instance", [
            _instance("Requests per second", s.REQUESTS_RATE),
            timeseries("Latency: average and p95", [s.LATENCY_AVG, s.LATENCY_P95], [
                Query(sel(s.LATENCY_AVG), "avg {{model}}"),
                Query(sel(s.LATENCY_P95), "p95 {{model}}"),
            ]),
            _instance("Error ratio (5xx)", s.ERROR_RATIO),
            timeseries("Token throughput", [s.TOKENS_PROCESSED_RATE, s.TOKENS_GENERATED_RATE], [
                Query(sel(s.TOKENS_PROCESSED_RATE), "processed {{model}}"),
                Query(sel(s.TOKENS_GENERATED_RATE), "generated {{model}}"),
            ]),
            timeseries("Running sequences vs capacity", [s.RUNNING, s.CAPACITY], [
                Query(sel(s.RUNNING), "running {{model}}"),
                Query(sel(s.CAPACITY), "capacity {{model}}"),
            ]),
            _instance("KV-cache utilisation", s.KV_CACHE_UTILISATION),
        ]),
    ]
    return dashboard(
        UID,
        "LLM fleet",
        "Every inference instance at once: fleet totals, the worst instance, the top 5, and one row per instance. "
        "Reads the same at 1 instance as at 64; fleet panels read the fleet records.",
        sections,
        default_engine=None,
    )
