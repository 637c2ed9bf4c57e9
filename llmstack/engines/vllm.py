"""vLLM (the V1 engine): how the stack scrapes existing servers and maps their /metrics into the catalogue.

Follows vLLM v0.33.0, the latest release: vllm/v1/metrics/loggers.py (PrometheusStatLogger: the
`vllm:*` names, types, labels and HELP texts), vllm/v1/metrics/buckets.py (the histogram bounds),
vllm/v1/metrics/stats.py (what each one counts) and vllm/entrypoints/serve/instrumentator/metrics.py
(the API server's HTTP metrics: prometheus-fastapi-instrumentator's default set, read from its
v8.1.0 metrics.py and middleware.py). `vllm serve` answers /metrics on its API port.

Renamed metrics, read with `or` so that one rule serves every version from 0.8.5 on (in the
releases that export both names the new one wins; a release with only the old one falls back):
- the KV-cache gauge: `vllm:gpu_cache_usage_perc` up to v0.8.5.post1, `vllm:kv_cache_usage_perc`
  from v0.9.0 (the old name hidden from v0.11.0, gone in v0.12.0);
- the prefix-cache counters: `vllm:gpu_prefix_cache_{queries,hits}_total` up to v0.8.5.post1 (in
  blocks), `vllm:prefix_cache_{queries,hits}_total` from v0.9.0 (in tokens; the old names, in tokens
  too, hidden from v0.11.0, gone in v0.12.0);
- the per-step latency histogram: `vllm:time_per_output_token_seconds` up to v0.10.1.1,
  `vllm:inter_token_latency_seconds` from v0.10.2 (the old name hidden from v0.12.0, then removed).
Checked against the v0.8.5.post1, v0.9.2, v0.10.1.1, v0.10.2, v0.11.0, v0.12.0 and v0.33.0
releases; the fake (tests/integration/fakes/vllm.py) serves the 0.33.0, 0.10.1.1 and 0.8.5.post1
shapes.

Labels. Every `vllm:*` series carries `model_name` (the served model name) and `engine` (the index
of the engine core, "0", "1", ... with data parallelism). The job's target labels win over the
server's own: `engine` becomes "vllm" and vLLM's engine index is stored as `exported_engine`;
`model` is the model the target names in `vllmTargets` (vLLM exports no `model` label), and
`model_name` stays as it is. The records sum over engine cores (and over `model_name`, one per
server), except the KV-cache share, which is their mean. The HTTP series carry `handler` (the route
template), `method` and `status` (grouped: "2xx", "4xx", "5xx").

What vLLM cannot provide, so there is no record (and no alert reads one for it):
- requests in flight: the API server's instrumentator runs without its in-progress gauge;
- capacity: --max-num-seqs is not exported (`vllm:cache_config_info` carries the cache config, not
  the scheduler's), so LLMQueueSaturated, which compares running sequences with capacity, cannot
  fire for vLLM; the queue depth is recorded all the same.
The HTTP latency histogram (`http_request_duration_seconds`) is not read: its buckets are 0.1, 0.5
and 1 seconds, too coarse for any latency quantile; the engine's own e2e histogram is used instead.
A server started with --disable-log-stats exports no `vllm:*` series at all: only the request and
error records remain.
"""

from __future__ import annotations

from .. import signals as s
from ..config import StackConfig
from ..promql import Promql
from ..scrape import ScrapeJob
from ..signals import BY, SHORT_WINDOW, WINDOW
from .base import EngineMapping, existing_servers_job, latency_signals, request_signals

ENGINE = "vllm"
JOB = "vllm"

# The routes that run the engine (`handler` is the route template): OpenAI- and Anthropic-compatible
# generation, the audio and pooling APIs, SageMaker's /invocations and the token-in/token-out
# /inference/v1/generate. Left out: /v1/models, /tokenize, the render and LoRA-admin routes; the
# instrumentator itself skips /metrics, /health, /load, /ping, /version and /server_info.
INFERENCE_HANDLERS = (
    "/v1/(chat/completions|completions|responses|messages|embeddings|audio/transcriptions|audio/translations|score|rerank)"
    "|/v2/(embed|rerank)|/(pooling|classify|score|rerank|invocations)|/inference/v1/generate"
)
_INFERENCE = f'handler=~"{INFERENCE_HANDLERS}"'

E2E = "vllm:e2e_request_latency_seconds"
TTFT = "vllm:time_to_first_token_seconds"
ITL = "vllm:inter_token_latency_seconds"
ITL_BEFORE_0_10_2 = "vllm:time_per_output_token_seconds"
KV_USAGE = "vllm:kv_cache_usage_perc"
KV_USAGE_BEFORE_0_9 = "vllm:gpu_cache_usage_perc"


