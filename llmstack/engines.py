"""Engine mappings: how each engine's raw metrics become the shared `llm:*` schema.

An `EngineMapping` says, for one engine or exporter, the PromQL that computes each
`schema.Signal` it can provide from that engine's raw series (as they are stored, after the scrape
job's relabelling). Everything else derives from these mappings:

- llmstack/rules.py records one series per signal per mapping, and writes its alerts over the
  shared names only, so every engine with the signal gets the alert;
- llmstack/prometheus.py keeps exactly the raw metrics the mappings read and drops the rest;
- the README's recording-rule table and its signal-by-signal engine table come from here.

Adding an engine or exporter (vLLM, another Ollama exporter, ...) means writing one more mapping
function and listing it in `_BUILDERS`; no rule, alert, keep-list or dashboard is edited by hand.

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

# Short-window twins of three schema signals, read only by alerts (llmstack/rules.py explains the
# designs): the latency and TTFT alerts require the 5m quantile AND the 1m twin now AND the 1m twin one
# window ago, so an alert lets go about as fast as it starts; the error warning requires the 5m ratio
# AND its 1m twin; the critical error alert reads the 1m ratio alone, so it pages within 3 minutes. 1m is the shortest window that holds several 15 s scrapes
# (a 30s one can hold a single sample and flap). They are shared schema series like the others (every
# engine maps them); they live here until schema.py takes them.
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
    # Where the raw metrics come from, for the README (the engine itself, or which exporter).
    source: str = ""

    @property
    def raw_metrics(self) -> frozenset[str]:
        """Every stored metric name the expressions read: the job's keep-list."""
        return frozenset(name for expr in self.signals.values() for name in _SELECTOR_RE.findall(expr))


@dataclass(frozen=True)
class _Promql:
    """PromQL over one job's stored series, written the way the conventions above require."""

    job: str

    def sel(self, metric: str, *matchers: str) -> str:
        return metric + "{" + ", ".join((f'job="{self.job}"',) + matchers) + "}"

    def by(self, expr: str) -> str:
        return f"sum by ({BY}) ({expr})"

    def rate(self, metric: str, window: str, *matchers: str) -> str:
        return self.by(f"rate({self.sel(metric, *matchers)}[{window}])")

    def quantile(self, q: float, histogram: str, window: str, *matchers: str) -> str:
        return f"histogram_quantile({q}, sum by (le, {BY}) (rate({self.sel(histogram + '_bucket', *matchers)}[{window}])))"


# Building blocks shared by engines whose HTTP metrics look alike (mistral.rs, the seed naming).
_SERVER_ERROR = 'status=~"5.."'


def _request_signals(p: _Promql, requests_total: str, *matchers: str) -> dict[Signal, str]:
    """Request and 5xx rates from an HTTP counter with a `status` label."""

    def requests(window: str) -> str:
        return p.rate(requests_total, window, *matchers)

    def errors(window: str) -> str:
        # The 5xx series only exists after the first 5xx; until then the rate is 0, not missing.
        return f"({p.rate(requests_total, window, *matchers, _SERVER_ERROR)} or {requests(window)} * 0)"

    def error_ratio(window: str) -> str:
        return f"{errors(window)} / {requests(window)}"

    return {
        schema.REQUESTS_RATE: requests(WINDOW),
        schema.ERRORS_RATE: errors(WINDOW),
        schema.ERROR_RATIO: error_ratio(WINDOW),
        ERROR_RATIO_1M: error_ratio(SHORT_WINDOW),
    }


def _latency_signals(p: _Promql, histogram: str, *matchers: str) -> dict[Signal, str]:
    """Mean and quantiles of end-to-end request latency from a seconds histogram."""
    return {
        schema.LATENCY_AVG: f"{p.rate(histogram + '_sum', WINDOW, *matchers)} / {p.rate(histogram + '_count', WINDOW, *matchers)}",
        schema.LATENCY_P50: p.quantile(0.5, histogram, WINDOW, *matchers),
        schema.LATENCY_P95: p.quantile(0.95, histogram, WINDOW, *matchers),
        schema.LATENCY_P99: p.quantile(0.99, histogram, WINDOW, *matchers),
        LATENCY_P95_1M: p.quantile(0.95, histogram, SHORT_WINDOW, *matchers),
    }


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


