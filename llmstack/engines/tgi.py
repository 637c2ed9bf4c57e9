"""Hugging Face Text Generation Inference (TGI): how the stack scrapes it and maps its /metrics into the catalogue.

Follows huggingface/text-generation-inference v3.3.7 (commit dfb3fbe7, the latest 3.x release):
router/src/server.rs (the request counters and histograms, the bucket layout and the HELP texts),
router/src/infer/mod.rs and router/src/validation.rs (failures, prompt lengths), backends/v3/src/
backend.rs, queue.rs and lib.rs (batch and queue gauges, generation failures), and
docs/source/reference/metrics.md. TGI renders with metrics-exporter-prometheus 0.15.3: counters keep
their names as written (`tgi_request_count`, no `_total`), every histogram whose name ends in
`duration` has the same 35 buckets (0.0001 x 1.5^k, k = 1..35, up to about 146s), and no series
carries a label that names the model (TGI sets no global labels), so `model` is the one the target
names in `tgiTargets`, with nothing kept as `exported_model`.

What TGI cannot provide, so there is no record (and no alert reads one for it):
- time to first token: the router records its timings once, when a request ends (validation,
  queue, inference, mean time per token); nothing marks the first token;
- requests in flight: no HTTP-level gauge;
- capacity: TGI batches by a token budget (max_batch_total_tokens), not a number of sequences;
  --max-batch-size is optional and, like --max-concurrent-requests, not exported;
- KV-cache utilisation: the batch's reserved tokens are exported (tgi_batch_current_max_tokens),
  but the budget they fill is not: backends/v3/src/lib.rs sets tgi_batch_max_total_tokens while
  warming up, before server.rs installs the Prometheus recorder, so it never reaches /metrics;
- preemptions: TGI does not preempt running requests (a full token budget keeps them queued);
- prefix-cache hits: v3 caches prefixes but counts no lookups or hits.
"""

from __future__ import annotations

from .. import signals as s
from ..config import StackConfig
from ..promql import Promql, share
from ..scrape import ScrapeJob
from ..signals import SHORT_WINDOW, WINDOW
from .base import EngineMapping, existing_servers_job

ENGINE = "tgi"
JOB = "tgi"

# tgi_request_failure's `err` values that are the server's fault: the shards failed the batch
# ("generation", answered 424) or the stream ended without its last token ("incomplete", 500).
# Left out: "validation" and "template" (422, the request's fault), "overloaded" (429, the
# concurrency limit) and "dropped" (the client went away).
SERVER_FAILURES = 'err=~"generation|incomplete"'


def mapping(cfg: StackConfig) -> EngineMapping:
    p = Promql(JOB)
    rate = p.rate
    duration = "tgi_request_duration"

    def requests(window: str) -> str:
        # Every request that ended, once: a success, or a failure of any kind. tgi_request_count
        # would count an OpenAI-route request twice (chat_completions and generate_internal both
        # increment it). Each counter appears with its first event.
        ok, failed = rate("tgi_request_success", window), rate("tgi_request_failure", window)
        return f"(({ok} + {failed}) or {ok} or {failed})"

    def errors(window: str) -> str:
        return f"({rate('tgi_request_failure', window, SERVER_FAILURES)} or {requests(window)} * 0)"

    prompt = rate("tgi_request_input_length_sum", WINDOW)
    generated = rate("tgi_request_generated_tokens_sum", WINDOW)
    signals = {
        s.REQUESTS_RATE: requests(WINDOW),
        s.ERRORS_RATE: errors(WINDOW),
        s.ERROR_RATIO: share(errors(WINDOW), requests(WINDOW)),
        s.ERROR_RATIO_1M: share(errors(SHORT_WINDOW), requests(SHORT_WINDOW)),
        s.LATENCY_AVG: share(rate(duration + '_sum', WINDOW), rate(duration + '_count', WINDOW)),
        s.LATENCY_P50: p.quantile(0.5, duration, WINDOW),
        s.LATENCY_P95: p.quantile(0.95, duration, WINDOW),
        s.LATENCY_P99: p.quantile(0.99, duration, WINDOW),
        s.LATENCY_P95_1M: p.quantile(0.95, duration, SHORT_WINDOW),
        s.ITL_P95: p.quantile(0.95, "tgi_request_mean_time_per_token_duration", WINDOW),
        # A failed request has its prompt counted but no generated tokens yet.
        s.TOKENS_PROCESSED_RATE: f"({prompt} + {generated}) or {prompt}",
        s.TOKENS_GENERATED_RATE: generated,
        s.QUEUE_DEPTH: p.by(p.sel("tgi_queue_size")),
        s.RUNNING: p.by(p.sel("tgi_batch_current_size")),
    }
    successful = "Successful requests only (TGI records its request histograms when a request ends well)"
    capped = f"{successful}; the buckets end near 146s, so a quantile above that reads about 146s."
    caveats = {
        s.REQUESTS_RATE: (
            "Requests that ended: tgi_request_success plus tgi_request_failure, counted when a request ends, "
            "on every generation route (/generate, /generate_stream, /v1/chat/completions, /v1/completions, "
            "...). A /v1/completions request with several prompts counts once per prompt."
        ),
        s.ERRORS_RATE: (
            "Server-side failures (tgi_request_failure err=generation|incomplete). A generation error is "
            "answered 424, not 5xx; 422 validation/template errors, 429 overload and client disconnects are "
            "not counted."
        ),
        s.ERROR_RATIO: "Server-side failures (generation, incomplete) over the requests that ended.",
        s.ERROR_RATIO_1M: "Server-side failures (generation, incomplete) over the requests that ended.",
        s.LATENCY_AVG: f"{successful}; from the handler's start to the last token.",
        s.LATENCY_P50: capped,
        s.LATENCY_P95: capped,
        s.LATENCY_P99: capped,
        s.LATENCY_P95_1M: capped,
        s.ITL_P95: (
            "Over requests, each request's mean time per generated token (inference time / generated tokens, "
            "prefill included), streamed and non-streamed alike; successful requests only."
        ),
        s.TOKENS_PROCESSED_RATE: (
            "Prompt tokens as validated (tgi_request_input_length, failed requests included) plus the generated "
            "tokens of successful requests, both counted from histogram sums."
        ),
        s.TOKENS_GENERATED_RATE: "Successful requests only, counted when the request ends (tgi_request_generated_tokens).",
        s.QUEUE_DEPTH: "Requests in the router's queue, waiting to join a batch (tgi_queue_size); appears with the first request.",
        s.RUNNING: "Requests in the batch being decoded (tgi_batch_current_size), set once per batch step; appears with the first batch.",
    }
    return EngineMapping(
        name=ENGINE,
        job=JOB,
        engine=ENGINE,
        signals=signals,
        caveats=caveats,
        enabled=lambda cfg: bool(cfg.engines.tgi_targets),
        source="TGI's own /metrics (text-generation-router)",
    )


def mappings(cfg: StackConfig) -> list[EngineMapping]:
    return [mapping(cfg)]


def scrape_jobs(cfg: StackConfig) -> list[ScrapeJob]:
    return existing_servers_job(cfg, JOB, ENGINE, cfg.engines.tgi_targets, mapping(cfg).raw_metrics)
