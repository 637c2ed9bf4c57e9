"""Inference alerts: latency, time to first token, errors, queue, KV cache and preemptions.

Choosing `for` (default 15 s scrape and evaluation intervals; measured with promtool in
bench/alert_detection.py and docs/alerts.md's detection table): critical alerts fire within 3 minutes of
a sustained breach, and no alert fires on a spike shorter than its `for`.

A condition over a window W turns true some time after a breach starts (its onset delay) and stays
true some time after it ends (its tail). A spike of length d keeps the alert pending for d plus the
tail minus the onset delay, so `for` only means "a breach shorter than this never fires" when the
tail is no longer than the onset delay. A high quantile is the worst case: a few slow requests in
the window are enough, so it turns true almost at once and stays true for nearly all of W after the
spike. Two designs keep the tail within the onset delay here:

- Consecutive windows (`base.consecutive`): the signal breaches over the last W AND over the W before
  it (`offset W`). Both windows can only hold the breach if it began at least one window ago, and
  the newer one lets go at most one window after it ends, so the condition is true for about as
  long as the breach lasts: `for` is then the shortest breach that fires, and detection is about
  W + `for`. The quantile alerts, the critical error alert and the preemption alert use it, all
  with W = 1m, the shortest window that holds several 15 s scrapes.
- A ratio turns true when T/L of its window is in breach (threshold T, breach level L) and lets go
  after (1 - T/L) of it, so its tail is within its onset delay only up to L = 2T. The error warning
  reads it over two window lengths at once. Alone, the 1-minute ratio of a total outage holds about
  45 s after the outage ends, which is why the critical error alert reads it in consecutive minutes
  (and needs a minimum number of failed requests, so a couple of failures at low traffic cannot page).

tools/incidents replays bursts, outages and creeps against these rules; docs/incidents.md has the
times and docs/benchmarks.md the trade-offs.
"""

from __future__ import annotations

from .. import signals as s
from ..config import StackConfig
from ..signals import BY, SHORT_WINDOW, Signal
from .base import WHERE, AlertRule, alert, both_windows, consecutive, ratio, tiered


def _quantile_alert_expr(long: Signal, short: Signal, threshold: str) -> str:
    """The 5-minute quantile breaches (a few slow requests at low traffic do not page), and so does
    its 1-minute twin in each of the last two minutes (the alert lets go as fast as it starts)."""
    return f"{long.name} > {threshold} and on ({BY}) {consecutive(short, SHORT_WINDOW, threshold)}"


def _latency_alerts(cfg: StackConfig) -> list[AlertRule]:
    t = cfg.thresholds

    def build(severity: str, seconds: int) -> tuple[str, str, str]:
        return (
            _quantile_alert_expr(s.LATENCY_P95, s.LATENCY_P95_1M, str(seconds)),
            f"p95 request latency above {seconds}s on {{{{ $labels.instance }}}}",
            f"The 95th percentile end-to-end request latency of {WHERE} is "
            f"{{{{ $value | humanizeDuration }}}} over 5 minutes, above the {severity} threshold of {seconds}s "
            f"(and above it in each of the last two minutes too).",
        )

    levels = [
        ("warning", t.latency_p95_warning_seconds, "5m"),
        # Detection is about `for` plus the 1-minute window plus a scrape, and up to two evaluations
        # more on a real server (docs/alerts.md): 1m15s is the longest `for` that keeps that within 3 minutes.
        ("critical", t.latency_p95_critical_seconds, "1m15s"),
    ]
    return tiered(cfg, "LLMHighRequestLatency", levels, build)


def _ttft_alert(cfg: StackConfig) -> AlertRule:
    seconds = cfg.thresholds.ttft_p95_warning_seconds
    return alert(
        cfg,
        "LLMHighTimeToFirstToken",
        _quantile_alert_expr(s.TTFT_P95, s.TTFT_P95_1M, str(seconds)),
        "5m",
        "warning",
        f"p95 time to first token above {seconds}s on {{{{ $labels.instance }}}}",
        f"The 95th percentile time to first token of streamed requests to {WHERE} is "
        f"{{{{ $value | humanizeDuration }}}} over 5 minutes, above the warning threshold of {seconds}s "
        "(and above it in each of the last two minutes too). Requests wait in the queue or prefill is slow.",
    )


