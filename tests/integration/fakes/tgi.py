"""Fake ``/metrics`` of Hugging Face Text Generation Inference (the ``text-generation-router`` of
``text-generation-launcher``), and ``/health``.

Upstream followed (read from source, nothing copied): huggingface/text-generation-inference tag
**v3.3.7** (commit dfb3fbe78e0d1d69251bd33065591c61bafdfaa8, 2025-12-18, the latest 3.x release;
``main`` differs from it by one CI commit and no metric):

* ``router/src/server.rs``: ``start()`` installs ``metrics-exporter-prometheus`` (0.15.3 in
  ``Cargo.lock``) with per-metric buckets and describes the metrics (the HELP texts); the first
  description of a name wins (``descriptions.entry(..).or_insert``), so ``tgi_request_duration`` is
  "Request duration", not the later "Total time spent processing the request". Buckets:

  - every histogram whose name ends in ``duration``: 35 bounds, 0.0001 x 1.5^k for k = 1..35
    (0.00015 .. 145.6s), computed by repeated multiplication (``DURATION_BUCKETS``);
  - ``tgi_request_input_length``: ``max_input_tokens / 100 x (1..100)``;
  - ``tgi_request_generated_tokens`` and ``tgi_request_max_new_tokens``: ``max_total_tokens / 100 x (1..100)``;
  - ``tgi_batch_next_size``: 1 .. 1024;
  - anything else recorded as a histogram has no buckets and renders as a summary with the
    exporter's default quantiles 0, 0.5, 0.9, 0.95, 0.99, 0.999, 1: ``tgi_request_skipped_tokens``.

  ``generate_internal`` and ``generate_stream_internal`` count ``tgi_request_count`` and, when the
  request ends well, ``tgi_request_success`` and the request histograms (duration, validation, queue,
  inference, mean time per token = inference time / generated tokens, generated tokens).
  ``chat_completions`` and ``completions`` count ``tgi_request_count`` once more before calling
  them, so an OpenAI-route request counts 2 (``ROUTES``). ``GET /metrics`` answers
  ``prom_handle.render()`` as a String (``text/plain; charset=utf-8``); ``GET /health`` answers 200
  with an empty body.
* ``router/src/infer/mod.rs``: ``tgi_request_failure{err="overloaded"|"validation"|"template"|"incomplete"}``;
  ``router/src/validation.rs``: ``tgi_request_input_length`` and ``tgi_request_max_new_tokens`` per
  validated request (the chunk ``min(max_new_tokens, 1024)``).
* ``backends/v3/src/backend.rs``: ``tgi_batch_current_size`` / ``tgi_batch_current_max_tokens``
  (set every batch step, 0 when the batch empties), ``tgi_batch_inference_count``/``_success``/
  ``_failure{method}``, ``tgi_batch_{forward,decode,filter,inference}_duration{method}``,
  ``tgi_batch_concat_duration{method="decode"}``, ``tgi_batch_concat{reason}``,
  ``tgi_request_failure{err="generation"|"dropped"}``, ``tgi_request_skipped_tokens`` (one sample
  per request per step: the speculated tokens, 0 without speculation); ``queue.rs``:
  ``tgi_queue_size`` and ``tgi_batch_next_size``; ``lib.rs`` sets ``tgi_batch_max_total_tokens``
  before the recorder exists, so it is never served (not here either).
* ``docs/source/reference/metrics.md`` (the table of metrics; it omits tgi_request_failure,
  tgi_batch_inference_failure, tgi_batch_concat and tgi_batch_concat_duration, which the code has).

No series has a model label (TGI sets no global labels).

Rendering: prometheus_client, not metrics-exporter-prometheus. Two differences need handling:
prometheus_client names a counter family ``<name>_total`` in its HELP/TYPE lines, and TGI's counters
have no ``_total`` (``tgi_request_count 5``), so the samples here carry the bare names and
``exposition()`` writes the HELP/TYPE lines of those families under the bare names too; and
prometheus_client prints a HELP line for every family, so the families TGI does not describe carry
``NO_HELP``. Otherwise the text differs only where Prometheus parses both the same (``le="1.0"``
for ``le="1"``, order, float formatting). Note that prometheus_client's *parser* reports a counter's
samples as ``<name>_total``; Prometheus stores them under the name printed (``tgi_request_count``).

Traffic is synthetic and deterministic (see ``SHAPES``): a scenario sets the request rate, the
share of requests the shards fail ("generation" errors), the ranges of validation, queue and
inference time, and the batch and queue gauges. The batch is modelled as continuously chunked
(v3's default with prefix caching): each request joins the running batch through one prefill
(``tgi_batch_concat{reason="chunking"}``), and the batch takes one decode step per
``Shape.step`` seconds. Only the exposition shape is faithful, not a causal simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, Sequence, Tuple

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from .base import Carry, Family, FakeExporterBase, Registry, spread

UPSTREAM_TAG = "v3.3.7"
UPSTREAM_COMMIT = "dfb3fbe78e0d1d69251bd33065591c61bafdfaa8"
METRICS_EXPORTER_PROMETHEUS = "0.15.3"

SCENARIOS = ("healthy", "latency_regression", "error_burst", "queue_saturation", "kv_cache_exhaustion", "idle")
NO_HELP = "TGI serves no HELP for this metric"


def duration_buckets() -> Tuple[float, ...]:
    """server.rs: `value = 0.0001; 35 times: value *= 1.5; push(value)` (the same float steps)."""
    out, value = [], 0.0001
    for _ in range(35):
        value *= 1.5
        out.append(value)
    return tuple(out)


def hundredths(limit: int) -> Tuple[float, ...]:
    """server.rs: `(limit as f64 / 100.0) * (x + 1) as f64` for x in 0..100."""
    return tuple((limit / 100.0) * (x + 1) for x in range(100))


DURATION_BUCKETS = duration_buckets()
BATCH_SIZE_BUCKETS = tuple(float(x + 1) for x in range(1024))
SUMMARY_QUANTILES = (0.0, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0)
DEFAULT_GENERATION_LENGTH = 1024  # validation.rs: the max_new_tokens chunk a request is scheduled with

# tgi_request_count increments per request, by route (server.rs).
ROUTES = {"/v1/chat/completions": 2, "/v1/completions": 2, "/generate": 1, "/generate_stream": 1}


class _BareCounter(Family):
    """A counter whose samples carry the bare name, as metrics-exporter-prometheus prints them."""

    def metric(self) -> Metric:
        m = Metric(self.name, self.help, "counter")
        for labels, value in self.series.items():
            m.add_sample(self.name, dict(zip(self.labelnames, labels)), value, self.timestamp)
        return m


class _Summary(Family):
    """A histogram without configured buckets, which metrics-exporter-prometheus renders as a
    summary. The quantiles here are those of the last value observed (enough for a constant, like
    skipped tokens without speculation)."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()):
        super().__init__(name, "gauge", help_text, labelnames)  # state only; metric() renders it
        self.type = "summary"
        self.last: Dict[Tuple[str, ...], float] = {}

    def observe(self, labels: Sequence[str], value: float, n: int = 1) -> None:
        key = self._key(labels)
        count, total = self.series.get(key, (0, 0.0))
        self.series[key] = (count + n, total + value * n)
        self.last[key] = value

    def clear(self) -> None:
        super().clear()
        self.last.clear()

    def metric(self) -> Metric:
        m = Metric(self.name, self.help, "summary")
        for labels, (count, total) in self.series.items():
            base = dict(zip(self.labelnames, labels))
            for q in SUMMARY_QUANTILES:
                m.add_sample(self.name, {**base, "quantile": floatToGoString(q)}, self.last[labels])
            m.add_sample(self.name + "_sum", base, total)
            m.add_sample(self.name + "_count", base, count)
        return m


