"""Fake llama.cpp ``llama-server --metrics``: ``/metrics`` and ``/health``.

Upstream followed (read from source, nothing copied): **ggml-org/llama.cpp** master at commit
**001d906a6d86e2490e394361e7cc6f478b100088**; builds b10519 to b11151 export the same families.

* ``tools/server/server-context.cpp``: the ``/metrics`` route (``get_metrics``): 501 with
  ``{"error": {"code": 501, "message": "This server does not support metrics endpoint. Start it with
  `--metrics`", "type": "not_supported_error"}}`` unless started with ``--metrics``, else 200 with
  content type ``text/plain; version=0.0.4``; every scrape resets the throughput "bucket", so the two
  throughput gauges cover the time since the previous scrape. The METRICS task sets
  ``n_processing_slots`` (slots not idle) and ``n_tasks_deferred`` (tasks deferred because no slot
  was free). ``metrics_post_decode`` counts ``llama_decode()`` calls, busy slots per call and the
  largest sequence length; ``metrics_flush_prompt`` adds computed prompt tokens and their time;
  ``metrics_on_prediction`` adds a request's generated tokens and generation time when its slot is
  released (finished, failed or cancelled). ``/health`` answers ``{"status": "ok"}``.
* ``tools/server/server-task.cpp``, ``server_task_result_metrics::to_metrics()``: the families, their
  HELP texts and types, written by hand (no client library): ten counters, then five gauges, every
  one printed from the start (0 until used), none with a label; then
  ``llamacpp:spec_decode_num_accepted_tokens_per_pos_total{position}``, only once a speculative
  draft was verified (this fake runs no draft model, so it never has one).

Rendering: prometheus_client instead of the hand-written text. Names, types, values and (no) labels are
upstream's; two differences parse to the same series in Prometheus. prometheus_client cannot print a
counter whose name does not end in ``_total``: ``llamacpp:n_tokens_max`` is served with the right
sample name under ``# TYPE llamacpp:n_tokens_max_total counter``. And numbers are Go-style
(``1.23457e+06``, ``980.0``). The values themselves are rounded as upstream's are: a C++ stream prints
a double with six significant digits, so a counter above a million moves in steps of ten or more
(``round6``). The ``Process-Start-Time-Unix`` response header is not sent.

What llama.cpp cannot show: it has no request counter, no HTTP status, no histogram and no KV-cache
gauge (``llamacpp:kv_cache_usage_ratio`` and ``llamacpp:kv_cache_tokens`` were removed in May 2025,
ggml-org/llama.cpp#13660). So ``error_burst`` shows only as requests that add prompt tokens and no
generated ones, ``latency_regression`` only in the throughput gauges and the seconds counters, and
``kv_cache_exhaustion`` only as ``llamacpp:n_tokens_max`` at the slot's context size, a lost prompt
cache, slower prefill and deferred tasks.

Traffic is synthetic and deterministic (no randomness); see ``SHAPES``. It is not a causal
simulation of the server: each scenario sets the busy slots and deferred tasks, and the counters
grow from its request rate and per-request token counts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Dict, Iterator, Union

from prometheus_client.metrics_core import Metric

from .base import Carry, FakeExporterBase, Registry, Response

UPSTREAM = "ggml-org/llama.cpp"
UPSTREAM_COMMIT = "001d906a6d86e2490e394361e7cc6f478b100088"
UPSTREAM_BUILDS = ("b10519", "b11151")  # the first and last build known to export exactly these families

SCENARIOS = ("healthy", "latency_regression", "error_burst", "queue_saturation", "kv_cache_exhaustion", "idle")

PREFIX = "llamacpp:"
# (name, HELP) in to_metrics() order; the name as served, with the prefix.
COUNTERS = (
    ("llamacpp:prompt_tokens_total", "Number of prompt tokens processed, excluding cached tokens"),
    ("llamacpp:prompt_tokens_cached_total", "Number of prompt tokens reused from the cache"),
    ("llamacpp:prompt_seconds_total", "Total time spent processing prompts"),
    ("llamacpp:tokens_predicted_total", "Number of generation tokens processed"),
    ("llamacpp:tokens_predicted_seconds_total", "Total time spent generating tokens"),
    ("llamacpp:n_decode_total", "Total number of llama_decode() calls, excluding speculative decoding and multimodal decoding"),
    ("llamacpp:n_tokens_max", "Largest observed sequence length (prompt + generation)"),
    ("llamacpp:spec_decode_num_draft_tokens_total", "Speculative: Total draft tokens generated"),
    ("llamacpp:spec_decode_num_accepted_tokens_total", "Speculative: Total draft tokens accepted by the target model"),
    ("llamacpp:spec_decode_num_drafts_total", "Speculative: Total speculative decoding verification steps"),
)
GAUGES = (
    ("llamacpp:prompt_tokens_seconds", "Average prompt throughput in tokens/s"),
    ("llamacpp:predicted_tokens_seconds", "Average generation throughput in tokens/s"),
    ("llamacpp:requests_processing", "Number of requests processing"),
    ("llamacpp:requests_deferred", "Number of requests deferred"),
    ("llamacpp:n_busy_slots_per_decode", "Average number of busy slots per llama_decode() call"),
)
# Typed counter upstream without the _total suffix, which prometheus_client's counters always add.
UNSUFFIXED_COUNTERS = ("llamacpp:n_tokens_max",)

METRICS_DISABLED_MESSAGE = "This server does not support metrics endpoint. Start it with `--metrics`"

SLOTS = "slots"  # sentinel for Shape.processing: every slot busy


def round6(value: float) -> float:
    """What upstream prints for a double: a C++ stream's default precision, six significant digits."""
    return float(f"{value:.6g}")


