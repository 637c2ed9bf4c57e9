"""Every alert the stack defines: the single list the Prometheus rule file, the Grafana rules,
the runbook anchors, the promtool coverage test and the docs' tables all read.

By area: inference.py (latency, TTFT, errors, queue, KV cache, preemptions), slo.py (error-budget
burn rates), targets.py (scrape targets down, flapping or absent), fleet.py (every instance of a
model together), resources.py (GPU, container memory, TSDB, XID), probes.py (black-box
generation probes), and the Watchdog here.
"""

from __future__ import annotations

from ..config import StackConfig
from . import fleet, inference, probes, resources, slo, targets
from .base import AlertRule, alert

WATCHDOG = "Watchdog"


def _watchdog(cfg: StackConfig) -> AlertRule:
    return alert(
        cfg,
        WATCHDOG,
        "vector(1)",
        "0s",
        "none",
        "Alerting pipeline heartbeat (always firing)",
        "This alert always fires. If it stops arriving, rule evaluation or alert delivery is broken.",
    )


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    """Every alert the stack defines, in a stable order."""
    return [
        *inference.alert_rules(cfg),
        *slo.alert_rules(cfg),
        *targets.alert_rules(cfg),
        *fleet.alert_rules(cfg),
        *resources.alert_rules(cfg),
        *probes.alert_rules(cfg),
        _watchdog(cfg),
    ]


__all__ = ["WATCHDOG", "AlertRule", "alert_rules"]
