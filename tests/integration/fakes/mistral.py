"""Fake mistral.rs ``mistralrs serve`` HTTP endpoint: ``/metrics``, ``/health``, ``/v1/models`` and
``POST /v1/completions``.

Upstream followed (read from source, nothing copied):

* EricLBuehler/mistral.rs tag **v0.9.2** (commit d184053f2441f897cf81429b98b0d868f4d96ff3,
  2026-08-20) and ``main`` at commit **9e922623f24b32d41f3892b74f0eed18707f4e6c** (2026-08-22,
  v0.9.2 + 7 commits, the one that adds ``mistralrs_sequences_capacity``):

  - ``mistralrs-server-core/src/metrics.rs``: recorder install with per-metric buckets
    (``HTTP_REQUEST_DURATION_BUCKETS``, ``HTTP_REQUEST_BODY_BYTE_BUCKETS``, ``TTFT_BUCKETS``,
    ``ITL_BUCKETS``); ``http_requests_total`` / ``http_request_duration_seconds`` with labels
    ``method, path, model, status`` (``path`` is the axum matched route); ``http_requests_in_flight``
    and ``http_request_body_bytes`` with ``method, path, model``; housekeeping routes
    (``/``, ``/health``, ``/metrics``, ``/docs``, ``/api-doc/openapi.json``, ``/ui``, OPTIONS) are
    not counted; ``GET /metrics`` returns ``handle.render()`` (503 when metrics are disabled).
  - ``mistralrs-server-core/src/streaming.rs``: TTFT / ITL histograms, recorded only for SSE
    responses, with the request's 4 labels (status is the status of the SSE response, i.e. 200).
  - ``mistralrs-core/src/engine/logger.rs``: ``mistralrs_tokens_processed_total``,
    ``mistralrs_prefix_cache_lookups_total``, ``mistralrs_prefix_cache_hits_total``,
    ``mistralrs_sequences_running``, ``mistralrs_sequences_waiting``.
  - ``mistralrs-core/src/paged_attention/scheduler.rs``: ``mistralrs_kv_cache_blocks_used``,
    ``mistralrs_kv_cache_blocks_total``, ``mistralrs_paged_preemptions_total``;
    ``paged_attention/block_pool.rs`` and ``prefix_cacher.rs``: ``mistralrs_prefix_cache_evictions_total``.
  - ``mistralrs-core/src/sequence.rs``: ``mistralrs_sequences_completed_total{reason}``
    (``StopReason::metric_label``: stop, length, canceled, generated_image, generated_speech,
    tool_calls; plus ``error``).
  - ``mistralrs-core/src/engine/mod.rs`` (main only): ``mistralrs_sequences_capacity`` (set once at
    engine start) and ``mistralrs_requests_pending_admission``. **Neither exists at
    v0.9.2**; pass ``upstream="v0.9.2"`` to get the tag's exact metric set.
  - ``mistralrs-server-core/src/handlers.rs`` + ``openai.rs``: ``/health`` answers ``OK``;
    ``/v1/models`` lists a ``default`` card and then each model with ``status`` ("loaded").
  - ``docs/src/content/docs/guides/deploy/observability.mdx`` (metric tables).
  - ``POST /v1/completions`` (main 9e922623), non-streaming only:
    ``mistralrs-server-core/src/completions.rs`` (``completions``, ``parse_request``: the model
    must be ``default`` or a loaded one, else ``util.rs``'s ``validate_model_name`` error;
    ``max_tokens: 0`` is refused; errors become ``CompletionResponder::InternalError``, HTTP 500),
    ``handler_core.rs`` (``JsonError``: the error body is ``{"message": ...}``),
    ``mistralrs-core/src/response.rs`` (``CompletionResponse``: id, choices, created, model,
    system_fingerprint = ``SYSTEM_FINGERPRINT`` "local", object, usage; ``CompletionChoice``:
    finish_reason, index, text, logprobs; ``Usage``) and ``pipeline/sampling.rs`` (id = the
    sequence id, object ``"text_completion"``, model = the pipeline's name). The answer is always
    the one token ``"pong"`` with finish_reason ``"length"``. ``metrics.rs``'s ``observe_http``
    counts the request like any non-housekeeping route: ``http_requests_total`` /
    ``http_request_duration_seconds`` with ``path="/v1/completions"``, ``http_requests_in_flight``
    while it runs, ``http_request_body_bytes``; its ``model`` label is the body's ``model`` when
    that model is loaded, the default model for ``default`` or none, else ``unknown``.
    ``set_generation("fail" | "hang")`` breaks generation while ``/metrics`` and ``/health`` keep
    answering: every completion gets a 500, or no answer until ``hang_timeout_s`` (then a 500).

* Rendering: upstream uses the crate ``metrics-exporter-prometheus`` 0.18.3 (locked in v0.9.2's
  ``Cargo.lock``); this fake renders with prometheus_client instead. Names, types, labels, label
  values and buckets are upstream's; the text differs only where Prometheus parses both the same
  (``le="1.0"`` for upstream's ``le="1"``, family and label order, values as floats). One visible
  difference: upstream prints no ``# HELP`` lines (mistral.rs describes no metric), while
  prometheus_client always prints one, so every family here has the HELP text ``NO_HELP``.

Faithfulness notes:

* A series exists only once it has been touched, as upstream: HTTP series, TTFT/ITL, counters and
  ``sequences_completed_total{reason=...}`` appear with their first event (e.g.
  ``mistralrs_paged_preemptions_total`` only once a preemption happened). Engine gauges
  (running/waiting/kv blocks, and capacity on main) are present from process start; upstream sets
  them at engine start / on the first scheduler step.
* Traffic is synthetic and deterministic: per-request samples (duration, TTFT, ITL, body size) are
  drawn independently from each scenario's ranges with a low-discrepancy sequence, so e.g. a healthy
  request's duration is not TTFT + sum(ITL). Only the exposition shape is faithful, not a causal
  simulation of the engine.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Union

from .base import Carry, FakeExporterBase, Registry, Response, client_gone, spread

UPSTREAM_V092 = "v0.9.2"
UPSTREAM_MAIN = "main"
UPSTREAM_COMMITS = {
    UPSTREAM_V092: "d184053f2441f897cf81429b98b0d868f4d96ff3",
    UPSTREAM_MAIN: "9e922623f24b32d41f3892b74f0eed18707f4e6c",
}

SCENARIOS = ("healthy", "latency_regression", "error_burst", "queue_saturation", "kv_cache_exhaustion", "idle")
# What POST /v1/completions does: answer, fail with a 500, or hang (see FakeMistral.set_generation).
GENERATION_MODES = ("ok", "fail", "hang")

NO_HELP = "mistral.rs serves no HELP for this metric"

CAPACITY = "capacity"  # sentinel for Shape.running: "as many as the engine's capacity"


def _json_error(message: str, status: int = 500) -> Response:
    """CompletionResponder::InternalError: handler_core.rs's JsonError, `{"message": ...}`."""
    return status, "application/json", json.dumps({"message": message}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Shape:
    """Traffic and engine state of one scenario. Ranges are (low, high) in seconds."""

    rps: float
    error_ratio: float
    duration: Tuple[float, float]
    error_duration: Tuple[float, float]
    ttft: Tuple[float, float]
    itl: Tuple[float, float]
    prompt_tokens: int
    generated_tokens: int
    running: Union[int, str]
    waiting: int
    kv_used_ratio: float
    preemptions_per_s: float
    evictions_per_s: float
    prefix_hit_ratio: float
    body_bytes: Tuple[float, float] = (600.0, 3000.0)


class FakeMistral(FakeExporterBase):
    SCENARIOS = SCENARIOS

    METHOD = "POST"
    CHAT_PATH = "/v1/chat/completions"
    COMPLETIONS_PATH = "/v1/completions"
    GENERATION_MODES = GENERATION_MODES
    # The error a failing generation answers with (an engine error surfaces as InternalError, 500).
    GENERATION_ERROR = "Model failed with error: the fake's generation is switched off (set_generation('fail'))"
    COMPLETION_TEXT = "pong"

    HTTP_REQUEST_DURATION_BUCKETS = (
        0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
        600.0, 1200.0,
    )
    HTTP_REQUEST_BODY_BYTE_BUCKETS = (
        128.0, 512.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
        52428800.0, 104857600.0,
    )
    TTFT_BUCKETS = (
        0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
        20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
    )
    ITL_BUCKETS = (
        0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
        40.0, 80.0,
    )
    COMPLETION_REASONS = ("stop", "length", "canceled", "tool_calls", "error", "generated_image", "generated_speech")

    HTTP_LABELS = ("method", "path", "model", "status")
    IN_FLIGHT_LABELS = ("method", "path", "model")

    HEALTHY_RPS = 5.0
    PROMPT_TOKENS = 200
    GENERATED_TOKENS = 50
    ERROR_BURST_RATIO = 0.30
    QUEUE_SATURATION_WAITING = 12
    KV_EXHAUSTION_RATIO = 0.99
    KV_EXHAUSTION_PREEMPTIONS_PER_S = 2.0

    SHAPES: Dict[str, Shape] = {
        "healthy": Shape(
            rps=5.0, error_ratio=0.0, duration=(0.25, 2.5), error_duration=(0.005, 0.05),
            ttft=(0.1, 0.5), itl=(0.02, 0.05), prompt_tokens=200, generated_tokens=50,
            running=4, waiting=0, kv_used_ratio=0.30, preemptions_per_s=0.0, evictions_per_s=0.0,
            prefix_hit_ratio=0.5,
        ),
        "latency_regression": Shape(
            rps=5.0, error_ratio=0.0, duration=(10.0, 60.0), error_duration=(0.005, 0.05),
            ttft=(5.0, 20.0), itl=(0.3, 1.0), prompt_tokens=200, generated_tokens=50,
            running=4, waiting=0, kv_used_ratio=0.30, preemptions_per_s=0.0, evictions_per_s=0.0,
            prefix_hit_ratio=0.5,
        ),
        "error_burst": Shape(
            rps=5.0, error_ratio=0.30, duration=(0.25, 2.5), error_duration=(0.005, 0.05),
            ttft=(0.1, 0.5), itl=(0.02, 0.05), prompt_tokens=200, generated_tokens=50,
            running=4, waiting=0, kv_used_ratio=0.30, preemptions_per_s=0.0, evictions_per_s=0.0,
            prefix_hit_ratio=0.5,
        ),
        "queue_saturation": Shape(
            rps=5.0, error_ratio=0.0, duration=(5.0, 20.0), error_duration=(0.005, 0.05),
            ttft=(3.0, 12.0), itl=(0.03, 0.08), prompt_tokens=200, generated_tokens=50,
            running=CAPACITY, waiting=12, kv_used_ratio=0.70, preemptions_per_s=0.0,
            evictions_per_s=0.0, prefix_hit_ratio=0.5,
        ),
        "kv_cache_exhaustion": Shape(
            rps=5.0, error_ratio=0.0, duration=(3.0, 15.0), error_duration=(0.005, 0.05),
            ttft=(1.0, 5.0), itl=(0.05, 0.2), prompt_tokens=200, generated_tokens=50,
            running=10, waiting=3, kv_used_ratio=0.99, preemptions_per_s=2.0, evictions_per_s=10.0,
            prefix_hit_ratio=0.2,
        ),
        "idle": Shape(
            rps=0.0, error_ratio=0.0, duration=(0.25, 2.5), error_duration=(0.005, 0.05),
            ttft=(0.1, 0.5), itl=(0.02, 0.05), prompt_tokens=200, generated_tokens=50,
            running=0, waiting=0, kv_used_ratio=0.0, preemptions_per_s=0.0, evictions_per_s=0.0,
            prefix_hit_ratio=0.5,
        ),
    }

    def __init__(
        self,
        model: str = "Qwen/Qwen3-4B",
        host: str = "127.0.0.1",
        port: int = 0,
        capacity: int = 16,
        kv_blocks_total: int = 4096,
        upstream: str = UPSTREAM_MAIN,
    ):
        if upstream not in UPSTREAM_COMMITS:
            raise ValueError(f"upstream must be one of {tuple(UPSTREAM_COMMITS)}")
        super().__init__(host, port)
        self.model = model
        self.capacity = int(capacity)
        self.kv_blocks_total = int(kv_blocks_total)
        self.upstream = upstream
        self.metrics_enabled = True  # False: /metrics answers 503 like --disable-metrics
        self._generation = "ok"
        self._release = threading.Event()  # set: hung completions stop waiting
        self.hang_timeout_s = 60.0  # the longest a hung completion waits before its 500
        self.completions = 0  # POST /v1/completions answered (any status)
        self._seq_id = 0
        self._build_registry()
        self._reset_process_locked()

    # -- registry -----------------------------------------------------------------------------
    def _build_registry(self) -> None:
        r = self.registry = Registry()
        # HTTP middleware (metrics.rs)
        r.counter("http_requests_total", NO_HELP, self.HTTP_LABELS)
        r.histogram("http_request_duration_seconds", NO_HELP, self.HTTP_LABELS, self.HTTP_REQUEST_DURATION_BUCKETS)
        r.gauge("http_requests_in_flight", NO_HELP, self.IN_FLIGHT_LABELS)
        r.histogram("http_request_body_bytes", NO_HELP, self.IN_FLIGHT_LABELS, self.HTTP_REQUEST_BODY_BYTE_BUCKETS)
        # streaming latency (streaming.rs)
        r.histogram("mistralrs_time_to_first_token_seconds", NO_HELP, self.HTTP_LABELS, self.TTFT_BUCKETS)
        r.histogram("mistralrs_inter_token_latency_seconds", NO_HELP, self.HTTP_LABELS, self.ITL_BUCKETS)
        # engine (logger.rs, scheduler.rs, block_pool.rs, sequence.rs, engine/mod.rs)
        for name in ("mistralrs_tokens_processed_total", "mistralrs_prefix_cache_lookups_total",
                     "mistralrs_prefix_cache_hits_total", "mistralrs_prefix_cache_evictions_total",
                     "mistralrs_paged_preemptions_total"):
            r.counter(name, NO_HELP)
        r.counter("mistralrs_sequences_completed_total", NO_HELP, ("reason",))
        gauges = ["mistralrs_sequences_running", "mistralrs_sequences_waiting", "mistralrs_kv_cache_blocks_used",
                  "mistralrs_kv_cache_blocks_total"]
        if self.upstream == UPSTREAM_MAIN:
            gauges += ["mistralrs_sequences_capacity", "mistralrs_requests_pending_admission"]
        for name in gauges:
            r.gauge(name, NO_HELP)

    def _reset_process_locked(self) -> None:
        self.registry.clear()
        self.process_start_time = time.time()
        self._i = 0  # request index driving the deterministic sample sequences
        self._req = Carry()
        self._err = Carry()
        self._hit = Carry()
        self._preempt = Carry()
        self._evict = Carry()
        r = self.registry
        if self.upstream == UPSTREAM_MAIN:
            r["mistralrs_sequences_capacity"].set((), self.capacity)
            r["mistralrs_requests_pending_admission"].set((), 0)
        r["mistralrs_sequences_running"].set((), 0)
        r["mistralrs_sequences_waiting"].set((), 0)
        r["mistralrs_kv_cache_blocks_used"].set((), 0)
        r["mistralrs_kv_cache_blocks_total"].set((), self.kv_blocks_total)

    # -- scenario driving ---------------------------------------------------------------------
    @property
    def shape(self) -> Shape:
        return self.SHAPES[self._scenario]

    def running_for(self, scenario: str) -> int:
        running = self.SHAPES[scenario].running
        return self.capacity if running == CAPACITY else int(running)

    def _apply_gauges_locked(self) -> None:
        s = self.shape
        r = self.registry
        running = self.running_for(self._scenario)
        r["mistralrs_sequences_running"].set((), running)
        r["mistralrs_sequences_waiting"].set((), s.waiting)
        r["mistralrs_kv_cache_blocks_used"].set((), round(s.kv_used_ratio * self.kv_blocks_total))
        r["mistralrs_kv_cache_blocks_total"].set((), self.kv_blocks_total)
        in_flight = r["http_requests_in_flight"]
        key = (self.METHOD, self.CHAT_PATH, self.model)
        if s.rps > 0 or in_flight.has(key):
            in_flight.set(key, running + s.waiting if s.rps > 0 else 0)

    def _advance_locked(self, seconds: float) -> None:
        s = self.shape
        r = self.registry
        n = self._req.take(s.rps * seconds)
        ok_key = (self.METHOD, self.CHAT_PATH, self.model, "200")
        err_key = (self.METHOD, self.CHAT_PATH, self.model, "500")
        body_key = (self.METHOD, self.CHAT_PATH, self.model)
        for _ in range(n):
            i = self._i
            self._i += 1
            r["http_request_body_bytes"].observe(body_key, round(spread(i, *s.body_bytes)))
            r["mistralrs_prefix_cache_lookups_total"].inc()
            if self._hit.take(s.prefix_hit_ratio):
                r["mistralrs_prefix_cache_hits_total"].inc()
            if self._err.take(s.error_ratio):
                # engine error before the stream started: plain JSON 500, no TTFT/ITL samples
                r["mistralrs_tokens_processed_total"].inc((), s.prompt_tokens)
                r["mistralrs_sequences_completed_total"].inc(("error",))
                r["http_requests_total"].inc(err_key)
                r["http_request_duration_seconds"].observe(err_key, spread(i, *s.error_duration))
                continue
            r["mistralrs_tokens_processed_total"].inc((), s.prompt_tokens + s.generated_tokens)
            r["mistralrs_time_to_first_token_seconds"].observe(ok_key, spread(i, *s.ttft))
            itl = r["mistralrs_inter_token_latency_seconds"]
            for j in range(s.generated_tokens - 1):  # one sample per decode step after the first
                itl.observe(ok_key, spread(i * s.generated_tokens + j + 1, *s.itl))
            r["mistralrs_sequences_completed_total"].inc(("stop",))
            r["http_requests_total"].inc(ok_key)
            r["http_request_duration_seconds"].observe(ok_key, spread(i, *s.duration))
        p = self._preempt.take(s.preemptions_per_s * seconds)
        if p:
            r["mistralrs_paged_preemptions_total"].inc((), p)
        e = self._evict.take(s.evictions_per_s * seconds)
        if e:
            r["mistralrs_prefix_cache_evictions_total"].inc((), e)

    # -- generation switch --------------------------------------------------------------------
    @property
    def generation(self) -> str:
        return self._generation

    def set_generation(self, mode: str) -> None:
        """What POST /v1/completions does from now on: "ok" answers one token; "fail" answers HTTP 500
        with an error body; "hang" answers nothing until the mode changes or `hang_timeout_s` passes
        (then as the mode then says; still hanging: the 500). /metrics and /health are unaffected."""
        if mode not in GENERATION_MODES:
            raise ValueError(f"unknown generation mode {mode!r}; expected one of {GENERATION_MODES}")
        with self._lock:
            if mode == "hang" and self._generation != "hang":
                self._release = threading.Event()
            elif mode != "hang":
                self._release.set()
            self._generation = mode

    def stop(self) -> None:
        self._release.set()  # hung completions answer (or find their client gone) and end
        super().stop()

    # -- routes -------------------------------------------------------------------------------
    def _routes(self):
        routes = super()._routes()
        routes["/health"] = lambda: (200, "text/plain; charset=utf-8", b"OK")
        routes["/v1/models"] = self._models_response
        return routes

    def _post_routes(self):
        routes = super()._post_routes()
        routes[self.COMPLETIONS_PATH] = self._completions_response
        return routes

    def _model_label(self, request) -> str:
        """metrics.rs resolve_model_label for a `model` field: default or none -> the default model."""
        model = request.get("model") if isinstance(request, dict) else None
        if not isinstance(model, str) or model in ("", "default"):
            return self.model if isinstance(request, dict) else "unknown"
        return model if model == self.model else "unknown"

    def _completions_response(self, body: bytes, conn: socket.socket) -> Optional[Response]:
        start = time.monotonic()
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        label = self._model_label(request)
        key = (self.METHOD, self.COMPLETIONS_PATH, label)
        r = self.registry
        with self._lock:
            in_flight = r["http_requests_in_flight"]
            in_flight.set(key, in_flight.series.get(key, 0.0) + 1)
            r["http_request_body_bytes"].observe(key, len(body))
            mode, release = self._generation, self._release
        answer = self._refused(request)  # the HTTP layer and parse_request answer whatever the engine does
        if answer is None and mode == "hang":
            release.wait(self.hang_timeout_s)
            with self._lock:
                mode = self._generation
        status, ctype, payload = answer or self._generate(request, "fail" if mode == "hang" else mode)
        with self._lock:
            in_flight = r["http_requests_in_flight"]
            in_flight.set(key, in_flight.series.get(key, 1.0) - 1)
            r["http_requests_total"].inc(key + (str(status),))
            r["http_request_duration_seconds"].observe(key + (str(status),), time.monotonic() - start)
            self.completions += 1
        return None if client_gone(conn) else (status, ctype, payload)

    def _refused(self, request) -> Optional[Response]:
        """The answer to a request that never reaches the engine, or None."""
        if not isinstance(request, dict) or not isinstance(request.get("prompt"), str):
            # axum's Json extractor: unparsable JSON (400), or not a CompletionRequest (422)
            return 422 if isinstance(request, dict) else 400, "text/plain; charset=utf-8", b"Failed to deserialize the JSON body"
        model = request.get("model", "default")
        if model not in ("default", self.model):
            message = (f"Requested model '{model}' is not available. Available models: {self.model}. "
                       "Use 'default' to use the default model.")
            return _json_error(message)
        if request.get("max_tokens") == 0:
            return _json_error("max_tokens must be at least 1.")
        return None

    def _generate(self, request: dict, mode: str) -> Response:
        """The engine's answer: one token, or the error of a failing generation."""
        if mode == "fail":
            return _json_error(self.GENERATION_ERROR)
        with self._lock:
            self._seq_id += 1
            seq_id = self._seq_id
            prompt_tokens = max(1, len(request["prompt"].split()))
            r = self.registry
            r["mistralrs_tokens_processed_total"].inc((), prompt_tokens + 1)
            r["mistralrs_sequences_completed_total"].inc(("length",))
        return 200, "application/json", json.dumps(self.completion_json(seq_id, prompt_tokens), separators=(",", ":")).encode()

    def completion_json(self, seq_id: int = 0, prompt_tokens: int = 1) -> dict:
        """A CompletionResponse (mistralrs-core response.rs) of the one token COMPLETION_TEXT."""
        prompt_s, completion_s = 0.01, 0.02
        return {
            "id": str(seq_id),
            "choices": [{"finish_reason": "length", "index": 0, "text": self.COMPLETION_TEXT, "logprobs": None}],
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": "local",
            "object": "text_completion",
            "usage": {
                "completion_tokens": 1,
                "prompt_tokens": prompt_tokens,
                "total_tokens": prompt_tokens + 1,
                "avg_tok_per_sec": (prompt_tokens + 1) / (prompt_s + completion_s),
                "avg_prompt_tok_per_sec": prompt_tokens / prompt_s,
                "avg_compl_tok_per_sec": 1 / completion_s,
                "total_time_sec": prompt_s + completion_s,
                "total_prompt_time_sec": prompt_s,
                "total_completion_time_sec": completion_s,
            },
        }

    def _metrics_response(self):
        if not self.metrics_enabled:
            return 503, "text/plain; charset=utf-8", b"metrics disabled"
        status, _, body = super()._metrics_response()
        return status, "text/plain; charset=utf-8", body  # axum's String response

    def models_json(self) -> dict:
        created = int(self.process_start_time)
        return {
            "object": "list",
            "data": [
                {"id": "default", "object": "model", "created": created, "owned_by": "local", "root": "default"},
                {
                    "id": self.model,
                    "object": "model",
                    "created": created,
                    "owned_by": "local",
                    "root": self.model,
                    "status": "loaded",
                },
            ],
        }

    def _models_response(self):
        return 200, "application/json", json.dumps(self.models_json(), separators=(",", ":")).encode()
