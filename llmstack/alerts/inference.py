"""The single source of truth for the stack's recording and alerting rules.

Recording rules come from the engine mappings (llmstack/engines.py): one record per signal per
engine, labels `engine`, `env`, `instance`, `model` preserved. Alerts are written once, here, over
those shared-schema series, so every engine that has a signal gets the alert. The Prometheus rule
files (llmstack/prometheus.py), the Grafana rules (llmstack/grafana_alerting.py), the runbooks'
anchors, the promtool coverage test and the README tables all read `alert_rules()`.

Choosing `for` (default 15 s scrape and evaluation intervals; measured with promtool in
bench/alert_detection.py and the README's detection table): critical alerts fire within 3 minutes of
a sustained breach, and no alert fires on a spike shorter than its `for`.

A condition over a window W turns true some time after a breach starts (its onset delay) and stays
true some time after it ends (its tail). A spike of length d keeps the alert pending for d plus the
tail minus the onset delay, so `for` only means "a breach shorter than this never fires" when the
tail is no longer than the onset delay. A high quantile is the worst case: a few slow requests in
the window are enough, so it turns true almost at once and stays true for nearly all of W after the
spike. Two designs keep the tail within the onset delay here:

- Consecutive windows (`_consecutive`): the signal breaches over the last W AND over the W before
  it (`offset W`). Both windows can only hold the breach if it began at least one window ago, and
  the newer one lets go at most one window after it ends, so the condition is true for about as
  long as the breach lasts: `for` is then the shortest breach that fires, and detection is about
  W + `for`. The quantile alerts (W = 1m, the shortest window that holds several 15 s scrapes) and
  the preemption alert (W = 5m, so sporadic preemptions still count) use it.
- A ratio (the error alerts) turns true when T/L of its window is in breach (threshold T, breach
  level L) and lets go after (1 - T/L) of it, so its tail is within its onset delay up to L = 2T.
  The critical error alert reads the 1-minute ratio alone, with a minimum number of failed
  requests so that a couple of failures at low traffic cannot page; the 5-minute ratio it used to
  require took two thirds of its window to pass 20% on a 30% burst, too slow for 3 minutes.
  Beyond L = 2T (a total outage) a spike somewhat shorter than `for` can page; pairing windows
  would fix that at the price of a minute, which the critical alert cannot afford (docs/benchmarks.md).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Mapping

from . import engines, schema
from .config import StackConfig

# Where the runbooks live; every alert links to its own section (anchor = lower-cased alert name).
RUNBOOK_URL_BASE = "https://github.com/example/llmstack/blob/main/docs/runbooks.md"

ALERT_GROUP = "llm-alerts"
BY = engines.BY

# Series every Prometheus has whatever it scrapes: per-target series and the alert state.
# Entries with `*` are fnmatch patterns over metric names.
_BUILTIN_SERIES = frozenset({"up", "scrape_*", "ALERTS", "ALERTS_FOR_STATE"})


@dataclass(frozen=True)
class AlertRule:
    name: str  # alertname, CamelCase, e.g. "LLMHighRequestLatencyCritical"
    expr: str  # PromQL over shared-schema series (so every engine gets the alert)
    for_: str  # Prometheus duration
    severity: str  # "critical" | "warning" | "none" (Watchdog only)
    summary: str
    description: str  # may use {{ $labels.x }} / {{ $value }} templates
    runbook_url: str
    labels: Mapping[str, str] = field(default_factory=dict)  # extra static labels, severity included

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


def runbook_url(alertname: str) -> str:
    # GitHub's anchor for a `## AlertName` heading is the lower-cased heading.
    return f"{RUNBOOK_URL_BASE}#{alertname.lower()}"


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, description: str) -> AlertRule:
    return AlertRule(
        name=name,
        expr=expr,
        for_=for_,
        severity=severity,
        summary=summary,
        description=description,
        runbook_url=runbook_url(name),
        labels={"severity": severity},
    )


def _ratio(percent: int) -> str:
    return f"{percent / 100:g}"


def _both_windows(long: schema.Signal, short: schema.Signal, threshold: str) -> str:
    """`long > threshold` while its short-window twin agrees; the alert's value is the long one."""
    return f"{long.name} > {threshold} and on ({BY}) {short.name} > {threshold}"


def _consecutive(signal: schema.Signal, window: str, threshold: str) -> str:
    """`signal > threshold` over its window now and over the window before (see the module doc)."""
    return f"{signal.name} > {threshold} and on ({BY}) {signal.name} offset {window} > {threshold}"


def _quantile_alert_expr(long: schema.Signal, short: schema.Signal, threshold: str) -> str:
    """The 5-minute quantile breaches (a few slow requests at low traffic do not page), and so does
    its 1-minute twin in each of the last two minutes (the alert lets go as fast as it starts)."""
    return f"{long.name} > {threshold} and on ({BY}) {_consecutive(short, engines.SHORT_WINDOW, threshold)}"


