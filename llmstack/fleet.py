"""Fleet records: the per-instance `llm:*` records aggregated over every instance of an engine.

One series per engine, env and model whatever the number of instances, so a fleet panel costs the
same at 1 instance as at 64, and over 30 days it reads one recorded series instead of every
instance's (or every raw bucket's). They read only the per-instance records, never an engine's raw
metrics, so every engine with a mapping gets them without a change here.

Each expression aggregates the per-instance records directly (the fleet error ratio divides two
sums rather than reading the fleet sums), so no record of this group reads another record of it:
Prometheus evaluates a group's rules in order, but `promtool tsdb create-blocks-from rules` cannot
see records it is backfilling itself.

Alerts never read these: an instance's alert stays about that instance.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import signals as s
from .promql import share
from .signals import FLEET_BY, Signal

GROUP = "llm-fleet"


@dataclass(frozen=True)
class FleetRecord:
    signal: Signal
    expr: str
    reads: tuple[Signal, ...]  # the per-instance records it aggregates
    how: str  # for the docs: how it combines `reads`, which fill its {} in order

    def prometheus_rule(self) -> dict:
        return {"record": self.signal.name, "expr": self.expr}


def _agg(op: str, signal: Signal) -> str:
    return f"{op} by ({FLEET_BY}) ({signal.name})"


def _sum(fleet: Signal, per_instance: Signal) -> FleetRecord:
    return FleetRecord(fleet, _agg("sum", per_instance), (per_instance,), "sum of {} over instances")


def _max(fleet: Signal, per_instance: Signal) -> FleetRecord:
    # Quantiles and utilisations do not add up across instances; the worst one is what pages.
    return FleetRecord(fleet, _agg("max", per_instance), (per_instance,), "the worst instance's {} (max)")


def records() -> list[FleetRecord]:
    return [
        FleetRecord(s.FLEET_INSTANCES, _agg("count", s.REQUESTS_RATE), (s.REQUESTS_RATE,), "instances with {}, counted"),
        _sum(s.FLEET_REQUESTS_RATE, s.REQUESTS_RATE),
        _sum(s.FLEET_ERRORS_RATE, s.ERRORS_RATE),
        FleetRecord(
            s.FLEET_ERROR_RATIO,
            share(_agg("sum", s.ERRORS_RATE), _agg("sum", s.REQUESTS_RATE)),
            (s.ERRORS_RATE, s.REQUESTS_RATE),
            "sum of {} / sum of {}, over instances (a busy instance weighs more than an idle one)",
        ),
        _sum(s.FLEET_TOKENS_PROCESSED_RATE, s.TOKENS_PROCESSED_RATE),
        _sum(s.FLEET_TOKENS_GENERATED_RATE, s.TOKENS_GENERATED_RATE),
        _sum(s.FLEET_IN_FLIGHT, s.IN_FLIGHT),
        _sum(s.FLEET_QUEUE_DEPTH, s.QUEUE_DEPTH),
        _sum(s.FLEET_RUNNING, s.RUNNING),
        _sum(s.FLEET_CAPACITY, s.CAPACITY),
        _max(s.FLEET_LATENCY_P95_MAX, s.LATENCY_P95),
        _max(s.FLEET_TTFT_P95_MAX, s.TTFT_P95),
        _max(s.FLEET_ITL_P95_MAX, s.ITL_P95),
        _max(s.FLEET_KV_CACHE_MAX, s.KV_CACHE_UTILISATION),
    ]


def recording_group() -> dict:
    return {"name": GROUP, "rules": [r.prometheus_rule() for r in records()]}
