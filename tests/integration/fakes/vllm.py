"""Fake ``/metrics`` of a vLLM OpenAI-compatible server (``vllm serve``, the V1 engine), with
``/health`` and ``/v1/models``.

Upstream followed (read from the released wheels' source, nothing copied):

* **vLLM v0.33.0** (the latest release, the default ``upstream``): ``vllm/v1/metrics/loggers.py``
  (``PrometheusStatLogger``: every ``vllm:*`` name, type, HELP text and label, and which series it
  creates at start), ``vllm/v1/metrics/buckets.py`` (the bucket families), ``vllm/v1/metrics/perf.py``
  (``PerfMetricsProm``, always created), ``vllm/v1/metrics/stats.py`` (what is observed when),
  ``vllm/v1/engine/__init__.py`` (``FinishReason``: stop, length, abort, error, repetition),
  ``vllm/v1/metrics/cache_hit_source.py`` and ``vllm/entrypoints/serve/instrumentator/metrics.py``
  (the HTTP metrics: ``Instrumentator(excluded_handlers=["/metrics", "/health", "/load", "/ping",
  "/version", "/server_info"]).add()``).
* **vLLM v0.10.1.1** (``upstream="0.10.1.1"``, the last release before the per-step latency
  histogram was renamed): ``vllm:time_per_output_token_seconds`` instead of
  ``vllm:inter_token_latency_seconds``, and both the deprecated ``vllm:gpu_cache_usage_perc`` /
  ``vllm:gpu_prefix_cache_*`` and the new ``vllm:kv_cache_usage_perc`` / ``vllm:prefix_cache_*``.
* **vLLM v0.8.5.post1** (``upstream="0.8.5.post1"``, the last release before the 0.9 renames): only
  ``vllm:gpu_cache_usage_perc`` and ``vllm:gpu_prefix_cache_*`` (counted in blocks), no per-source
  or perf counters.
* **prometheus-fastapi-instrumentator v8.1.0** (``metrics.py`` ``default()``, ``middleware.py``),
  the API server's HTTP layer in all three: ``http_requests_total{method,status,handler}`` (status
  grouped: "2xx", "4xx", "5xx"), the summaries ``http_request_size_bytes{handler}`` and
  ``http_response_size_bytes{handler}`` (the Content-Length headers; a streamed response has none,
  so 0), the unlabelled ``http_request_duration_highr_seconds`` (buckets 0.01 .. 60, created at
  start) and ``http_request_duration_seconds{method,handler}`` (buckets 0.1, 0.5, 1). ``handler``
  is the route template; a request the app has no route for is "none".

Every ``vllm:*`` series carries ``model_name`` (the served model name) and ``engine`` (the engine
core's index, "0" .. data_parallel_size - 1), except ``vllm:admission_rejections{model_name,reason}``.
vLLM creates every per-engine series at start (a counter at 0, a histogram with empty buckets, each
``FinishReason`` and cache source of the labelled counters); the HTTP series appear with the first
request of their handler, method and status.

Rendering is prometheus_client's, as upstream's is: with one API server vLLM uses the default
registry, so every counter, histogram and summary has a ``_created`` sample (rendered as a
``<name>_created`` gauge) and the Python runtime collectors are there; this fake serves a subset of
those (``python_gc_objects_collected_total``, ``python_info``, ``process_*``). Left out:
``vllm:cache_config_info`` (a gauge at 1 whose labels are every CacheConfig field), and the
families only optional features create (LoRA, speculative decoding, KV/EC connectors, KV-block
residency, watermarking, NaN counting). With ``--api-server-count`` above 1 upstream switches to
the multiprocess collector (no ``_created``, no runtime families), and it answers a scraper that
accepts OpenMetrics in OpenMetrics; Prometheus stores the same series either way, which is all the
stack reads.

Traffic is synthetic and deterministic (``SHAPES``): per scenario, a request rate on
/v1/chat/completions (streamed) and /v1/completions, the share of them answered 500 before the
engine saw them, the ranges of engine latency, time to first token and per-step latency, the token
counts, the prefix-cache hit share, the engine gauges and a preemption rate. A client polls
/v1/models (not inference) in every scenario, idle included.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple

from prometheus_client.metrics_core import Metric, SummaryMetricFamily

from .base import Carry, Family, FakeExporterBase, Labels, Registry, spread

UPSTREAMS = ("0.33.0", "0.10.1.1", "0.8.5.post1")
INSTRUMENTATOR_VERSION = "8.1.0"
SCENARIOS = ("healthy", "latency_regression", "error_burst", "queue_saturation", "kv_cache_exhaustion", "idle")

# vllm/v1/metrics/buckets.py (v0.33.0); the same lists are written out in v0.8.5.post1 and v0.10.1.1.
REQUEST_LATENCY_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
ITERATION_TOKENS_BUCKETS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
REQUEST_PARAMS_N_BUCKETS = (1, 2, 5, 10, 20)
REQUEST_NUM_PREEMPTIONS_BUCKETS = (1, 2, 3, 4, 5, 10, 20)
# prometheus_fastapi_instrumentator/metrics.py default()
HTTP_HIGHR_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 7.5, 10, 30, 60)
HTTP_LOWR_BUCKETS = (0.1, 0.5, 1)


def request_tokens_buckets(max_model_len: int) -> Tuple[int, ...]:
    """build_1_2_5_buckets(max_model_len): 1, 2, 5, 10, 20, 50, ... up to max_model_len."""
    out, exponent = [], 0
    while True:
        for m in (1, 2, 5):
            value = m * 10**exponent
            if value > max_model_len:
                return tuple(out)
            out.append(value)
        exponent += 1


FINISH_REASONS = {
    "0.33.0": ("stop", "length", "abort", "error", "repetition"),
    "0.10.1.1": ("stop", "length", "abort"),
    "0.8.5.post1": ("stop", "length", "abort"),
}
PROMPT_TOKEN_SOURCES = ("local_compute", "local_cache_hit", "external_kv_transfer")  # PromptTokenStats.ALL_SOURCES
CACHE_HIT_SOURCES = ("device", "host", "p2p", "disk", "external_unspecified")  # CacheHitSource
WAITING_REASONS = ("capacity", "deferred")
SLEEP_STATES = ("awake", "weights_offloaded", "discard_all")
ADMISSION_REASONS = ("max_num_queued_reqs", "max_num_queued_tokens")

# (name as exposed, type, HELP, extra labels after model_name and engine, bucket family), in the
# order PrometheusStatLogger creates them. Counters are named with the _total prometheus_client adds.
_H_RUNNING = "Number of requests in model execution batches."
_H_WAITING = "Number of requests waiting to be processed."
_H_KV = "KV-cache usage. 1 means 100 percent usage."
_H_PREEMPT = "Cumulative number of preemption from the engine."
_H_PROMPT = "Number of prefill tokens processed."
_H_GEN = "Number of generation tokens processed."
_H_SUCCESS = "Count of successfully processed requests."
_H_MFU = "(for Model Flops Utilization calculations)."
_REQUEST_HISTOGRAMS = (
    ("vllm:request_prompt_tokens", "histogram", "Number of prefill tokens processed.", (), "request_tokens"),
    ("vllm:request_generation_tokens", "histogram", "Number of generation tokens processed.", (), "request_tokens"),
    ("vllm:iteration_tokens_total", "histogram", "Histogram of number of tokens per engine_step.", (), "iteration_tokens"),
    ("vllm:request_max_num_generation_tokens", "histogram", "Histogram of maximum number of requested generation tokens.", (), "request_tokens"),
    ("vllm:request_params_n", "histogram", "Histogram of the n request parameter.", (), "request_params_n"),
    ("vllm:request_params_max_tokens", "histogram", "Histogram of the max_tokens request parameter.", (), "request_tokens"),
    ("vllm:time_to_first_token_seconds", "histogram", "Histogram of time to first token in seconds.", (), "ttft"),
)
_PHASE_HISTOGRAMS = (
    ("vllm:e2e_request_latency_seconds", "histogram", "Histogram of e2e request latency in seconds.", (), "request_latency"),
    ("vllm:request_queue_time_seconds", "histogram", "Histogram of time spent in WAITING phase for request.", (), "request_latency"),
    ("vllm:request_inference_time_seconds", "histogram", "Histogram of time spent in RUNNING phase for request.", (), "request_latency"),
    ("vllm:request_prefill_time_seconds", "histogram", "Histogram of time spent in PREFILL phase for request.", (), "request_latency"),
    ("vllm:request_decode_time_seconds", "histogram", "Histogram of time spent in DECODE phase for request.", (), "request_latency"),
)
_TPOT_BEFORE_0_10_2 = ("vllm:time_per_output_token_seconds", "histogram", "Histogram of time per output token in seconds.", (), "itl")
ENGINE_FAMILIES: Dict[str, Tuple[Tuple[str, str, str, Tuple[str, ...], Optional[str]], ...]] = {
    "0.33.0": (
        ("vllm:estimated_flops_per_gpu_total", "counter", f"Estimated number of floating point operations per GPU {_H_MFU}", (), None),
        ("vllm:estimated_read_bytes_per_gpu_total", "counter", f"Estimated number of bytes read from memory per GPU {_H_MFU}", (), None),
        ("vllm:estimated_write_bytes_per_gpu_total", "counter", f"Estimated number of bytes written to memory per GPU {_H_MFU}", (), None),
        ("vllm:num_requests_running", "gauge", _H_RUNNING, (), None),
        ("vllm:num_requests_waiting", "gauge", _H_WAITING, (), None),
        ("vllm:num_requests_waiting_by_reason", "gauge",
         "Number of waiting requests by reason. Reason labels: 'capacity' = waiting for scheduling capacity; "
         "'deferred' = deferred by transient constraints (LoRA budget, KV transfer, blocked status). Sum of all "
         "reasons equals vllm:num_requests_waiting.", ("reason",), None),
        ("vllm:engine_sleep_state", "gauge",
         "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is awake; "
         "weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.", ("sleep_state",), None),
        ("vllm:kv_cache_usage_perc", "gauge", _H_KV, (), None),
        ("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.", (), None),
        ("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.", (), None),
        ("vllm:external_prefix_cache_queries_total", "counter",
         "External prefix cache queries from KV connector cross-instance cache sharing, in terms of number of queried tokens.", (), None),
        ("vllm:external_prefix_cache_hits_total", "counter",
         "External prefix cache hits from KV connector cross-instance cache sharing, in terms of number of cached tokens.", (), None),
        ("vllm:mm_cache_queries_total", "counter", "Multi-modal cache queries, in terms of number of queried items.", (), None),
        ("vllm:mm_cache_hits_total", "counter", "Multi-modal cache hits, in terms of number of cached items.", (), None),
        ("vllm:num_preemptions_total", "counter", _H_PREEMPT, (), None),
        ("vllm:prompt_tokens_total", "counter", _H_PROMPT, (), None),
        ("vllm:prompt_tokens_by_source_total", "counter", "Number of prompt tokens by source.", ("source",), None),
        ("vllm:prompt_tokens_cached_total", "counter", "Number of cached prompt tokens (local + external).", (), None),
        ("vllm:prompt_tokens_cached_by_source_total", "counter",
         "Prefix-cache hit tokens by the cache tier that supplied them: device (local HBM), host (offloaded to DRAM), "
         "disk, p2p (transferred from another vLLM instance) or external_unspecified. Counted at admission; sums to "
         "vllm:prefix_cache_hits + vllm:external_prefix_cache_hits.", ("source",), None),
        ("vllm:generation_tokens_total", "counter", _H_GEN, (), None),
        ("vllm:request_success_total", "counter", _H_SUCCESS, ("finished_reason",), None),
        # labelled model_name and reason only: recorded by the API server, not per engine
        ("vllm:admission_rejections_total", "counter", "Number of admission attempts rejected by a queue limit, by reason.", ("reason",), None),
        *_REQUEST_HISTOGRAMS,
        ("vllm:inter_token_latency_seconds", "histogram", "Histogram of inter-token latency in seconds.", (), "itl"),
        ("vllm:request_time_per_output_token_seconds", "histogram", "Histogram of time_per_output_token_seconds per request.", (), "itl"),
        *_PHASE_HISTOGRAMS,
        ("vllm:request_num_preemptions", "histogram", "Histogram of the number of times a request was preempted.", (), "request_num_preemptions"),
        ("vllm:request_prefill_kv_computed_tokens", "histogram",
         "Histogram of new KV tokens computed during prefill (excluding cached tokens).", (), "request_tokens"),
    ),
    "0.10.1.1": (
        ("vllm:num_requests_running", "gauge", _H_RUNNING, (), None),
        ("vllm:num_requests_waiting", "gauge", _H_WAITING, (), None),
        ("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead.", (), None),
        ("vllm:gpu_prefix_cache_queries_total", "counter",
         "GPU prefix cache queries, in terms of number of queriedtokens. DEPRECATED: Use vllm:prefix_cache_queries instead.", (), None),
        ("vllm:gpu_prefix_cache_hits_total", "counter",
         "GPU prefix cache hits, in terms of number of cached tokens. DEPRECATED: Use vllm:prefix_cache_hits instead.", (), None),
        ("vllm:kv_cache_usage_perc", "gauge", _H_KV, (), None),
        ("vllm:prefix_cache_queries_total", "counter", "Prefix cache queries, in terms of number of queried tokens.", (), None),
        ("vllm:prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.", (), None),
        ("vllm:num_preemptions_total", "counter", _H_PREEMPT, (), None),
        ("vllm:prompt_tokens_total", "counter", _H_PROMPT, (), None),
        ("vllm:generation_tokens_total", "counter", _H_GEN, (), None),
        ("vllm:request_success_total", "counter", _H_SUCCESS, ("finished_reason",), None),
        *_REQUEST_HISTOGRAMS,
        _TPOT_BEFORE_0_10_2,
        *_PHASE_HISTOGRAMS,
    ),
    "0.8.5.post1": (
        ("vllm:num_requests_running", "gauge", _H_RUNNING, (), None),
        ("vllm:num_requests_waiting", "gauge", _H_WAITING, (), None),
        ("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.", (), None),
        ("vllm:gpu_prefix_cache_queries_total", "counter", "GPU prefix cache queries, in terms of number of queried blocks.", (), None),
        ("vllm:gpu_prefix_cache_hits_total", "counter", "GPU prefix cache hits, in terms of number of cached blocks.", (), None),
        ("vllm:num_preemptions_total", "counter", _H_PREEMPT, (), None),
        ("vllm:prompt_tokens_total", "counter", _H_PROMPT, (), None),
        ("vllm:generation_tokens_total", "counter", _H_GEN, (), None),
        ("vllm:request_success_total", "counter", _H_SUCCESS, ("finished_reason",), None),
        *_REQUEST_HISTOGRAMS,
        _TPOT_BEFORE_0_10_2,
        *_PHASE_HISTOGRAMS,
    ),
}
# The v0.8.5 prefix-cache counters count blocks (of this many tokens, the default --block-size).
BLOCK_SIZE = 16


@dataclass(frozen=True)
class VllmShape:
    rps: float  # inference requests per second, half streamed chat, ...
    error_ratio: float  # share answered 500 before the engine saw them
    e2e: Tuple[float, float]  # engine end-to-end latency range, seconds
    ttft: Tuple[float, float]
    itl: Tuple[float, float]
    prompt_tokens: int
    generated_tokens: int
    prefix_hit: float  # share of the queried prompt tokens found in the prefix cache
    running: int  # per engine core
    waiting: int  # per engine core
    kv_usage: float  # per engine core
    preemptions_per_s: float


class _Summary:
    __slots__ = ("count", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum = 0.0


class _Family(Family):
    """A Family that also holds summaries and, like prometheus_client's own metric objects, gives
    every series of a counter, histogram or summary a ``_created`` sample: when it was first touched."""

    def __init__(self, name: str, mtype: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Optional[Sequence[float]] = None, clock: Optional[Callable[[], float]] = None):
        super().__init__(name, mtype, help_text, labelnames, buckets)
        self.clock = clock
        self.created: Dict[Labels, float] = {}

    def _born(self, labels: Sequence[str]) -> None:
        if self.clock is not None:
            self.created.setdefault(self._key(labels), self.clock())

    def inc(self, labels: Sequence[str] = (), amount: float = 1.0) -> None:
        super().inc(labels, amount)
        self._born(labels)

    def observe(self, labels: Sequence[str], value: float, n: int = 1) -> None:
        if self.type == "summary":
            s = self.series.setdefault(self._key(labels), _Summary())
            s.count += n
            s.sum += value * n
        else:
            super().observe(labels, value, n)
        self._born(labels)

    def ensure(self, labels: Sequence[str] = ()) -> None:
        if self.type == "summary":
            self.series.setdefault(self._key(labels), _Summary())
        else:
            super().ensure(labels)
        self._born(labels)

    def clear(self) -> None:
        super().clear()
        self.created.clear()

    def metric(self) -> Metric:
        if self.type == "summary":
            m = SummaryMetricFamily(self.name, self.help, labels=self.labelnames)
            for labels, s in self.series.items():
                m.add_metric(labels, s.count, s.sum)
        else:
            m = super().metric()
        if self.clock is not None and self.type != "gauge":
            for labels in self.series:
                m.add_sample(m.name + "_created", dict(zip(self.labelnames, labels)), self.created[labels])
        return m


class _Registry(Registry):
    def add(self, name: str, mtype: str, help_text: str, labelnames: Sequence[str] = (),
            buckets: Optional[Sequence[float]] = None, clock: Optional[Callable[[], float]] = None) -> _Family:
        return self._add(_Family(name, mtype, help_text, labelnames, buckets, clock))


class FakeVllm(FakeExporterBase):
    SCENARIOS = SCENARIOS
    UPSTREAMS = UPSTREAMS

    INFERENCE_ROUTES = ("/v1/chat/completions", "/v1/completions")  # every 4th request is a /v1/completions one
    MODELS_ROUTE = "/v1/models"
    MODELS_POLL_PER_S = 0.2  # a client listing the models: not inference
    MAX_TOKENS = 256

    SHAPES: Dict[str, VllmShape] = {
        "healthy": VllmShape(4.0, 0.0, (0.8, 4.0), (0.05, 0.4), (0.015, 0.045), 300, 120, 0.4, 6, 0, 0.35, 0.0),
        "latency_regression": VllmShape(4.0, 0.0, (20.0, 55.0), (3.0, 12.0), (0.2, 0.45), 300, 120, 0.4, 6, 0, 0.45, 0.0),
        "error_burst": VllmShape(4.0, 0.3, (0.8, 4.0), (0.05, 0.4), (0.015, 0.045), 300, 120, 0.4, 6, 0, 0.35, 0.0),
        "queue_saturation": VllmShape(8.0, 0.0, (6.0, 25.0), (2.0, 9.0), (0.03, 0.08), 300, 120, 0.4, 16, 12, 0.8, 0.0),
        "kv_cache_exhaustion": VllmShape(6.0, 0.0, (4.0, 20.0), (0.5, 3.0), (0.05, 0.2), 1500, 400, 0.1, 10, 4, 0.99, 0.5),
        "idle": VllmShape(0.0, 0.0, (0.8, 4.0), (0.05, 0.4), (0.015, 0.045), 300, 120, 0.4, 0, 0, 0.0, 0.0),
    }

    def __init__(self, model: str = "Qwen/Qwen3-0.6B", upstream: str = UPSTREAMS[0], data_parallel_size: int = 1,
                 max_model_len: int = 4096, host: str = "127.0.0.1", port: int = 0):
        if upstream not in UPSTREAMS:
            raise ValueError(f"upstream must be one of {UPSTREAMS}")
        if data_parallel_size < 1:
            raise ValueError("data_parallel_size must be at least 1")
        super().__init__(host, port)
        self.model = model
        self.upstream = upstream
        self.engines = tuple(str(i) for i in range(data_parallel_size))
        self.max_model_len = int(max_model_len)
        self.process_start_time = time.time()
        self.elapsed = 0.0  # simulated seconds since the process started
        buckets = {
            "request_latency": REQUEST_LATENCY_BUCKETS,
            "ttft": TTFT_BUCKETS,
            "itl": ITL_BUCKETS,
            "iteration_tokens": ITERATION_TOKENS_BUCKETS,
            "request_params_n": REQUEST_PARAMS_N_BUCKETS,
            "request_num_preemptions": REQUEST_NUM_PREEMPTIONS_BUCKETS,
            "request_tokens": request_tokens_buckets(self.max_model_len),
        }
        clock = self._now
        r = self.registry = _Registry()
        # prometheus_client's default collectors (a subset), registered before anything of vLLM's
        r.add("python_gc_objects_collected_total", "counter", "Objects collected during gc", ("generation",))
        r.add("python_info", "gauge", "Python platform information", ("implementation", "major", "minor", "patchlevel", "version"))
        r.add("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        r.add("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.")
        r.add("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.")
        for name, mtype, help_text, extra, bucket_family in ENGINE_FAMILIES[upstream]:
            labels = ("model_name",) + extra if name == "vllm:admission_rejections_total" else ("model_name", "engine") + extra
            r.add(name, mtype, help_text, labels, buckets[bucket_family] if bucket_family else None, clock)
        # prometheus-fastapi-instrumentator default(), in its registration order
        r.add("http_requests_total", "counter", "Total number of requests by method, status and handler.", ("method", "status", "handler"), clock=clock)
        ignored = "Only value of header is respected. Otherwise ignored. No percentile calculated. "
        r.add("http_request_size_bytes", "summary", f"Content length of incoming requests by handler. {ignored}", ("handler",), clock=clock)
        r.add("http_response_size_bytes", "summary", f"Content length of outgoing responses by handler. {ignored}", ("handler",), clock=clock)
        r.add("http_request_duration_highr_seconds", "histogram",
              "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations. ",
              (), HTTP_HIGHR_BUCKETS, clock)
        r.add("http_request_duration_seconds", "histogram",
              "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important. ",
              ("method", "handler"), HTTP_LOWR_BUCKETS, clock)
        self._reset_process_locked()

    # -- state --------------------------------------------------------------------------------
    def _now(self) -> float:
        return round(self.process_start_time + self.elapsed, 3)

    def has(self, name: str) -> bool:
        return any(f.name == name for f in self.registry.families())

    def _reset_process_locked(self) -> None:
        self.registry.clear()
        self.process_start_time = time.time()
        self.elapsed = 0.0
        self._i = 0
        self._req = Carry()
        self._err = Carry()
        self._poll = Carry()
        self._preempt = Carry()
        r = self.registry
        r["python_info"].set(("CPython", "3", "12", "11", "3.12.11"), 1)
        for generation in ("0", "1", "2"):
            r["python_gc_objects_collected_total"].ensure((generation,))
        r["process_resident_memory_bytes"].set((), 2_147_483_648)
        r["process_start_time_seconds"].set((), round(self.process_start_time, 2))
        r["process_cpu_seconds_total"].ensure()
        # PrometheusStatLogger creates every per-engine series (and each labelled child it lists) at start.
        for name, _mtype, _help, extra, _b in ENGINE_FAMILIES[self.upstream]:
            family = r[name]
            if name == "vllm:admission_rejections_total":
                for reason in ADMISSION_REASONS:
                    family.ensure((self.model, reason))
                continue
            values = {
                (): [()],
                ("finished_reason",): [(v,) for v in FINISH_REASONS[self.upstream]],
                ("reason",): [(v,) for v in WAITING_REASONS],
                ("sleep_state",): [(v,) for v in SLEEP_STATES],
                ("source",): [(v,) for v in (CACHE_HIT_SOURCES if "cached_by_source" in name else PROMPT_TOKEN_SOURCES)],
            }[extra]
            for engine in self.engines:
                for v in values:
                    family.ensure((self.model, engine) + v)
        r["http_request_duration_highr_seconds"].ensure()  # unlabelled: exported from registration on
        self._apply_gauges_locked()

    @property
    def shape(self) -> VllmShape:
        return self.SHAPES[self._scenario]

    def _apply_gauges_locked(self) -> None:
        s, r = self.shape, self.registry
        for engine in self.engines:
            key = (self.model, engine)
            r["vllm:num_requests_running"].set(key, s.running)
            r["vllm:num_requests_waiting"].set(key, s.waiting)
            for gauge in ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"):
                if self.has(gauge):
                    r[gauge].set(key, s.kv_usage)
            if self.has("vllm:num_requests_waiting_by_reason"):
                r["vllm:num_requests_waiting_by_reason"].set(key + ("capacity",), s.waiting)
                r["vllm:num_requests_waiting_by_reason"].set(key + ("deferred",), 0)
            if self.has("vllm:engine_sleep_state"):
                for state in SLEEP_STATES:
                    r["vllm:engine_sleep_state"].set(key + (state,), 1 if state == "awake" else 0)

    # -- traffic ------------------------------------------------------------------------------
    def _http(self, method: str, handler: str, status: str, duration: float, request_bytes: int, response_bytes: int) -> None:
        r = self.registry
        r["http_requests_total"].inc((method, status, handler))
        r["http_request_size_bytes"].observe((handler,), request_bytes)
        r["http_response_size_bytes"].observe((handler,), response_bytes)
        r["http_request_duration_highr_seconds"].observe((), duration)
        r["http_request_duration_seconds"].observe((method, handler), duration)

    def _finish(self, i: int, engine: str) -> float:
        """One request through the engine, observed as PrometheusStatLogger does; its e2e latency."""
        s, r = self.shape, self.registry
        key = (self.model, engine)
        e2e, ttft, itl = spread(i, *s.e2e), spread(i, *s.ttft), spread(i, *s.itl)
        ttft = min(ttft, e2e)
        prompt, generated = s.prompt_tokens, s.generated_tokens
        hits = int(prompt * s.prefix_hit) // BLOCK_SIZE * BLOCK_SIZE  # whole blocks hit
        queued = ttft * 0.3
        r["vllm:prompt_tokens_total"].inc(key, prompt)
        r["vllm:generation_tokens_total"].inc(key, generated)
        r["vllm:iteration_tokens_total"].observe(key, prompt - hits + 1)
        r["vllm:iteration_tokens_total"].observe(key, max(1, s.running), generated - 1)
        r["vllm:request_max_num_generation_tokens"].observe(key, self.MAX_TOKENS)
        r["vllm:request_params_n"].observe(key, 1)
        r["vllm:time_to_first_token_seconds"].observe(key, ttft)
        # one per-step sample for each token after the first
        step = "vllm:inter_token_latency_seconds" if self.has("vllm:inter_token_latency_seconds") else "vllm:time_per_output_token_seconds"
        r[step].observe(key, itl, generated - 1)
        reason = "length" if i % 5 == 4 else "stop"
        r["vllm:request_success_total"].inc(key + (reason,))
        r["vllm:e2e_request_latency_seconds"].observe(key, e2e)
        r["vllm:request_queue_time_seconds"].observe(key, queued)
        r["vllm:request_prefill_time_seconds"].observe(key, ttft - queued)
        r["vllm:request_inference_time_seconds"].observe(key, e2e - queued)
        r["vllm:request_decode_time_seconds"].observe(key, e2e - ttft)
        r["vllm:request_prompt_tokens"].observe(key, prompt)
        r["vllm:request_generation_tokens"].observe(key, generated)
        r["vllm:request_params_max_tokens"].observe(key, self.MAX_TOKENS)
        if self.upstream == "0.8.5.post1":
            r["vllm:gpu_prefix_cache_queries_total"].inc(key, prompt // BLOCK_SIZE)
            r["vllm:gpu_prefix_cache_hits_total"].inc(key, hits // BLOCK_SIZE)
        else:
            for prefix in ("vllm:prefix_cache_", "vllm:gpu_prefix_cache_"):
                if self.has(prefix + "queries_total"):
                    r[prefix + "queries_total"].inc(key, prompt)
                    r[prefix + "hits_total"].inc(key, hits)
        if self.upstream == "0.33.0":
            r["vllm:prompt_tokens_by_source_total"].inc(key + ("local_compute",), prompt - hits)
            r["vllm:prompt_tokens_by_source_total"].inc(key + ("local_cache_hit",), hits)
            r["vllm:prompt_tokens_cached_total"].inc(key, hits)
            r["vllm:prompt_tokens_cached_by_source_total"].inc(key + ("device",), hits)
            r["vllm:request_time_per_output_token_seconds"].observe(key, (e2e - ttft) / (generated - 1))
            r["vllm:request_num_preemptions"].observe(key, 0)
            r["vllm:request_prefill_kv_computed_tokens"].observe(key, prompt - hits)
        return e2e

    def _advance_locked(self, seconds: float) -> None:
        s, r = self.shape, self.registry
        self.elapsed += seconds
        n = self._req.take(s.rps * seconds)
        for _ in range(n):
            i = self._i
            self._i += 1
            handler = self.INFERENCE_ROUTES[1 if i % 4 == 3 else 0]
            streamed = handler == "/v1/chat/completions"
            request_bytes = 900 + 50 * (i % 7)
            if self._err.take(s.error_ratio):
                # answered 500 before the engine saw it (EngineDeadError and the like)
                self._http("POST", handler, "5xx", spread(i, 0.005, 0.05), request_bytes, 120)
                continue
            engine = self.engines[i % len(self.engines)]
            e2e = self._finish(i, engine)
            self._http("POST", handler, "2xx", e2e + 0.002, request_bytes, 0 if streamed else 1400)
        for _ in range(self._poll.take(self.MODELS_POLL_PER_S * seconds)):
            self._http("GET", self.MODELS_ROUTE, "2xx", 0.002, 0, 480)
        for _ in range(self._preempt.take(s.preemptions_per_s * seconds)):
            engine = self.engines[self._i % len(self.engines)]
            r["vllm:num_preemptions_total"].inc((self.model, engine))
        r["process_cpu_seconds_total"].inc((), 0.01 * seconds + 0.002 * n)

    # -- HTTP ---------------------------------------------------------------------------------
    def _models_response(self):
        with self._lock:
            self._http("GET", self.MODELS_ROUTE, "2xx", 0.002, 0, 480)
        card = {"id": self.model, "object": "model", "owned_by": "vllm", "root": self.model, "max_model_len": self.max_model_len}
        return 200, "application/json", json.dumps({"object": "list", "data": [card]}).encode()

    def _routes(self):
        routes = dict(super()._routes())
        routes["/health"] = lambda: (200, "application/json", b"")
        routes[self.MODELS_ROUTE] = self._models_response
        return routes
