"""Fake ``/metrics`` endpoints for Ollama, which serves no Prometheus metrics of its own.

Two flavours:

``flavour="norskhelsenett"`` -- the Go proxy sidecar **NorskHelsenett/ollama-metrics**, commit
    **dcc600c648ac2d87b2ebdd03c84a314ffee92fa3** (2025-05-08, default branch; the repository has no
    tags), file ``main.go`` (metric definitions and the proxy handler), built with
    ``github.com/prometheus/client_golang`` v1.22.0 (``go.mod``; runtime collector HELP strings read
    from client_golang tag v1.22.0, ``prometheus/go_collector.go``, ``process_collector.go``,
    ``promhttp/http.go``). Default port 8080 (``PORT``), upstream Ollama from ``OLLAMA_HOST``.
    What it exports, exactly:

    ===================================  =========  ==================  =================================
    metric                               type       labels              buckets
    ===================================  =========  ==================  =================================
    ollama_prompt_tokens_total           counter    model               -
    ollama_generated_tokens_total        counter    model               -
    ollama_request_duration_seconds      histogram  endpoint, model     0.1 0.5 1 2 5 10 30 60
    ollama_time_per_token_seconds        histogram  model               0.01 0.05 0.1 0.2 0.5 1 2
    ollama_loaded_models                 gauge      -                   -
    ollama_model_loaded                  gauge      model               -
    ollama_model_ram_mb                  gauge      model               -
    ===================================  =========  ==================  =================================

    plus the default registry's runtime families; this fake emits the subset ``go_goroutines``,
    ``go_threads``, ``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
    ``process_start_time_seconds``, ``promhttp_metric_handler_requests_in_flight`` and
    ``promhttp_metric_handler_requests_total{code}`` (the real one has dozens more ``go_*``).

    ``endpoint`` is the request path without ``/api/`` (``chat``, ``generate``, ``tags`` ...);
    ``model`` gets ``:latest`` appended when untagged. Metrics are recorded only when the proxy could
    read a model name from the *response* stream (generate/chat) or request body (other endpoints),
    and the loaded-model gauges are refreshed from Ollama's ``/api/ps`` on every scrape.

    Scenarios it **cannot** express: it has no status/error label and no request counter, so
    ``error_burst`` only shows up as *missing* observations (a failed chat returns ``{"error": ...}``
    without a ``model`` field, so nothing is recorded; an unreachable Ollama gives a 502 before any
    metric); it has no time-to-first-token and no queue/in-flight metric. ``latency_regression`` is
    visible in ``ollama_request_duration_seconds`` and ``ollama_time_per_token_seconds``.

``flavour="http"`` -- **not a real exporter**, a naming convention no known exporter produces:
    mistral.rs's HTTP metrics (``mistralrs-server-core/src/metrics.rs``, v0.9.2) with an
    ``ollama_`` prefix, for a proxy in front of Ollama that follows it. Counter
    ``ollama_http_requests_total{method,path,status,model}`` and histogram
    ``ollama_http_request_duration_seconds`` with the same labels and mistral.rs's
    ``http_request_duration_seconds`` buckets; the HELP texts are defined here.

Both are rendered by prometheus_client, not client_golang: the names, types, labels and buckets are
the ones above, and the formatting differences (``le="1.0"`` for client_golang's ``le="1"``, number
format, order) parse identically in Prometheus.

Traffic is synthetic and deterministic (no randomness); see ``SHAPES``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Dict, Tuple

from .base import Carry, FakeExporterBase, Registry, spread
from .mistral import FakeMistral

NORSKHELSENETT_COMMIT = "dcc600c648ac2d87b2ebdd03c84a314ffee92fa3"
CLIENT_GOLANG_VERSION = "v1.22.0"

SCENARIOS = ("healthy", "latency_regression", "error_burst", "idle")
FLAVOURS = ("norskhelsenett", "http")


@dataclass(frozen=True)
class OllamaShape:
    rps: float
    error_ratio: float
    duration: Tuple[float, float]
    error_duration: Tuple[float, float]
    time_per_token: Tuple[float, float]
    prompt_tokens: int
    generated_tokens: int


class FakeOllamaMetrics(FakeExporterBase):
    SCENARIOS = SCENARIOS
    FLAVOURS = FLAVOURS

    # NorskHelsenett/ollama-metrics main.go
    REQUEST_DURATION_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
    TIME_PER_TOKEN_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
    # "http" flavour: mistral.rs's HTTP metrics under an ollama_ prefix
    HTTP_DURATION_BUCKETS = FakeMistral.HTTP_REQUEST_DURATION_BUCKETS
    HTTP_LABELS = ("method", "path", "status", "model")
    METHOD = "POST"
    CHAT_PATH = "/api/chat"
    ENDPOINT = "chat"  # NorskHelsenett: strings.TrimPrefix(path, "/api/")

    SHAPES: Dict[str, OllamaShape] = {
        "healthy": OllamaShape(5.0, 0.0, (0.25, 2.5), (0.005, 0.05), (0.02, 0.05), 200, 50),
        "latency_regression": OllamaShape(5.0, 0.0, (10.0, 60.0), (0.005, 0.05), (0.3, 1.0), 200, 50),
        "error_burst": OllamaShape(5.0, 0.30, (0.25, 2.5), (0.005, 0.05), (0.02, 0.05), 200, 50),
        "idle": OllamaShape(0.0, 0.0, (0.25, 2.5), (0.005, 0.05), (0.02, 0.05), 200, 50),
    }
    # scenarios the NorskHelsenett exporter has no metric for (see module docstring)
    NORSKHELSENETT_CANNOT_EXPRESS = ("error_burst",)

    def __init__(
        self,
        flavour: str = "norskhelsenett",
        model: str = "llama3.2:3b",
        host: str = "127.0.0.1",
        port: int = 0,
        model_size_bytes: int = 3_355_443_200,
    ):
        if flavour not in FLAVOURS:
            raise ValueError(f"flavour must be one of {FLAVOURS}")
        super().__init__(host, port)
        self.flavour = flavour
        self.model = model if ":" in model else model + ":latest"  # ensureModelTag
        self.model_size_bytes = int(model_size_bytes)
        r = self.registry = Registry()
        if flavour == "norskhelsenett":
            r.counter("ollama_prompt_tokens_total", "Total number of prompt tokens sent to the model", ("model",))
            r.counter("ollama_generated_tokens_total", "Total number of tokens generated by the model", ("model",))
            r.histogram(
                "ollama_request_duration_seconds", "Duration of Ollama requests in seconds",
                ("endpoint", "model"), self.REQUEST_DURATION_BUCKETS,
            )
            r.histogram(
                "ollama_time_per_token_seconds", "Time per generated token (seconds per token)",
                ("model",), self.TIME_PER_TOKEN_BUCKETS,
            )
            r.gauge("ollama_loaded_models", "Number of models currently loaded in memory in Ollama")
            r.gauge("ollama_model_loaded", "Indicator (1/0) if a model is loaded in memory", ("model",))
            r.gauge("ollama_model_ram_mb", "RAM usage in megabytes for each loaded model", ("model",))
            # client_golang default registry (subset)
            r.gauge("go_goroutines", "Number of goroutines that currently exist.")
            r.gauge("go_threads", "Number of OS threads created.")
            r.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
            r.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
            r.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
            r.gauge("promhttp_metric_handler_requests_in_flight", "Current number of scrapes being served.")
            r.counter("promhttp_metric_handler_requests_total", "Total number of scrapes by HTTP status code.", ("code",))
        else:
            r.counter(
                "ollama_http_requests_total",
                "Total number of HTTP requests proxied to Ollama (project convention, mirrors mistral.rs http_requests_total).",
                self.HTTP_LABELS,
            )
            r.histogram(
                "ollama_http_request_duration_seconds",
                "HTTP request latency of requests proxied to Ollama in seconds (project convention, mirrors mistral.rs http_request_duration_seconds).",
                self.HTTP_LABELS, self.HTTP_DURATION_BUCKETS,
            )
        self._reset_process_locked()

    def _reset_process_locked(self) -> None:
        self.registry.clear()
        self.process_start_time = time.time()
        self._i = 0
        self._req = Carry()
        self._err = Carry()
        self._model_loaded = False
        if self.flavour == "norskhelsenett":
            r = self.registry
            r["ollama_loaded_models"].set((), 0)
            r["go_goroutines"].set((), 8)
            r["go_threads"].set((), 7)
            r["process_cpu_seconds_total"].ensure()
            r["process_resident_memory_bytes"].set((), 12_582_912)
            r["process_start_time_seconds"].set((), round(self.process_start_time, 2))
            r["promhttp_metric_handler_requests_in_flight"].set((), 0)
            for code in ("200", "500", "503"):  # promhttp pre-initialises these
                r["promhttp_metric_handler_requests_total"].ensure((code,))
            self._refresh_ps_locked()

    @property
    def shape(self) -> OllamaShape:
        return self.SHAPES[self._scenario]

    def _refresh_ps_locked(self) -> None:
        """What the proxy does with /api/ps on every scrape: Reset() and re-set the model gauges."""
        r = self.registry
        r["ollama_model_loaded"].clear()
        r["ollama_model_ram_mb"].clear()
        r["ollama_loaded_models"].set((), 1 if self._model_loaded else 0)
        if self._model_loaded:
            r["ollama_model_loaded"].set((self.model,), 1)
            r["ollama_model_ram_mb"].set((self.model,), self.model_size_bytes / (1024 * 1024))

    def _advance_locked(self, seconds: float) -> None:
        s = self.shape
        r = self.registry
        n = self._req.take(s.rps * seconds)
        for _ in range(n):
            i = self._i
            self._i += 1
            failed = bool(self._err.take(s.error_ratio))
            if self.flavour == "http":
                status = "500" if failed else "200"
                key = (self.METHOD, self.CHAT_PATH, status, self.model)
                r["ollama_http_requests_total"].inc(key)
                rng = s.error_duration if failed else s.duration
                r["ollama_http_request_duration_seconds"].observe(key, spread(i, *rng))
                continue
            self._model_loaded = True  # Ollama loads the model on the first request
            if failed:
                continue  # error body has no "model": the proxy records nothing
            r["ollama_prompt_tokens_total"].inc((self.model,), s.prompt_tokens)
            r["ollama_generated_tokens_total"].inc((self.model,), s.generated_tokens)
            r["ollama_request_duration_seconds"].observe((self.ENDPOINT, self.model), spread(i, *s.duration))
            r["ollama_time_per_token_seconds"].observe((self.model,), spread(i, *s.time_per_token))
        if self.flavour == "norskhelsenett":
            r["process_cpu_seconds_total"].inc((), 0.002 * seconds + 0.001 * n)
            self._refresh_ps_locked()

    def _before_scrape_locked(self) -> None:
        if self.flavour == "norskhelsenett":
            self._refresh_ps_locked()
            self.registry["promhttp_metric_handler_requests_in_flight"].set((), 1)

    def _after_scrape_locked(self) -> None:
        if self.flavour == "norskhelsenett":
            r = self.registry
            r["promhttp_metric_handler_requests_in_flight"].set((), 0)
            r["promhttp_metric_handler_requests_total"].inc(("200",))