def _mistralrs(cfg: StackConfig) -> EngineMapping:
    p = _Promql(MISTRAL_JOB)
    sel, by, rate = p.sel, p.by, p.rate
    duration = "mistral_http_request_duration_seconds"
    ttft = "mistralrs_time_to_first_token_seconds"
    itl = "mistralrs_inter_token_latency_seconds"

    kv_total = by(sel("mistralrs_kv_cache_blocks_total"))
    lookups = rate("mistralrs_prefix_cache_lookups_total", WINDOW)
    signals = {
        **_request_signals(p, "mistral_http_requests_total", _API),
        **_latency_signals(p, duration, _API),
        schema.TTFT_P95: p.quantile(0.95, ttft, WINDOW, _API),
        TTFT_P95_1M: p.quantile(0.95, ttft, SHORT_WINDOW, _API),
        schema.ITL_P95: p.quantile(0.95, itl, WINDOW, _API),
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
    return EngineMapping(
        name=MISTRAL_ENGINE,
        job=MISTRAL_JOB,
        engine=MISTRAL_ENGINE,
        signals=signals,
        caveats=caveats,
        source="mistral.rs's own /metrics",
    )


# ---------------------------------------------------------------------------------------------
# Ollama: no /metrics of its own (ollama/ollama#3144), so an exporter or metrics proxy runs beside
# it. Each exporter kind names its metrics differently, so each kind is one scrape job and one
# mapping; cfg.prometheus.ollama_targets says which kind every target is.
# ---------------------------------------------------------------------------------------------

OLLAMA_ENGINE = "ollama"
# Ollama's inference routes (server/routes.go): the native generate, chat and embedding routes, and
# everything under /v1/ (OpenAI- and Anthropic-compatible), like mistral.rs's /v1/ filter.
_OLLAMA_NATIVE_INFERENCE = "chat|embed|embeddings|generate"


def ollama_job(exporter: str) -> str:
    """The scrape job of one exporter kind (config.OLLAMA_EXPORTERS)."""
    return f"ollama-{exporter}"


def _scrapes(exporter: str) -> Callable[[StackConfig], bool]:
    return lambda cfg: any(t.exporter == exporter for t in cfg.prometheus.ollama_targets)


def _ollama_norskhelsenett(cfg: StackConfig) -> EngineMapping:
    """NorskHelsenett/ollama-metrics, a Go proxy in front of Ollama (main.go).

    It records a request only when it can read a model name from the response (generate, chat and
    /v1/ routes) or the request body (other routes), so failed requests leave no trace: there is no
    status label and no error signal. No queue, in-flight or time-to-first-token metric either.
    """
    p = _Promql(ollama_job("norskhelsenett"))
    duration = "ollama_request_duration_seconds"
    # `endpoint` is the request path without its /api/ prefix (/v1/ paths stay whole); the filter
    # leaves out model management (pull, show, ...), whose durations are not inference latency.
    inference = f'endpoint=~"{_OLLAMA_NATIVE_INFERENCE}|/v1/.*"'
    prompt = p.rate("ollama_prompt_tokens_total", WINDOW)
    generated = p.rate("ollama_generated_tokens_total", WINDOW)
    signals = {
        schema.REQUESTS_RATE: p.rate(duration + "_count", WINDOW, inference),
        **_latency_signals(p, duration, inference),
        schema.ITL_P95: p.quantile(0.95, "ollama_time_per_token_seconds", WINDOW),
        # The proxy adds only counts above 0, so a model can have one counter without the other
        # (an embedding model has no generated tokens); it still gets a sum.
        schema.TOKENS_PROCESSED_RATE: f"({prompt} + {generated}) or {prompt} or {generated}",
        schema.TOKENS_GENERATED_RATE: generated,
    }
    capped = "Successful requests only; the buckets end at 60s, so a quantile above 60s reads 60s."
    caveats = {
        schema.REQUESTS_RATE: "Successful requests only: the proxy records nothing for a response without a model name (an error).",
        schema.LATENCY_AVG: "Successful requests only.",
        schema.LATENCY_P50: capped,
        schema.LATENCY_P95: capped,
        schema.LATENCY_P99: capped,
        LATENCY_P95_1M: capped,
        schema.ITL_P95: (
            "Native /api/chat and /api/generate only: over requests, each request's mean time per generated "
            "token (Ollama's eval_duration / eval_count), not over single tokens."
        ),
        schema.TOKENS_PROCESSED_RATE: "Prompt plus generated tokens as Ollama reports them per successful request.",
        schema.TOKENS_GENERATED_RATE: (
            "Streamed and non-streamed alike: Ollama's eval_count, or the OpenAI-style usage on /v1/ routes when "
            "the response carries it."
        ),
    }
    return EngineMapping(
        name=ollama_job("norskhelsenett"),
        job=ollama_job("norskhelsenett"),
        engine=OLLAMA_ENGINE,
        signals=signals,
        caveats=caveats,
        enabled=_scrapes("norskhelsenett"),
        source="NorskHelsenett/ollama-metrics",
    )


def _ollama_seed(cfg: StackConfig) -> EngineMapping:
    """The naming of the original request: ollama_http_requests_total and
    ollama_http_request_duration_seconds, from no known exporter. This project defines them as
    mistral.rs's HTTP counter and histogram with an `ollama_` prefix (labels method, path, status,
    model; `path` the request path), so they map like mistral.rs's HTTP layer and nothing more.
    """
    p = _Promql(ollama_job("seed"))
    inference = f'path=~"/api/({_OLLAMA_NATIVE_INFERENCE})|/v1/.*"'
    signals = {
        **_request_signals(p, "ollama_http_requests_total", inference),
        **_latency_signals(p, "ollama_http_request_duration_seconds", inference),
    }
    return EngineMapping(
        name=ollama_job("seed"),
        job=ollama_job("seed"),
        engine=OLLAMA_ENGINE,
        signals=signals,
        enabled=_scrapes("seed"),
        source="the original request's ollama_http_* names",
    )


# One function per engine or exporter; every Ollama exporter kind in config.OLLAMA_EXPORTERS has one.
_BUILDERS: tuple[Callable[[StackConfig], EngineMapping], ...] = (_mistralrs, _ollama_norskhelsenett, _ollama_seed)


def mappings(cfg: StackConfig) -> list[EngineMapping]:
    """Every engine mapping, in a stable order."""
    return [build(cfg) for build in _BUILDERS]


def raw_metrics_for_job(cfg: StackConfig, job: str) -> frozenset[str]:
    """The stored metric names the mappings read from `job`: what its scrape must keep."""
    return frozenset().union(*(m.raw_metrics for m in mappings(cfg) if m.job == job))


def engine_jobs(cfg: StackConfig, scraped_only: bool = True) -> list[str]:
    """The scrape jobs that carry an inference engine, without duplicates: the ones this stack
    scrapes, or (scraped_only=False) every one a mapping knows."""
    return sorted({m.job for m in mappings(cfg) if m.engine and (m.enabled(cfg) or not scraped_only)})


def ollama_mapping(cfg: StackConfig, exporter: str) -> EngineMapping:
    """The mapping of one Ollama exporter kind."""
    return next(m for m in mappings(cfg) if m.job == ollama_job(exporter))

