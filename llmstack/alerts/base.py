"""What an alert is, and the expression shapes the alerts share.

Alerts are written over the shared `llm:*` series only, so every engine that records a signal gets
the alert, with no per-engine text. Each alert carries a `severity` label and `summary`,
`description` and `runbook_url` annotations; the runbook is the alert's own section of
docs/runbooks.md under the stack's `runbookBaseUrl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ..config import StackConfig
from ..signals import BY, SCHEMA_LABELS, Signal


@dataclass(frozen=True)
class AlertRule:
    name: str  # alertname, CamelCase, e.g. "LLMHighRequestLatencyCritical"
    expr: str  # PromQL over shared-schema series (so every engine gets the alert)
    for_: str  # Prometheus duration
    severity: str  # "critical" | "warning" | "none" (Watchdog only)
    summary: str
    description: str  # may use {{ $labels.x }} / {{ $value }} templates
    runbook_url: str
    labels: Mapping[str, str] = field(default_factory=dict)  # static labels, severity included
    # The labels that say what the alert is about (one instance, one GPU, ...): the labels two alerts
    # must share for one to stand in for the other (inhibitions). Not rendered into the rule.
    identity: tuple[str, ...] = SCHEMA_LABELS

    def prometheus_rule(self) -> dict:
        rule = {
            "alert": self.name,
            "expr": self.expr,
            "labels": dict(self.labels),
            "annotations": {"summary": self.summary, "description": self.description, "runbook_url": self.runbook_url},
        }
        if self.for_ not in ("0s", "0m", ""):
            rule["for"] = self.for_
        return rule


def runbook_anchor(alertname: str) -> str:
    # GitHub's anchor for a `## AlertName` heading is the lower-cased heading.
    return alertname.lower()


def alert(
    cfg: StackConfig,
    name: str,
    expr: str,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    identity: tuple[str, ...] = SCHEMA_LABELS,
) -> AlertRule:
    return AlertRule(
        name=name,
        expr=expr,
        for_=for_,
        severity=severity,
        summary=summary,
        description=description,
        runbook_url=f"{cfg.alerting.runbook_base_url}#{runbook_anchor(name)}",
        labels={"severity": severity},
        identity=identity,
    )


def ratio(percent: int) -> str:
    """A percent threshold as the ratio the records hold: 20 -> 0.2."""
    return f"{percent / 100:g}"


def both_windows(long: Signal, short: Signal, threshold: str) -> str:
    """`long > threshold` while its short-window twin agrees; the alert's value is the long one."""
    return f"{long.name} > {threshold} and on ({BY}) {short.name} > {threshold}"


def consecutive(signal: Signal, window: str, threshold: str) -> str:
    """`signal > threshold` over its window now and over the window before (inference.py explains why)."""
    return f"{signal.name} > {threshold} and on ({BY}) {signal.name} offset {window} > {threshold}"


# Where an inference alert happened, in its description.
WHERE = "{{ $labels.engine }} serving {{ $labels.model }} on {{ $labels.instance }} ({{ $labels.env }})"


def tiered(
    cfg: StackConfig,
    family: str,
    levels: Sequence[tuple[str, Any, str]],
    build: Callable[[str, Any], tuple[str, str, str]],
    identity: tuple[str, ...] = SCHEMA_LABELS,
) -> list[AlertRule]:
    """The warning and critical alerts of one family (`<family>Warning`, `<family>Critical`).

    `levels` holds (severity, threshold, for) per alert; `build(severity, threshold)` returns its
    expression, summary and description."""
    out = []
    for severity, threshold, for_ in levels:
        expr, summary, description = build(severity, threshold)
        out.append(alert(cfg, f"{family}{severity.capitalize()}", expr, for_, severity, summary, description, identity))
    return out
