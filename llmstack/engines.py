"""Engine mappings: how each engine's raw metrics become the shared `llm:*` schema.

An `EngineMapping` says, for one engine or exporter, the PromQL that computes each
`schema.Signal` it can provide from that engine's raw series (as they are stored, after the scrape
job's relabelling). Everything else derives from these mappings:

- llmstack/rules.py records one series per signal per mapping, and writes its alerts over the
  shared names only, so every engine with the signal gets the alert;
- llmstack/prometheus.py keeps exactly the raw metrics the mappings read and drops the rest;
- the README's recording-rule table comes from here.

Adding an engine or exporter (Ollama, vLLM, DCGM, ...) means writing one more mapping function and
listing it in `_BUILDERS`; no rule, alert, keep-list or dashboard is edited by hand.

Conventions every expression follows, so the rest can rely on them:
- every raw selector names its metric and its job: `metric{job="...", ...}`; `raw_metrics` reads the
  names back from that shape;
- every result is aggregated `by (engine, env, instance, model)` (schema.SCHEMA_LABELS), the labels
  the scrape job attaches, so records of different engines line up label for label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from . import schema
from .config import StackConfig
from .schema import Signal

BY = ", ".join(schema.SCHEMA_LABELS)
# The window of every rate and quantile in the shared schema (the `5m` in the names).
WINDOW = "5m"

# Short-window twins of three schema signals. The latency, TTFT and error-ratio alerts require the 5m
# signal AND its 1m twin to breach (multi-window alerting): the 5m window keeps a few slow requests at
# low traffic from paging, the 1m window lets an alert clear within about a minute of recovery, so a
# spike shorter than the alert's `for` cannot keep it pending long enough to fire. They are shared
# schema series like the others (every engine maps them); they live here until schema.py takes them.
SHORT_WINDOW = "1m"
LATENCY_P95_1M = Signal(
    "llm:request_latency_seconds:p95_1m", "s", "95th percentile end-to-end request latency over 1 minute (alerting)."
)
TTFT_P95_1M = Signal(
    "llm:ttft_seconds:p95_1m", "s", "95th percentile time to first token over 1 minute (streamed requests; alerting)."
)
ERROR_RATIO_1M = Signal(
    "llm:request_error_ratio:rate1m", "percentunit", "Share of inference requests that ended in a 5xx over 1 minute (alerting)."
)
ALERT_WINDOW_SIGNALS = (LATENCY_P95_1M, TTFT_P95_1M, ERROR_RATIO_1M)

# `name{` is the only place a metric name meets a brace in our expressions (see the conventions).
_SELECTOR_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


@dataclass(frozen=True)
class EngineMapping:
    name: str  # the mapping's id; also names its recording rule group
    job: str  # the scrape job whose series the expressions read
    # The `engine` label value the scrape job attaches; None for a resource exporter (cAdvisor, DCGM),
    # whose job the inference target alerts do not watch.
    engine: Optional[str]
    signals: Mapping[Signal, str]  # signal -> PromQL over the job's stored series, in a stable order
    # What a signal means for this engine when it is not quite the schema's wording.
    caveats: Mapping[Signal, str] = field(default_factory=dict)
    # Whether this stack scrapes the engine at all (the target-absent alert only watches those).
    enabled: Callable[[StackConfig], bool] = lambda cfg: True

    @property
    def raw_metrics(self) -> frozenset[str]:
        """Every stored metric name the expressions read: the job's keep-list."""
        return frozenset(name for expr in self.signals.values() for name in _SELECTOR_RE.findall(expr))


# ---------------------------------------------------------------------------------------------
# Mistral.rs: native /metrics, v0.9.2 and newer (mistralrs-server-core/src/metrics.rs and streaming.rs,
# mistralrs-core/src/engine/logger.rs and paged_attention/scheduler.rs)
# ---------------------------------------------------------------------------------------------

MISTRAL_JOB = "mistral"
MISTRAL_ENGINE = "mistralrs"
# The scrape job renames the HTTP layer's metrics with this prefix (llmstack/prometheus.py), so they
# cannot collide with another job's http_*; the engine's own mistralrs_* names are stored as they are.
MISTRAL_HTTP_PREFIX = "mistral_"
MISTRAL_HTTP_METRICS = (
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "http_requests_in_flight",
)
# Inference traffic: the OpenAI/Anthropic-compatible API routes (`path` is the route pattern).
_API = 'path=~"/v1/.*"'
_SERVER_ERROR = 'status=~"5.."'


