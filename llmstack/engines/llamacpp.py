"""llama.cpp's llama-server (started with --metrics): how the stack scrapes it and maps its /metrics
into the catalogue. The stack scrapes existing servers (`llamacppTargets`); it does not run them.

Follows ggml-org/llama.cpp master at commit 001d906a6d86e2490e394361e7cc6f478b100088:
tools/server/server-context.cpp (the /metrics route and the METRICS task, which read
`requests_processing` as the slots not idle and `requests_deferred` as the tasks waiting for one) and
tools/server/server-task.cpp, `server_task_result_metrics::to_metrics()` (the families, written by hand).
llama.cpp has no semver; builds are tagged bNNNN, and builds b10519 to b11151 are known to export
exactly these families:

- counters: llamacpp:prompt_tokens_total (prompt tokens computed, cached ones excluded),
  llamacpp:prompt_tokens_cached_total, llamacpp:prompt_seconds_total, llamacpp:tokens_predicted_total,
  llamacpp:tokens_predicted_seconds_total, llamacpp:n_decode_total, llamacpp:n_tokens_max (a
  high-water mark typed counter), llamacpp:spec_decode_num_{draft_tokens,accepted_tokens,drafts}_total;
- gauges: llamacpp:prompt_tokens_seconds and llamacpp:predicted_tokens_seconds (throughput since the
  previous scrape), llamacpp:requests_processing, llamacpp:requests_deferred,
  llamacpp:n_busy_slots_per_decode;
- llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position}, only with speculative decoding.

No series carries a label (the per-position counter aside), so the target's `model` from the config
is the only `model` label, and nothing becomes exported_model. There are no histograms, no request
counter and no HTTP status anywhere: request rate, errors, latency quantiles, time to first token and
inter-token latency cannot be mapped. The slot count (--parallel) is not exported, so neither is
capacity; the KV-cache gauges llamacpp:kv_cache_usage_ratio and llamacpp:kv_cache_tokens were removed
upstream in May 2025 (ggml-org/llama.cpp#13660), and llama.cpp does not preempt. Recent changes: the
speculative-decoding counters arrived in ggml-org/llama.cpp#26389 (2026), prompt_tokens_cached_total is
recent too (a build without it gets no prefix-cache record here), n_busy_slots_per_decode is typed
gauge where older builds typed it counter, and the two throughput gauges cover the time since the
previous scrape. Values are printed with six significant digits (a C++ stream's default), so a counter
above a million moves in steps of ten or more.
"""

from __future__ import annotations

from .. import signals as s
from ..config import StackConfig
from ..promql import Promql
from ..scrape import ScrapeJob
from ..signals import WINDOW
from .base import EngineMapping, existing_servers_job

ENGINE = "llamacpp"
JOB = "llamacpp"

PROMPT_TOKENS = "llamacpp:prompt_tokens_total"
CACHED_PROMPT_TOKENS = "llamacpp:prompt_tokens_cached_total"
GENERATED_TOKENS = "llamacpp:tokens_predicted_total"
PROCESSING = "llamacpp:requests_processing"
DEFERRED = "llamacpp:requests_deferred"


def mapping(cfg: StackConfig) -> EngineMapping:
    p = Promql(JOB)
    prompt = p.rate(PROMPT_TOKENS, WINDOW)
    cached = p.rate(CACHED_PROMPT_TOKENS, WINDOW)
    generated = p.rate(GENERATED_TOKENS, WINDOW)
    processing = p.by(p.sel(PROCESSING))
    deferred = p.by(p.sel(DEFERRED))
    # llama-server prints every family from its start, at 0 until used, so no `or ... * 0` is needed.
    signals = {
        s.TOKENS_PROCESSED_RATE: f"{prompt} + {generated}",
        s.TOKENS_GENERATED_RATE: generated,
        s.IN_FLIGHT: f"{processing} + {deferred}",
        s.QUEUE_DEPTH: deferred,
        s.RUNNING: processing,
        s.PREFIX_CACHE_HIT_RATIO: f"{cached} / (({cached} + {prompt}) > 0)",
    }
    at_release = "a request's generated tokens are added when its slot is released (finished, failed or cancelled), not as they stream"
    caveats = {
        s.TOKENS_PROCESSED_RATE: (
            "Prompt tokens computed (tokens reused from the prompt cache excluded) plus generated tokens; " + at_release + "."
        ),
        s.TOKENS_GENERATED_RATE: "llamacpp:tokens_predicted_total: " + at_release + ", so a long generation shows up at its end.",
        s.IN_FLIGHT: (
            "Tasks in a slot plus tasks deferred for want of a free slot, not HTTP requests: a request with several "
            "prompts or n > 1 counts once per task or slot, and requests still being tokenised are not counted."
        ),
        s.QUEUE_DEPTH: "llamacpp:requests_deferred: tasks deferred because no slot was free (or the slot they asked for was busy).",
        s.RUNNING: "llamacpp:requests_processing: slots not idle, prompt processing included.",
        s.PREFIX_CACHE_HIT_RATIO: (
            "Share of prompt tokens reused from the prompt cache (weighted by tokens, not lookups); builds "
            "without llamacpp:prompt_tokens_cached_total have no record."
        ),
    }
    return EngineMapping(
        name=ENGINE,
        job=JOB,
        engine=ENGINE,
        signals=signals,
        caveats=caveats,
        enabled=lambda cfg: bool(cfg.engines.llamacpp_targets),
        source="llama-server's own /metrics (--metrics)",
    )


def mappings(cfg: StackConfig) -> list[EngineMapping]:
    return [mapping(cfg)]


def scrape_jobs(cfg: StackConfig) -> list[ScrapeJob]:
    """The `llamacpp` job, none without targets: each target labelled with its `instance` and `model`."""
    return existing_servers_job(cfg, JOB, ENGINE, cfg.engines.llamacpp_targets, mapping(cfg).raw_metrics)