@dataclass(frozen=True)
class Shape:
    """Traffic and server state of one scenario."""

    rps: float  # completion requests per second
    failure_ratio: float  # requests whose decode fails after the prompt: no generated tokens
    prompt_tokens: int  # prompt tokens computed per request
    cached_tokens: int  # prompt tokens reused from the prompt cache per request
    generated_tokens: int
    prompt_tps: float  # prefill throughput, tokens per second of compute
    generation_tps: float  # generation throughput of one slot
    processing: Union[int, str]  # slots not idle (SLOTS: all of them)
    deferred: int  # tasks waiting for a slot
    fills_context: bool = False  # sequences reach the slot's context size


class FakeLlamaCpp(FakeExporterBase):
    SCENARIOS = SCENARIOS
    METRICS_CONTENT_TYPE = "text/plain; version=0.0.4"

    SHAPES: Dict[str, Shape] = {
        "healthy": Shape(
            rps=2.0, failure_ratio=0.0, prompt_tokens=200, cached_tokens=300, generated_tokens=50,
            prompt_tps=2000.0, generation_tps=40.0, processing=2, deferred=0,
        ),
        "latency_regression": Shape(
            rps=2.0, failure_ratio=0.0, prompt_tokens=200, cached_tokens=300, generated_tokens=50,
            prompt_tps=250.0, generation_tps=4.0, processing=SLOTS, deferred=0,
        ),
        "error_burst": Shape(
            rps=2.0, failure_ratio=0.30, prompt_tokens=200, cached_tokens=300, generated_tokens=50,
            prompt_tps=2000.0, generation_tps=40.0, processing=2, deferred=0,
        ),
        "queue_saturation": Shape(
            rps=2.0, failure_ratio=0.0, prompt_tokens=200, cached_tokens=300, generated_tokens=50,
            prompt_tps=1500.0, generation_tps=25.0, processing=SLOTS, deferred=12,
        ),
        "kv_cache_exhaustion": Shape(
            rps=2.0, failure_ratio=0.0, prompt_tokens=500, cached_tokens=0, generated_tokens=50,
            prompt_tps=300.0, generation_tps=15.0, processing=SLOTS, deferred=3, fills_context=True,
        ),
        "idle": Shape(
            rps=0.0, failure_ratio=0.0, prompt_tokens=200, cached_tokens=300, generated_tokens=50,
            prompt_tps=2000.0, generation_tps=40.0, processing=0, deferred=0,
        ),
    }
    # Scenarios llama.cpp has no direct metric for (module docstring).
    CANNOT_EXPRESS = ("error_burst", "latency_regression", "kv_cache_exhaustion")

    def __init__(
        self,
        model: str = "Qwen/Qwen2.5-0.5B-Instruct-GGUF",
        host: str = "127.0.0.1",
        port: int = 0,
        n_slots: int = 4,
        n_ctx_slot: int = 4096,
        n_batch: int = 2048,
        metrics_enabled: bool = True,
    ):
        super().__init__(host, port)
        self.model = model  # served by the server, but no metric carries it
        self.n_slots = int(n_slots)
        self.n_ctx_slot = int(n_ctx_slot)
        self.n_batch = int(n_batch)
        self.metrics_enabled = metrics_enabled
        r = self.registry = Registry()
        for name, help_text in COUNTERS:
            if name in UNSUFFIXED_COUNTERS:
                r.gauge(name, help_text)  # stored here; served as a counter by collect()
            else:
                r.counter(name, help_text)
        for name, help_text in GAUGES:
            r.gauge(name, help_text)
        self._reset_process_locked()

    # -- state --------------------------------------------------------------------------------
    def _reset_process_locked(self) -> None:
        self.registry.clear()
        self.prompt_n = 0  # computed prompt tokens
        self.prompt_s = 0.0
        self.cached_n = 0
        self.predicted_n = 0
        self.predicted_s = 0.0
        self.n_decode = 0
        self.n_busy_slots = 0
        self.n_tokens_max = 0
        self._reset_bucket()
        self._req = Carry()
        self._fail = Carry()
        self._decodes = Carry()
        self._apply_gauges_locked()

    def _reset_bucket(self) -> None:
        self.bucket_prompt_n, self.bucket_prompt_s = 0, 0.0
        self.bucket_predicted_n, self.bucket_predicted_s = 0, 0.0

    @property
    def shape(self) -> Shape:
        return self.SHAPES[self._scenario]

    @property
    def processing(self) -> int:
        p = self.shape.processing
        return self.n_slots if p == SLOTS else min(int(p), self.n_slots)

    def _advance_locked(self, seconds: float) -> None:
        s = self.shape
        n = self._req.take(s.rps * seconds)
        if n == 0:
            return
        failed = self._fail.take(s.failure_ratio * n)
        generated = (n - failed) * s.generated_tokens
        prompt_s = n * s.prompt_tokens / s.prompt_tps
        generated_s = generated / s.generation_tps
        self.prompt_n += n * s.prompt_tokens
        self.prompt_s += prompt_s
        self.cached_n += n * s.cached_tokens
        self.predicted_n += generated
        self.predicted_s += generated_s
        self.bucket_prompt_n += n * s.prompt_tokens
        self.bucket_prompt_s += prompt_s
        self.bucket_predicted_n += generated
        self.bucket_predicted_s += generated_s
        longest = s.cached_tokens + s.prompt_tokens + (s.generated_tokens if failed < n else 0)
        self.n_tokens_max = max(self.n_tokens_max, self.n_ctx_slot if s.fills_context else min(longest, self.n_ctx_slot))
        # one decode per prompt batch of each request, and one per generation step shared by the busy slots
        busy = max(self.processing, 1)
        calls = self._decodes.take(n * math.ceil(s.prompt_tokens / self.n_batch) + generated / busy)
        self.n_decode += calls
        self.n_busy_slots += calls * busy

    def _apply_gauges_locked(self) -> None:
        r = self.registry
        values = {
            "llamacpp:prompt_tokens_total": self.prompt_n,
            "llamacpp:prompt_tokens_cached_total": self.cached_n,
            "llamacpp:prompt_seconds_total": self.prompt_s,
            "llamacpp:tokens_predicted_total": self.predicted_n,
            "llamacpp:tokens_predicted_seconds_total": self.predicted_s,
            "llamacpp:n_decode_total": self.n_decode,
            "llamacpp:n_tokens_max": self.n_tokens_max,
            "llamacpp:spec_decode_num_draft_tokens_total": 0,
            "llamacpp:spec_decode_num_accepted_tokens_total": 0,
            "llamacpp:spec_decode_num_drafts_total": 0,
            "llamacpp:prompt_tokens_seconds": self.bucket_prompt_n / self.bucket_prompt_s if self.bucket_prompt_s else 0.0,
            "llamacpp:predicted_tokens_seconds": self.bucket_predicted_n / self.bucket_predicted_s if self.bucket_predicted_s else 0.0,
            "llamacpp:requests_processing": self.processing,
            "llamacpp:requests_deferred": self.shape.deferred,
            "llamacpp:n_busy_slots_per_decode": self.n_busy_slots / max(self.n_decode, 1),
        }
        for name, value in values.items():
            r[name].set((), round6(value))

    # -- exposition ---------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        for family in self.registry.families():
            if not family.series:
                continue
            if family.name in UNSUFFIXED_COUNTERS:
                m = Metric(family.name, family.help, "counter")
                for labels, value in family.series.items():
                    m.add_sample(family.name, dict(zip(family.labelnames, labels)), value)
                yield m
            else:
                yield family.metric()

    def _after_scrape_locked(self) -> None:
        # The METRICS task of a scrape resets the throughput bucket.
        self._reset_bucket()
        self._apply_gauges_locked()

    def _routes(self):
        return {"/metrics": self._metrics_route, "/health": self._health_response}

    def _metrics_route(self) -> Response:
        if not self.metrics_enabled:
            body = {"error": {"code": 501, "message": METRICS_DISABLED_MESSAGE, "type": "not_supported_error"}}
            return 501, "application/json; charset=utf-8", json.dumps(body).encode()
        return self._metrics_response()

    def _health_response(self) -> Response:
        return 200, "application/json; charset=utf-8", json.dumps({"status": "ok"}).encode()