class TgiRegistry(Registry):
    def bare_counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Family:
        return self._add(_BareCounter(name, "counter", help, labelnames))

    def summary(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Family:
        return self._add(_Summary(name, help, labelnames))

    def bare_counter_names(self) -> Iterator[str]:
        return (f.name for f in self.families() if isinstance(f, _BareCounter))


@dataclass(frozen=True)
class Shape:
    """Traffic and router state of one scenario; ranges are (low, high) seconds per request."""

    rps: float
    error_ratio: float  # share of requests the shards fail (err="generation", 424)
    validation: Tuple[float, float]
    queue: Tuple[float, float]
    inference: Tuple[float, float]
    step: float  # seconds per decode step of the running batch
    prompt_tokens: int
    generated_tokens: int
    max_new_tokens: int
    running: int  # tgi_batch_current_size
    waiting: int  # tgi_queue_size


class FakeTgi(FakeExporterBase):
    SCENARIOS = SCENARIOS
    ROUTES = ROUTES
    DURATION_BUCKETS = DURATION_BUCKETS
    BATCH_SIZE_BUCKETS = BATCH_SIZE_BUCKETS

    SHAPES: Dict[str, Shape] = {
        "healthy": Shape(
            rps=5.0, error_ratio=0.0, validation=(0.001, 0.005), queue=(0.001, 0.05), inference=(0.25, 2.5),
            step=0.03, prompt_tokens=200, generated_tokens=50, max_new_tokens=256, running=4, waiting=0,
        ),
        "latency_regression": Shape(
            rps=5.0, error_ratio=0.0, validation=(0.001, 0.005), queue=(0.001, 0.05), inference=(10.0, 60.0),
            step=0.6, prompt_tokens=200, generated_tokens=50, max_new_tokens=256, running=4, waiting=0,
        ),
        "error_burst": Shape(
            rps=5.0, error_ratio=0.30, validation=(0.001, 0.005), queue=(0.001, 0.05), inference=(0.25, 2.5),
            step=0.03, prompt_tokens=200, generated_tokens=50, max_new_tokens=256, running=4, waiting=0,
        ),
        "queue_saturation": Shape(
            rps=5.0, error_ratio=0.0, validation=(0.001, 0.005), queue=(3.0, 12.0), inference=(1.0, 4.0),
            step=0.05, prompt_tokens=200, generated_tokens=50, max_new_tokens=256, running=32, waiting=12,
        ),
        # The token budget is full: the batch reserves most of it (long max_new_tokens) and new
        # requests wait in the queue. TGI preempts nothing and exports no budget to compare with.
        "kv_cache_exhaustion": Shape(
            rps=5.0, error_ratio=0.0, validation=(0.001, 0.005), queue=(1.0, 5.0), inference=(2.0, 10.0),
            step=0.08, prompt_tokens=200, generated_tokens=50, max_new_tokens=4096, running=48, waiting=6,
        ),
        "idle": Shape(
            rps=0.0, error_ratio=0.0, validation=(0.001, 0.005), queue=(0.001, 0.05), inference=(0.25, 2.5),
            step=0.03, prompt_tokens=200, generated_tokens=50, max_new_tokens=256, running=0, waiting=0,
        ),
    }

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        route: str = "/v1/chat/completions",
        max_input_tokens: int = 4095,
        max_total_tokens: int = 4096,
    ):
        if route not in ROUTES:
            raise ValueError(f"route must be one of {tuple(ROUTES)}")
        super().__init__(host, port)
        self.route = route
        self.max_input_tokens = int(max_input_tokens)
        self.max_total_tokens = int(max_total_tokens)
        self.input_length_buckets = hundredths(self.max_input_tokens)
        self.generated_tokens_buckets = hundredths(self.max_total_tokens)
        self._build_registry()
        self._reset_process_locked()

    # -- registry -----------------------------------------------------------------------------
    def _build_registry(self) -> None:
        r = self.registry = TgiRegistry()
        d = DURATION_BUCKETS
        # router/src/server.rs, infer/mod.rs, validation.rs
        r.bare_counter("tgi_request_count", "Total number of requests")
        r.bare_counter("tgi_request_success", "Number of successful requests")
        r.bare_counter("tgi_request_failure", NO_HELP, ("err",))
        r.histogram("tgi_request_duration", "Request duration", (), d)
        r.histogram("tgi_request_validation_duration", "Request validation duration", (), d)
        r.histogram("tgi_request_queue_duration", "Request queue duration", (), d)
        r.histogram("tgi_request_inference_duration", "Request inference duration", (), d)
        r.histogram("tgi_request_mean_time_per_token_duration", "Mean time per token per request", (), d)
        r.histogram("tgi_request_input_length", "Input token length per request", (), self.input_length_buckets)
        r.histogram("tgi_request_max_new_tokens", "Maximum new tokens per request", (), self.generated_tokens_buckets)
        r.histogram("tgi_request_generated_tokens", "Generated tokens per request", (), self.generated_tokens_buckets)
        r.summary("tgi_request_skipped_tokens", "Speculated tokens per request")
        # backends/v3/src/queue.rs, backend.rs
        r.gauge("tgi_queue_size", "Current queue size")
        r.gauge("tgi_batch_current_size", "Current batch size")
        r.gauge("tgi_batch_current_max_tokens", "Maximum tokens for the current batch")
        r.histogram("tgi_batch_next_size", "Batch size of the next batch", (), BATCH_SIZE_BUCKETS)
        r.bare_counter("tgi_batch_inference_count", "Inference calls per method (prefill or decode)", ("method",))
        r.bare_counter("tgi_batch_inference_success", "Number of successful inference calls per method (prefill or decode)", ("method",))
        r.bare_counter("tgi_batch_inference_failure", NO_HELP, ("method",))
        r.bare_counter("tgi_batch_concat", NO_HELP, ("reason",))
        r.histogram("tgi_batch_concat_duration", NO_HELP, ("method",), d)
        r.histogram("tgi_batch_forward_duration", "Batch forward duration per method (prefill or decode)", ("method",), d)
        r.histogram("tgi_batch_decode_duration", "Time spent decoding a batch per method (prefill or decode)", ("method",), d)
        r.histogram(
            "tgi_batch_filter_duration",
            "Time spent filtering batches and sending generated tokens per method (prefill or decode)",
            ("method",), d,
        )
        r.histogram("tgi_batch_inference_duration", "Batch inference duration", ("method",), d)

    def _reset_process_locked(self) -> None:
        self.registry.clear()  # every series appears with its first event, as upstream's do
        self._i = 0  # request index driving the deterministic sample sequences
        self._req = Carry()
        self._err = Carry()
        self._steps = Carry()
        self._batch_failures = Carry()
        self._seen_request = False

    # -- scenario driving ---------------------------------------------------------------------
    @property
    def shape(self) -> Shape:
        return self.SHAPES[self._scenario]

    def reserved_tokens(self, scenario: str) -> int:
        """tgi_batch_current_max_tokens: what the running batch reserves, prompt plus max_new_tokens chunk each."""
        s = self.SHAPES[scenario]
        return s.running * (s.prompt_tokens + min(s.max_new_tokens, DEFAULT_GENERATION_LENGTH))

    def _apply_gauges_locked(self) -> None:
        if not self._seen_request:
            return  # queue.rs and backend.rs touch the gauges only once a request came in
        s = self.shape
        r = self.registry
        r["tgi_queue_size"].set((), s.waiting)
        r["tgi_batch_current_size"].set((), s.running)
        r["tgi_batch_current_max_tokens"].set((), self.reserved_tokens(self._scenario))

    def _advance_locked(self, seconds: float) -> None:
        s = self.shape
        r = self.registry
        n = self._req.take(s.rps * seconds)
        per_request = ROUTES[self.route]
        max_new = min(s.max_new_tokens, DEFAULT_GENERATION_LENGTH)
        for _ in range(n):
            i = self._i
            self._i += 1
            self._seen_request = True
            r["tgi_request_count"].inc((), per_request)
            r["tgi_request_input_length"].observe((), s.prompt_tokens)
            r["tgi_request_max_new_tokens"].observe((), max_new)
            # the request joins the running batch through one chunked prefill
            r["tgi_batch_next_size"].observe((), 1)
            r["tgi_batch_concat"].inc(("chunking",))
            r["tgi_batch_concat_duration"].observe(("decode",), 0.0005)
            r["tgi_batch_inference_count"].inc(("prefill",))
            r["tgi_batch_inference_success"].inc(("prefill",))
            r["tgi_batch_forward_duration"].observe(("prefill",), s.step * 2)
            r["tgi_batch_decode_duration"].observe(("prefill",), 0.0005)
            r["tgi_batch_filter_duration"].observe(("prefill",), 0.0002)
            r["tgi_batch_inference_duration"].observe(("prefill",), s.step * 2 + 0.0007)
            if self._err.take(s.error_ratio):
                # a decode step fails on the shards: send_errors fails every entry of the batch
                # (err="generation", answered 424), one failed step per `running` failed requests
                r["tgi_request_failure"].inc(("generation",))
                if self._batch_failures.take(1.0 / max(s.running, 1)):
                    r["tgi_batch_inference_failure"].inc(("decode",))
                continue
            validation = spread(i, *s.validation)
            queue = spread(i + 1, *s.queue)
            inference = spread(i + 2, *s.inference)
            r["tgi_request_success"].inc()
            r["tgi_request_duration"].observe((), validation + queue + inference)
            r["tgi_request_validation_duration"].observe((), validation)
            r["tgi_request_queue_duration"].observe((), queue)
            r["tgi_request_inference_duration"].observe((), inference)
            r["tgi_request_mean_time_per_token_duration"].observe((), inference / s.generated_tokens)
            r["tgi_request_generated_tokens"].observe((), s.generated_tokens)
            r["tgi_request_skipped_tokens"].observe((), 0.0, s.generated_tokens)  # no speculation
        if s.running > 0 and self._seen_request:
            for _ in range(self._steps.take(seconds / s.step)):
                r["tgi_batch_inference_count"].inc(("decode",))
                r["tgi_batch_inference_success"].inc(("decode",))
                r["tgi_batch_forward_duration"].observe(("decode",), s.step * 0.9)
                r["tgi_batch_decode_duration"].observe(("decode",), 0.0005)
                r["tgi_batch_filter_duration"].observe(("decode",), 0.0002)
                r["tgi_batch_inference_duration"].observe(("decode",), s.step)

    # -- HTTP ---------------------------------------------------------------------------------
    def exposition(self) -> str:
        """The /metrics body: prometheus_client's text, with the counter families' HELP and TYPE
        lines under the bare names TGI prints (prometheus_client would say `<name>_total`)."""
        with self._lock:
            text = generate_latest(self).decode()
        for name in self.registry.bare_counter_names():
            text = text.replace(f"# HELP {name}_total ", f"# HELP {name} ", 1)
            text = text.replace(f"# TYPE {name}_total counter\n", f"# TYPE {name} counter\n", 1)
        return text

    def _routes(self):
        routes = super()._routes()
        routes["/health"] = lambda: (200, "text/plain; charset=utf-8", b"")
        return routes

    def _metrics_response(self):
        status, _, body = super()._metrics_response()
        return status, "text/plain; charset=utf-8", body  # axum's String response