def _mistralrs(cfg: StackConfig) -> EngineMapping:
    def sel(metric: str, *matchers: str) -> str:
        return metric + "{" + ", ".join((f'job="{MISTRAL_JOB}"',) + matchers) + "}"

    def by(expr: str) -> str:
        return f"sum by ({BY}) ({expr})"

    def rate(metric: str, window: str, *matchers: str) -> str:
        return by(f"rate({sel(metric, *matchers)}[{window}])")

    def quantile(q: float, histogram: str, window: str) -> str:
        return f"histogram_quantile({q}, sum by (le, {BY}) (rate({sel(histogram + '_bucket', _API)}[{window}])))"

    requests_total = "mistral_http_requests_total"
    duration = "mistral_http_request_duration_seconds"
    ttft = "mistralrs_time_to_first_token_seconds"
    itl = "mistralrs_inter_token_latency_seconds"

    def requests(window: str) -> str:
        return rate(requests_total, window, _API)

    def errors(window: str) -> str:
        # The 5xx series only exists after the first 5xx; until then the rate is 0, not missing.
        return f"({rate(requests_total, window, _API, _SERVER_ERROR)} or {requests(window)} * 0)"

    def error_ratio(window: str) -> str:
        return f"{errors(window)} / {requests(window)}"

    kv_total = by(sel("mistralrs_kv_cache_blocks_total"))
    lookups = rate("mistralrs_prefix_cache_lookups_total", WINDOW)
    signals = {
        schema.REQUESTS_RATE: requests(WINDOW),
        schema.ERRORS_RATE: errors(WINDOW),
        schema.ERROR_RATIO: error_ratio(WINDOW),
        ERROR_RATIO_1M: error_ratio(SHORT_WINDOW),
        schema.LATENCY_AVG: f"{rate(duration + '_sum', WINDOW, _API)} / {rate(duration + '_count', WINDOW, _API)}",
        schema.LATENCY_P50: quantile(0.5, duration, WINDOW),
        schema.LATENCY_P95: quantile(0.95, duration, WINDOW),
        schema.LATENCY_P99: quantile(0.99, duration, WINDOW),
        LATENCY_P95_1M: quantile(0.95, duration, SHORT_WINDOW),
        schema.TTFT_P95: quantile(0.95, ttft, WINDOW),
        TTFT_P95_1M: quantile(0.95, ttft, SHORT_WINDOW),
        schema.ITL_P95: quantile(0.95, itl, WINDOW),
        schema.TOKENS_PROCESSED_RATE: rate("mistralrs_tokens_processed_total", WINDOW),
        # One TTFT sample for the first token step of a streamed request, one ITL sample per later step.
        schema.TOKENS_GENERATED_RATE: f"{rate(itl + '_count', WINDOW, _API)} + {rate(ttft + '_count', WINDOW, _API)}",
        schema.IN_FLIGHT: by(sel("mistral_http_requests_in_flight", _API)),
        schema.QUEUE_DEPTH: by(sel("mistralrs_sequences_waiting")),
        schema.RUNNING: by(sel("mistralrs_sequences_running")),
        # v0.9.2 has no capacity gauge (it arrived after that release); until the pinned release has
        # it, the capacity is the --max-seqs the stack starts the server with.
        schema.CAPACITY: f"{by(sel('mistralrs_sequences_capacity'))} or {by(sel('mistralrs_sequences_running'))} * 0 + {cfg.mistral.max_seqs}",
        # The blocks gauges exist only with paged attention; a total of 0 means no paged KV cache.
        schema.KV_CACHE_UTILISATION: f"{by(sel('mistralrs_kv_cache_blocks_used'))} / ({kv_total} > 0)",
        # The counter appears with the first preemption; with paged attention on, none yet means 0.
        schema.PREEMPTIONS_RATE: f"{rate('mistralrs_paged_preemptions_total', WINDOW)} or {kv_total} * 0",
        schema.PREFIX_CACHE_HIT_RATIO: f"({rate('mistralrs_prefix_cache_hits_total', WINDOW)} or {lookups} * 0) / ({lookups} > 0)",
    }
    caveats = {
        schema.TOKENS_GENERATED_RATE: (
            "Streamed requests only: counted from the TTFT and inter-token-latency histograms, one sample "
            "per engine token step; non-streamed completions are not counted, and a speculative-decoding "
            "step that emits several tokens counts once."
        ),
        schema.TTFT_P95: "Streamed requests only (the histogram is recorded for text/event-stream responses).",
        TTFT_P95_1M: "Streamed requests only.",
        schema.ITL_P95: "Streamed requests only.",
        schema.CAPACITY: (
            f"mistralrs_sequences_capacity when the server exports it (after v0.9.2), else the configured "
            f"--max-seqs ({cfg.mistral.max_seqs})."
        ),
        schema.KV_CACHE_UTILISATION: "Paged attention only (the KV-cache block gauges); absent with --paged-attn off.",
        schema.PREEMPTIONS_RATE: "Paged attention only.",
    }
    return EngineMapping(name=MISTRAL_ENGINE, job=MISTRAL_JOB, engine=MISTRAL_ENGINE, signals=signals, caveats=caveats)


# One function per engine or exporter. Add the next one here (issue 7: Ollama exporters).
_BUILDERS: tuple[Callable[[StackConfig], EngineMapping], ...] = (_mistralrs,)


def mappings(cfg: StackConfig) -> list[EngineMapping]:
    """Every engine mapping, in a stable order."""
    return [build(cfg) for build in _BUILDERS]


def raw_metrics_for_job(cfg: StackConfig, job: str) -> frozenset[str]:
    """The stored metric names the mappings read from `job`: what its scrape must keep."""
    return frozenset().union(*(m.raw_metrics for m in mappings(cfg) if m.job == job))


def engine_jobs(cfg: StackConfig) -> list[str]:
    """The scrape jobs that carry an inference engine this stack watches, without duplicates."""
    return sorted({m.job for m in mappings(cfg) if m.engine and m.enabled(cfg)})
