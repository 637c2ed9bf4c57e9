"""Ollama, through the metrics exporter beside it: how the stack scrapes it and maps it into the catalogue.

Ollama has no /metrics of its own (ollama/ollama#3144), so an exporter or metrics proxy runs beside
it. Each exporter kind (config.OLLAMA_EXPORTERS) names its metrics differently, so each kind is one
scrape job and one mapping; the `ollamaTargets` knob says which kind every target is. The stack
scrapes existing exporters; it does not run Ollama.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from .. import signals as s
from ..config import OLLAMA_EXPORTERS, OllamaTarget, StackConfig
from ..promql import Promql
from ..scrape import ScrapeJob, keep_only, set_label
from ..signals import WINDOW
from .base import EngineMapping, latency_signals, request_signals

ENGINE = "ollama"
METRICS_PATH = "/metrics"
# Ollama's inference routes (server/routes.go): the native generate, chat and embedding routes, and
# everything under /v1/ (OpenAI- and Anthropic-compatible), like mistral.rs's /v1/ filter.
_NATIVE_INFERENCE = "chat|embed|embeddings|generate"


def job(exporter: str) -> str:
    """The scrape job of one exporter kind."""
    return f"ollama-{exporter}"


def _scrapes(exporter: str) -> Callable[[StackConfig], bool]:
    return lambda cfg: any(t.exporter == exporter for t in cfg.prometheus.ollama_targets)


def _norskhelsenett(cfg: StackConfig) -> EngineMapping:
    """NorskHelsenett/ollama-metrics, a Go proxy in front of Ollama (main.go).

    It records a request only when it can read a model name from the response (generate, chat and
    /v1/ routes) or the request body (other routes), so failed requests leave no trace: there is no
    status label and no error signal. No queue, in-flight or time-to-first-token metric either.
    """
    p = Promql(job("norskhelsenett"))
    duration = "ollama_request_duration_seconds"
    # `endpoint` is the request path without its /api/ prefix (/v1/ paths stay whole); the filter
    # leaves out model management (pull, show, ...), whose durations are not inference latency.
    inference = f'endpoint=~"{_NATIVE_INFERENCE}|/v1/.*"'
    prompt = p.rate("ollama_prompt_tokens_total", WINDOW)
    generated = p.rate("ollama_generated_tokens_total", WINDOW)
    signals = {
        s.REQUESTS_RATE: p.rate(duration + "_count", WINDOW, inference),
        **latency_signals(p, duration, inference, slo_threshold=cfg.slo.latency_threshold_seconds),
        s.ITL_P95: p.quantile(0.95, "ollama_time_per_token_seconds", WINDOW),
        # The proxy adds only counts above 0, so a model can have one counter without the other
        # (an embedding model has no generated tokens); it still gets a sum.
        s.TOKENS_PROCESSED_RATE: f"({prompt} + {generated}) or {prompt} or {generated}",
        s.TOKENS_GENERATED_RATE: generated,
    }
    capped = "Successful requests only; the buckets end at 60s, so a quantile above 60s reads 60s."
    caveats = {
        s.REQUESTS_RATE: "Successful requests only: the proxy records nothing for a response without a model name (an error).",
        s.LATENCY_AVG: "Successful requests only.",
        s.LATENCY_P50: capped,
        s.LATENCY_P95: capped,
        s.LATENCY_P99: capped,
        s.LATENCY_P95_1M: capped,
        s.ITL_P95: (
            "Native /api/chat and /api/generate only: over requests, each request's mean time per generated "
            "token (Ollama's eval_duration / eval_count), not over single tokens."
        ),
        s.TOKENS_PROCESSED_RATE: "Prompt plus generated tokens as Ollama reports them per successful request.",
        s.TOKENS_GENERATED_RATE: (
            "Streamed and non-streamed alike: Ollama's eval_count, or the OpenAI-style usage on /v1/ routes when "
            "the response carries it."
        ),
    }
    return EngineMapping(
        name=job("norskhelsenett"),
        job=job("norskhelsenett"),
        engine=ENGINE,
        signals=signals,
        caveats=caveats,
        enabled=_scrapes("norskhelsenett"),
        source="NorskHelsenett/ollama-metrics",
    )


def _http(cfg: StackConfig) -> EngineMapping:
    """`ollama_http_requests_total` and `ollama_http_request_duration_seconds`, from no known exporter:
    mistral.rs's HTTP counter and histogram with an `ollama_` prefix (labels method, path, status,
    model; `path` the request path), for a proxy of a team's own. They map like mistral.rs's HTTP
    layer and nothing more.
    """
    p = Promql(job("http"))
    inference = f'path=~"/api/({_NATIVE_INFERENCE})|/v1/.*"'
    signals = {
        **request_signals(p, "ollama_http_requests_total", inference),
        **latency_signals(p, "ollama_http_request_duration_seconds", inference, slo_threshold=cfg.slo.latency_threshold_seconds),
    }
    return EngineMapping(
        name=job("http"),
        job=job("http"),
        engine=ENGINE,
        signals=signals,
        enabled=_scrapes("http"),
        source="ollama_http_* metrics of a proxy of your own",
    )


_BUILDERS = {"norskhelsenett": _norskhelsenett, "http": _http}
assert tuple(_BUILDERS) == OLLAMA_EXPORTERS, "every exporter kind the config accepts has a mapping"


def mappings(cfg: StackConfig) -> list[EngineMapping]:
    return [_BUILDERS[exporter](cfg) for exporter in OLLAMA_EXPORTERS]


def instances(targets) -> dict[OllamaTarget, str]:
    """A readable `instance` per target: its host, or host:port where two targets share a host.

    The records of every exporter kind carry engine="ollama", so the instance must tell any two
    targets apart or their records would collide."""

    def host(t: OllamaTarget) -> str:
        return t.address.rsplit(":", 1)[0]

    addresses_per_host = Counter(host(t) for t in {t.address: t for t in targets}.values())
    return {t: host(t) if addresses_per_host[host(t)] == 1 else t.address for t in targets}


def scrape_jobs(cfg: StackConfig) -> list[ScrapeJob]:
    """One job per exporter kind that `ollamaTargets` names, none without targets."""
    targets = list(dict.fromkeys(cfg.prometheus.ollama_targets))  # a target listed twice is scraped once
    named = instances(targets)
    jobs = []
    for m, exporter in zip(mappings(cfg), OLLAMA_EXPORTERS):
        mine = [t for t in targets if t.exporter == exporter]
        if not mine:
            continue
        static_configs = []
        for t in mine:
            labels = {"instance": named[t]}
            if t.metrics_path != METRICS_PATH:
                labels["__metrics_path__"] = t.metrics_path  # a target label wins over the job's metrics_path
            static_configs.append({"targets": [t.address], "labels": labels})
        config = {
            "job_name": m.job,
            "metrics_path": METRICS_PATH,
            "static_configs": static_configs,
            # No target `model`: one Ollama serves many models, and both exporters label every series
            # the mapping reads with the model the request used.
            "relabel_configs": [set_label("engine", ENGINE), set_label("env", cfg.env)],
            # Only what a recording rule reads: no go_*/process_* runtime series, no loaded-model gauges.
            "metric_relabel_configs": [keep_only(m.raw_metrics)],
        }
        jobs.append(ScrapeJob(config=config, series=m.raw_metrics))
    return jobs