# The critical error alert reads a 1-minute ratio, where two failures out of five requests are 40%.
# It also needs this many failed requests over the last 5 minutes, so a couple of failures at low
# traffic cannot page; at the 5 requests/s of a small server, a 20% breach has them within 10 s.
MIN_FAILED_REQUESTS_5M = 10


_WHERE = "{{ $labels.engine }} serving {{ $labels.model }} on {{ $labels.instance }} ({{ $labels.env }})"


# ---------------------------------------------------------------------------------------------
# Alert definitions. Add new ones to alert_rules() (issue 6: resource alerts) with promtool tests.
# ---------------------------------------------------------------------------------------------


def _latency_alerts(cfg: StackConfig) -> list[AlertRule]:
    t = cfg.thresholds
    out = []
    for severity, seconds, for_ in (
        ("warning", t.latency_p95_warning_seconds, "5m"),
        # Detection is about `for` plus the 1-minute window plus a scrape, and up to two evaluations
        # more on a real server (README): 1m15s is the longest `for` that keeps that within 3 minutes.
        ("critical", t.latency_p95_critical_seconds, "1m15s"),
    ):
        out.append(
            _alert(
                f"LLMHighRequestLatency{severity.capitalize()}",
                _quantile_alert_expr(schema.LATENCY_P95, engines.LATENCY_P95_1M, str(seconds)),
                for_,
                severity,
                f"p95 request latency above {seconds}s on {{{{ $labels.instance }}}}",
                f"The 95th percentile end-to-end request latency of {_WHERE} is "
                f"{{{{ $value | humanizeDuration }}}} over 5 minutes, above the {severity} threshold of {seconds}s "
                f"(and above it in each of the last two minutes too).",
            )
        )
    return out


def _ttft_alert(cfg: StackConfig) -> AlertRule:
    seconds = cfg.thresholds.ttft_p95_warning_seconds
    return _alert(
        "LLMHighTimeToFirstToken",
        _quantile_alert_expr(schema.TTFT_P95, engines.TTFT_P95_1M, str(seconds)),
        "5m",
        "warning",
        f"p95 time to first token above {seconds}s on {{{{ $labels.instance }}}}",
        f"The 95th percentile time to first token of streamed requests to {_WHERE} is "
        f"{{{{ $value | humanizeDuration }}}} over 5 minutes, above the warning threshold of {seconds}s "
        "(and above it in each of the last two minutes too). Requests wait in the queue or prefill is slow.",
    )


def _error_alerts(cfg: StackConfig) -> list[AlertRule]:
    t = cfg.thresholds
    warning, critical = t.error_ratio_warning_percent, t.error_ratio_critical_percent
    summary = "More than {percent}% of inference requests fail on {{{{ $labels.instance }}}}"
    min_failures = f"{schema.ERRORS_RATE.name} * 300 >= {MIN_FAILED_REQUESTS_5M}"
    # 1m30s keeps a 30% burst within 3 minutes, onset to page, in the worst rule-group phase.
    critical_for = "1m30s"
    return [
        _alert(
            "LLMHighErrorRatioWarning",
            _both_windows(schema.ERROR_RATIO, engines.ERROR_RATIO_1M, _ratio(warning)),
            "5m",
            "warning",
            summary.format(percent=warning),
            f"{{{{ $value | humanizePercentage }}}} of the inference requests to {_WHERE} ended in a 5xx "
            f"over 5 minutes, above the warning threshold of {warning}% (and over the last minute too).",
        ),
        # The 1-minute ratio alone: see the module doc.
        _alert(
            "LLMHighErrorRatioCritical",
            f"{engines.ERROR_RATIO_1M.name} > {_ratio(critical)} and on ({BY}) {min_failures}",
            critical_for,
            "critical",
            summary.format(percent=critical),
            f"{{{{ $value | humanizePercentage }}}} of the inference requests to {_WHERE} ended in a 5xx "
            f"over the last minute, above the critical threshold of {critical}% for {critical_for} "
            f"(and at least {MIN_FAILED_REQUESTS_5M} requests failed in the last 5 minutes).",
        ),
    ]


def _queue_alert(cfg: StackConfig) -> AlertRule:
    for_ = cfg.thresholds.queue_saturation_for
    on = f"on ({BY})"
    return _alert(
        "LLMQueueSaturated",
        f"{schema.QUEUE_DEPTH.name} > 0 and {on} ({schema.RUNNING.name} >= {on} {schema.CAPACITY.name})",
        for_,
        "warning",
        "Requests are queueing on {{ $labels.instance }}: every sequence slot is busy",
        f"{{{{ $value }}}} requests wait for a sequence slot on {_WHERE} while every slot is running, "
        f"and it has stayed that way for {for_}. Latency grows with the queue.",
    )