def mapping(cfg: StackConfig) -> EngineMapping:
    p = Promql(JOB)
    sel, by, rate = p.sel, p.by, p.rate

    def hit_ratio(prefix: str) -> str:
        queries = rate(f"vllm:{prefix}prefix_cache_queries_total", WINDOW)
        return f"{rate(f'vllm:{prefix}prefix_cache_hits_total', WINDOW)} / ({queries} > 0)"

    def kv_share(gauge: str) -> str:
        return f"avg by ({BY}) ({sel(gauge)})"

    generated = rate("vllm:generation_tokens_total", WINDOW)
    signals = {
        # The instrumentator groups status codes, so a 5xx is status="5xx" (which `5..` matches).
        **request_signals(p, "http_requests_total", _INFERENCE),
        **latency_signals(p, E2E, slo_threshold=cfg.slo.latency_threshold_seconds),
        s.TTFT_P95: p.quantile(0.95, TTFT, WINDOW),
        s.TTFT_P95_1M: p.quantile(0.95, TTFT, SHORT_WINDOW),
        s.ITL_P95: f"{p.quantile(0.95, ITL, WINDOW)} or {p.quantile(0.95, ITL_BEFORE_0_10_2, WINDOW)}",
        # Both counters exist (at 0) from the engine's start.
        s.TOKENS_PROCESSED_RATE: f"{rate('vllm:prompt_tokens_total', WINDOW)} + {generated}",
        s.TOKENS_GENERATED_RATE: generated,
        s.QUEUE_DEPTH: by(sel("vllm:num_requests_waiting")),
        s.RUNNING: by(sel("vllm:num_requests_running")),
        s.KV_CACHE_UTILISATION: f"{kv_share(KV_USAGE)} or {kv_share(KV_USAGE_BEFORE_0_9)}",
        s.PREEMPTIONS_RATE: rate("vllm:num_preemptions_total", WINDOW),
        s.PREEMPTIONS_RATE_1M: rate("vllm:num_preemptions_total", SHORT_WINDOW),
        # With prefix caching off nothing is queried, and the ratio is absent rather than 0.
        s.PREFIX_CACHE_HIT_RATIO: f"({hit_ratio('')}) or ({hit_ratio('gpu_')})",
    }
    e2e = "Engine-side, from the request's arrival to its last token, over the requests the engine finished."
    caveats = {
        s.REQUESTS_RATE: (
            "HTTP requests on the inference routes (http_requests_total of the API server's instrumentator, "
            "counted when the response ends), whatever their status."
        ),
        s.ERRORS_RATE: (
            "Responses with a 5xx status (grouped as \"5xx\" by the instrumentator), including the 503s of the "
            "admission limits (--max-num-queued-reqs/-tokens); a stream that fails after its 200 header counts "
            "as a success."
        ),
        s.ERROR_RATIO: "5xx responses over the HTTP requests on the inference routes.",
        s.ERROR_RATIO_1M: "5xx responses over the HTTP requests on the inference routes.",
        s.LATENCY_AVG: (
            "Measured in the engine (vllm:e2e_request_latency_seconds), from the request's arrival to its last token, "
            "over the requests it finished (stopped, cut at max length or aborted); requests refused before the "
            "engine saw them are not in it."
        ),
        s.LATENCY_P50: e2e,
        s.LATENCY_P95: e2e,
        s.LATENCY_P99: e2e,
        s.LATENCY_P95_1M: e2e,
        s.TTFT_P95: "Every request, streamed or not: measured in the engine, from the request's arrival to its first token.",
        s.TTFT_P95_1M: "Every request, streamed or not (engine-side).",
        s.ITL_P95: (
            "Every request, streamed or not: one sample per engine step after the first, so a speculative-decoding "
            "step that emits several tokens counts once. vllm:inter_token_latency_seconds, or "
            "vllm:time_per_output_token_seconds (the same histogram) before v0.10.2."
        ),
        s.TOKENS_PROCESSED_RATE: "Prompt tokens (prefix-cache hits included, which are not recomputed) plus generated tokens.",
        s.QUEUE_DEPTH: (
            "Requests in the engine's waiting queue (vllm:num_requests_waiting), summed over engine cores; in v0.33 "
            "(not yet in v0.12) it also holds requests deferred by a LoRA budget or a KV transfer."
        ),
        s.RUNNING: "Requests in the engine's running batch (vllm:num_requests_running), summed over engine cores.",
        s.KV_CACHE_UTILISATION: (
            "vllm:kv_cache_usage_perc (vllm:gpu_cache_usage_perc before v0.9), the mean over engine cores "
            "(data-parallel ranks)."
        ),
        s.PREFIX_CACHE_HIT_RATIO: (
            "Share of the prompt tokens queried in the prefix cache that hit (blocks, not tokens, before v0.9); "
            "absent while nothing is queried (prefix caching off, or no traffic)."
        ),
    }
    return EngineMapping(
        name=ENGINE,
        job=JOB,
        engine=ENGINE,
        signals=signals,
        caveats=caveats,
        enabled=lambda cfg: bool(cfg.engines.vllm_targets),
        source="vLLM's own /metrics (vllm serve)",
    )


def mappings(cfg: StackConfig) -> list[EngineMapping]:
    return [mapping(cfg)]


def scrape_jobs(cfg: StackConfig) -> list[ScrapeJob]:
    # prometheus_client 0.23 to 0.26 (what vLLM installs) escapes `vllm:x` to `vllm_x` in the
    # OpenMetrics it answers a scraper without UTF-8 support with (Prometheus 2.x, or 3.x with legacy
    # name validation); vLLM defines no native `vllm_` metric, so the rename is exact, and a no-op
    # when the names arrive with their colon.
    colon = {"source_labels": ["__name__"], "regex": "vllm_(.+)", "target_label": "__name__", "replacement": "vllm:${1}"}
    return existing_servers_job(cfg, JOB, ENGINE, cfg.engines.vllm_targets, mapping(cfg).raw_metrics, renames=[colon])
