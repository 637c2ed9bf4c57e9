"""Mistral.rs: how the stack starts it, scrapes it and maps its native /metrics into the catalogue.

Follows mistral.rs v0.9.2 and newer: mistralrs-server-core/src/metrics.rs and streaming.rs,
mistralrs-core/src/engine/logger.rs and paged_attention/scheduler.rs.
"""

from __future__ import annotations

from typing import Optional

from .. import signals as s
from .. import topology
from ..config import MistralConfig, StackConfig
from ..promql import Promql
from ..scrape import ScrapeJob, keep_only, name_alternation, set_label
from ..signals import SHORT_WINDOW, WINDOW
from .base import EngineMapping, latency_signals, request_signals

JOB = "mistral"
ENGINE = "mistralrs"
# The scrape job renames the HTTP layer's metrics with this prefix, so they cannot collide with
# another job's http_*; the engine's own mistralrs_* names are stored as they are.
HTTP_PREFIX = "mistral_"
HTTP_METRICS = (
    "http_requests_total",
    "http_request_duration_seconds_bucket",
    "http_request_duration_seconds_sum",
    "http_request_duration_seconds_count",
    "http_requests_in_flight",
)
# Inference traffic: the OpenAI/Anthropic-compatible API routes (`path` is the route pattern).
_API = 'path=~"/v1/.*"'
HF_TOKEN_ENV = "HF_TOKEN"


def serve_command(cfg: MistralConfig, with_hf_token: bool) -> list[str]:
    """Arguments after the image's `mistralrs` entrypoint.

    Metrics stay on: `/metrics` is served by default on the API port, and this never passes
    `--disable-metrics`.
    """
    # --token-source is a global flag; `cache` (the default) would ignore an HF_TOKEN we pass in.
    args = ["--token-source", f"env:{HF_TOKEN_ENV}" if with_hf_token else "none", "serve"]
    args += ["--port", str(cfg.port), "--host", cfg.host, "--max-seqs", str(cfg.max_seqs)]
    args += ["--paged-attn", cfg.paged_attn]
    if not cfg.uses_gpu:
        args.append("--cpu")
    if cfg.isq != "none":
        args += ["--isq", cfg.isq]
    args += ["-m", cfg.model_id]
    return args