def _error_alerts(cfg: StackConfig) -> list[AlertRule]:
    t = cfg.thresholds
    warning, critical = t.error_ratio_warning_percent, t.error_ratio_critical_percent
    summary = "More than {percent}% of inference requests fail on {{{{ $labels.instance }}}}"
    min_failures = f"{s.ERRORS_RATE.name} * 300 >= {t.error_critical_min_failures}"
    # Consecutive 1-minute windows hold about as long as the burst, so `for` is the shortest burst
    # that pages (a 100% burst needs `for` plus about 30s); 45s pages a total outage within 2 minutes.
    critical_for = "45s"
    return [
        alert(
            cfg,
            "LLMHighErrorRatioWarning",
            both_windows(s.ERROR_RATIO, s.ERROR_RATIO_1M, ratio(warning)),
            "5m",
            "warning",
            summary.format(percent=warning),
            f"{{{{ $value | humanizePercentage }}}} of the inference requests to {WHERE} ended in a 5xx "
            f"over 5 minutes, above the warning threshold of {warning}% (and over the last minute too).",
        ),
        # The 1-minute ratio in each of the last two minutes: see the module doc.
        alert(
            cfg,
            "LLMHighErrorRatioCritical",
            f"{consecutive(s.ERROR_RATIO_1M, SHORT_WINDOW, ratio(critical))} and on ({BY}) {min_failures}",
            critical_for,
            "critical",
            summary.format(percent=critical),
            f"{{{{ $value | humanizePercentage }}}} of the inference requests to {WHERE} ended in a 5xx "
            f"over the last minute and the minute before, above the critical threshold of {critical}%, for {critical_for} "
            f"(and at least {t.error_critical_min_failures} requests failed in the last 5 minutes).",
        ),
    ]


def _queue_alert(cfg: StackConfig) -> AlertRule:
    for_ = cfg.thresholds.queue_saturation_for
    on = f"on ({BY})"
    return alert(
        cfg,
        "LLMQueueSaturated",
        f"{s.QUEUE_DEPTH.name} > 0 and {on} ({s.RUNNING.name} >= {on} {s.CAPACITY.name})",
        for_,
        "warning",
        "Requests are queueing on {{ $labels.instance }}: every sequence slot is busy",
        f"{{{{ $value }}}} requests wait for a sequence slot on {WHERE} while every slot is running, "
        f"and it has stayed that way for {for_}. Latency grows with the queue.",
    )


def kv_cache_alerts(cfg: StackConfig) -> list[AlertRule]:
    t = cfg.thresholds

    def build(severity: str, percent: int) -> tuple[str, str, str]:
        return (
            f"{s.KV_CACHE_UTILISATION.name} > {ratio(percent)}",
            f"KV cache more than {percent}% full on {{{{ $labels.instance }}}}",
            f"{{{{ $value | humanizePercentage }}}} of the KV-cache blocks of {WHERE} are in use, above the "
            f"{severity} threshold of {percent}%. New sequences wait and running ones get preempted.",
        )

    levels = [("warning", t.kv_cache_warning_percent, "5m"), ("critical", t.kv_cache_critical_percent, "2m")]
    return tiered(cfg, "LLMKVCacheExhaustion", levels, build)


def _preemption_alert(cfg: StackConfig) -> AlertRule:
    # Consecutive 1-minute windows, for 2m30s: warns within 5 minutes of sustained preemption and
    # lets go within about a minute of the last one; a burst shorter than 2m30s cannot fire. A
    # preemption only every few minutes does not count: the KV-cache alerts watch that pressure.
    for_ = "2m30s"
    return alert(
        cfg,
        "LLMSequencesPreempted",
        consecutive(s.PREEMPTIONS_RATE_1M, SHORT_WINDOW, "0"),
        for_,
        "warning",
        "Sequences keep being preempted on {{ $labels.instance }}",
        f"{WHERE} has preempted running sequences for lack of KV cache in every minute for the last {for_} and more "
        "({{ printf \"%.3g\" $value }} per second now). Preempted sequences are recomputed, which wastes GPU time.",
    )


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    return [
        *_latency_alerts(cfg),
        _ttft_alert(cfg),
        *_error_alerts(cfg),
        _queue_alert(cfg),
        *kv_cache_alerts(cfg),
        _preemption_alert(cfg),
    ]