def _kv_cache_alerts(cfg: StackConfig) -> list[AlertRule]:
    t = cfg.thresholds
    out = []
    for severity, percent, for_ in (
        ("warning", t.kv_cache_warning_percent, "5m"),
        ("critical", t.kv_cache_critical_percent, "2m"),
    ):
        out.append(
            _alert(
                f"LLMKVCacheExhaustion{severity.capitalize()}",
                f"{schema.KV_CACHE_UTILISATION.name} > {_ratio(percent)}",
                for_,
                severity,
                f"KV cache more than {percent}% full on {{{{ $labels.instance }}}}",
                f"{{{{ $value | humanizePercentage }}}} of the KV-cache blocks of {_WHERE} are in use, above the "
                f"{severity} threshold of {percent}%. New sequences wait and running ones get preempted.",
            )
        )
    return out


def _preemption_alert(cfg: StackConfig) -> AlertRule:
    # Consecutive 5-minute windows, for 5m: the same 10 minutes of evidence as `rate5m > 0` for 10m
    # had, and a preemption every few minutes still counts, but a burst shorter than 5m cannot fire.
    return _alert(
        "LLMSequencesPreempted",
        _consecutive(schema.PREEMPTIONS_RATE, engines.WINDOW, "0"),
        "5m",
        "warning",
        "Sequences keep being preempted on {{ $labels.instance }}",
        f"{_WHERE} has preempted running sequences for lack of KV cache in each of the last two 5-minute windows, "
        "for 5 minutes ({{ printf \"%.3g\" $value }} per second now). Preempted sequences are recomputed, "
        "which wastes GPU time.",
    )


def _target_alerts(cfg: StackConfig) -> list[AlertRule]:
    jobs = engines.engine_jobs(cfg)
    # `up == 0` can only match a job Prometheus scrapes, so the down alert names every engine's job,
    # scraped here or not (the Ollama jobs exist only with ollamaTargets); absent() must name only
    # the scraped ones, or it would fire for an engine this stack never had.
    job_regex = "|".join(engines.engine_jobs(cfg, scraped_only=False))
    absent = " or ".join(f'absent(up{{job="{job}", env="{cfg.env}"}})' for job in jobs)
    return [
        _alert(
            "LLMTargetDown",
            f'up{{job=~"{job_regex}"}} == 0',
            "2m",
            "critical",
            "Prometheus cannot scrape {{ $labels.job }} on {{ $labels.instance }}",
            "The {{ $labels.job }} target {{ $labels.instance }} ({{ $labels.env }}) has failed every scrape "
            "for 2 minutes: the inference server is down, restarting, still loading its model, or unreachable.",
        ),
        _alert(
            "LLMTargetAbsent",
            absent,
            "2m",
            "critical",
            "Prometheus has no {{ $labels.job }} target in {{ $labels.env }}",
            "There is no up series for the {{ $labels.job }} job in {{ $labels.env }}: Prometheus is not "
            "configured to scrape it, so nothing about it is monitored or alerted on.",
        ),
    ]


def _watchdog(cfg: StackConfig) -> AlertRule:
    return _alert(
        "Watchdog",
        "vector(1)",
        "0s",
        "none",
        "Alerting pipeline heartbeat (always firing)",
        "This alert always fires. If it stops arriving, rule evaluation or alert delivery is broken.",
    )


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    """Every alert the stack defines, in a stable order."""
    from . import resource_rules  # it builds on this module, so it is imported when needed

    return [
        *_latency_alerts(cfg),
        _ttft_alert(cfg),
        *_error_alerts(cfg),
        _queue_alert(cfg),
        *_kv_cache_alerts(cfg),
        _preemption_alert(cfg),
        *_target_alerts(cfg),
        *resource_rules.alert_rules(cfg),
        _watchdog(cfg),
    ]


# ---------------------------------------------------------------------------------------------
# Prometheus rule groups
# ---------------------------------------------------------------------------------------------


def recording_groups(cfg: StackConfig) -> list[dict]:
    """One group per engine mapping, one record per signal it provides; then the resource records."""
    from . import resource_rules

    return [
        {
            "name": f"llm-schema-{m.name}",
            "rules": [{"record": signal.name, "expr": expr} for signal, expr in m.signals.items()],
        }
        for m in engines.mappings(cfg)
    ] + resource_rules.recording_groups(cfg)


def alerting_groups(cfg: StackConfig) -> list[dict]:
    return [{"name": ALERT_GROUP, "rules": [a.prometheus_rule() for a in alert_rules(cfg)]}]


def produced_series(cfg: StackConfig) -> set[str]:
    """Every metric name this stack's Prometheus holds: scraped series left after relabelling and
    dropping, recording rule names, and the built-in ones. Entries with `*` are fnmatch patterns."""
    # prometheus.py imports this module for the rule files, so import it here, when needed.
    from .prometheus import scrape_jobs

    names = set(_BUILTIN_SERIES)
    for job in scrape_jobs(cfg):
        names |= job.series
    for group in recording_groups(cfg):
        names |= {rule["record"] for rule in group["rules"]}
    return names


def is_produced(metric: str, produced: set[str]) -> bool:
    """Whether `metric` is one of `produced` (names or fnmatch patterns)."""
    return metric in produced or any(fnmatch.fnmatchcase(metric, p) for p in produced if "*" in p)