def mapping(cfg: StackConfig) -> EngineMapping:
    p = Promql(JOB)
    sel, by, rate = p.sel, p.by, p.rate
    duration = "mistral_http_request_duration_seconds"
    ttft = "mistralrs_time_to_first_token_seconds"
    itl = "mistralrs_inter_token_latency_seconds"

    kv_total = by(sel("mistralrs_kv_cache_blocks_total"))
    lookups = rate("mistralrs_prefix_cache_lookups_total", WINDOW)
    signals = {
        **request_signals(p, "mistral_http_requests_total", _API),
        **latency_signals(p, duration, _API, slo_threshold=cfg.slo.latency_threshold_seconds),
        s.TTFT_P95: p.quantile(0.95, ttft, WINDOW, _API),
        s.TTFT_P95_1M: p.quantile(0.95, ttft, SHORT_WINDOW, _API),
        s.ITL_P95: p.quantile(0.95, itl, WINDOW, _API),
        s.TOKENS_PROCESSED_RATE: rate("mistralrs_tokens_processed_total", WINDOW),
        # One TTFT sample for the first token step of a streamed request, one ITL sample per later step.
        s.TOKENS_GENERATED_RATE: f"{rate(itl + '_count', WINDOW, _API)} + {rate(ttft + '_count', WINDOW, _API)}",
        s.IN_FLIGHT: by(sel("mistral_http_requests_in_flight", _API)),
        s.QUEUE_DEPTH: by(sel("mistralrs_sequences_waiting")),
        s.RUNNING: by(sel("mistralrs_sequences_running")),
        # v0.9.2 has no capacity gauge (it arrived after that release); until the pinned release has
        # it, the capacity is the --max-seqs the stack starts the server with.
        s.CAPACITY: f"{by(sel('mistralrs_sequences_capacity'))} or {by(sel('mistralrs_sequences_running'))} * 0 + {cfg.mistral.max_seqs}",
        # The blocks gauges exist only with paged attention; a total of 0 means no paged KV cache.
        s.KV_CACHE_UTILISATION: f"{by(sel('mistralrs_kv_cache_blocks_used'))} / ({kv_total} > 0)",
        # The counter appears with the first preemption; with paged attention on, none yet means 0.
        s.PREEMPTIONS_RATE: f"{rate('mistralrs_paged_preemptions_total', WINDOW)} or {kv_total} * 0",
        s.PREEMPTIONS_RATE_1M: f"{rate('mistralrs_paged_preemptions_total', SHORT_WINDOW)} or {kv_total} * 0",
        s.PREFIX_CACHE_HIT_RATIO: f"({rate('mistralrs_prefix_cache_hits_total', WINDOW)} or {lookups} * 0) / ({lookups} > 0)",
    }
    caveats = {
        s.TOKENS_GENERATED_RATE: (
            "Streamed requests only: counted from the TTFT and inter-token-latency histograms, one sample "
            "per engine token step; non-streamed completions are not counted, and a speculative-decoding "
            "step that emits several tokens counts once."
        ),
        s.TTFT_P95: "Streamed requests only (the histogram is recorded for text/event-stream responses).",
        s.TTFT_P95_1M: "Streamed requests only.",
        s.ITL_P95: "Streamed requests only.",
        s.CAPACITY: (
            f"mistralrs_sequences_capacity when the server exports it (after v0.9.2), else the configured "
            f"--max-seqs ({cfg.mistral.max_seqs})."
        ),
        s.KV_CACHE_UTILISATION: "Paged attention only (the KV-cache block gauges); absent with --paged-attn off.",
        s.PREEMPTIONS_RATE: "Paged attention only.",
        s.PREEMPTIONS_RATE_1M: "Paged attention only.",
    }
    return EngineMapping(name=ENGINE, job=JOB, engine=ENGINE, signals=signals, caveats=caveats, source="mistral.rs's own /metrics")


def mappings(cfg: StackConfig) -> list[EngineMapping]:
    return [mapping(cfg)]


def default_target(cfg: StackConfig) -> str:
    alias, _, _ = topology.TARGETS["mistral"]
    return f"{alias}:{cfg.mistral.port}"


def scrape_jobs(cfg: StackConfig, target: Optional[str] = None, metrics_path: Optional[str] = None) -> list[ScrapeJob]:
    """The `mistral` job; `target` and `metrics_path` default to the server on the stack network."""
    kept = mapping(cfg).raw_metrics
    config = {
        "job_name": JOB,
        "metrics_path": metrics_path or topology.TARGETS["mistral"][2],
        "static_configs": [{"targets": [target or default_target(cfg)]}],
        # The target labels win over the server's own: mistral.rs's HTTP series carry a `model` label
        # (the model named in the request, or none/unknown), which Prometheus keeps as `exported_model`;
        # `model` is the model this server was started with, the same on every series of the job.
        "relabel_configs": [
            set_label("instance", topology.MISTRAL_INSTANCE),
            set_label("model", cfg.mistral.model_id),
            set_label("engine", ENGINE),
            set_label("env", cfg.env),
        ],
        "metric_relabel_configs": [
            # http_* -> mistral_http_*: rate(mistral_http_requests_total[5m]) works as the dashboards expect,
            # and another job's http_* metrics cannot mix with these.
            {
                "source_labels": ["__name__"],
                "regex": f"({name_alternation(HTTP_METRICS)})",
                "target_label": "__name__",
                "replacement": HTTP_PREFIX + "${1}",
            },
            # Then keep only what a recording rule reads, e.g. no http_request_body_bytes.
            keep_only(kept),
        ],
    }
    return [ScrapeJob(config=config, series=kept)]
