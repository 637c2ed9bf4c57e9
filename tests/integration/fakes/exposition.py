"""Dependency-free rendering of Prometheus text exposition format 0.0.4, plus a tiny loopback HTTP
server base class shared by the fakes in this package.

The fakes imitate exporters written with two different client libraries, which print the *same*
format slightly differently. The differences are captured as a :class:`Dialect`:

``RUST_METRICS_EXPORTER`` -- Rust crate ``metrics-exporter-prometheus`` 0.18.3 (the version locked in
    mistral.rs v0.9.2's Cargo.lock), repository metrics-rs/metrics, tag
    ``metrics-exporter-prometheus-v0.18.3`` (commit 9e387a41fa20ecd81a9f215a54260dc9dc5747f9),
    files ``metrics-exporter-prometheus/src/recorder.rs``, ``src/formatting.rs``, ``src/common.rs``
    and ``metrics-util/src/storage/histogram.rs`` (metrics-util v0.20.x):

    * ``# HELP`` only for metrics registered with ``describe_*`` (mistral.rs describes none, so it
      prints no HELP lines at all); always a ``# TYPE`` line.
    * counters first, then gauges, then histograms; each family is followed by one blank line.
      Upstream iterates a ``HashMap`` so the order of families *within* each kind is unspecified;
      here it is sorted by name so the output is deterministic.
    * labels in the order the call site gave them (``method, path, model, status``), ``le`` last.
    * counter values are ``u64`` (``5``); gauges, ``_sum`` and ``le`` bounds are ``f64`` printed
      with Rust's ``Display``: shortest round-trip digits, never an exponent, no trailing ``.0``
      (``le="0.001"``, ``le="1"``, ``le="1200"``, ``le="104857600"``). The crate's own test
      (``exporter/builder.rs::test_buckets``) expects ``le="25"`` for a bound of 25.0.

``GO_CLIENT`` -- ``github.com/prometheus/client_golang`` (``prometheus/common/expfmt``
    ``text_create.go``): ``# HELP`` then ``# TYPE``; families sorted by name, label names sorted,
    series sorted by label values, ``le`` last; floats via ``strconv.FormatFloat(f, 'g', -1, 64)``
    with ``1``/``0``/``+Inf`` special-cased (so ``1.395066363e+09`` but ``123456``); no blank lines;
    optional millisecond timestamps after the value (cAdvisor uses them).

The DCGM exporter renders with a Go ``text/template`` of its own rather than client_golang; its fake
(resources.py) formats its lines itself and only uses :func:`escape_help` from here.
"""

from __future__ import annotations

import bisect
import decimal
import http.server
import ipaddress
import math
import threading
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

LabelsArg = Union[Mapping[str, str], Sequence[str], None]


# --------------------------------------------------------------------------------------------------
# number formatting


def _shortest(x: float) -> Tuple[str, int]:
    """Shortest round-trip decimal digits of abs(x) (x finite, non-zero) and the position of the
    decimal point relative to the first digit (value = 0.DIGITS * 10**point)."""
    d = decimal.Decimal(repr(abs(x))).normalize()
    _, digits, exp = d.as_tuple()
    s = "".join(str(c) for c in digits)
    return s, len(s) + exp


def format_float_rust(x: float) -> str:
    """Rust ``impl Display for f64``: shortest round-trip digits, plain decimal notation."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    if x == 0:
        return sign + "0"
    digits, point = _shortest(x)
    if point >= len(digits):
        body = digits + "0" * (point - len(digits))
    elif point > 0:
        body = digits[:point] + "." + digits[point:]
    else:
        body = "0." + "0" * (-point) + digits
    return sign + body


def format_float_go(x: float) -> str:
    """expfmt ``writeFloat``: special cases, else ``strconv.FormatFloat(x, 'g', -1, 64)``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "-0" if math.copysign(1.0, x) < 0 else "0"
    sign = "-" if x < 0 else ""
    digits, point = _shortest(x)
    exp = point - 1
    if exp < -4 or exp >= 6:  # %e branch; shortest formatting uses eprec = 6
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        esign = "-" if exp < 0 else "+"
        return f"{sign}{mant}e{esign}{abs(exp):02d}"
    if point >= len(digits):
        body = digits + "0" * (point - len(digits))
    elif point > 0:
        body = digits[:point] + "." + digits[point:]
    else:
        body = "0." + "0" * (-point) + digits
    return sign + body


def escape_label_value(value: str) -> str:
    """Text format 0.0.4 label value escaping: backslash, double quote and line feed."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """Text format 0.0.4 HELP escaping: backslash and line feed."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


# --------------------------------------------------------------------------------------------------
# dialects


@dataclass(frozen=True)
class Dialect:
    name: str
    format_value: Callable[[float], str]
    format_le: Callable[[float], str]
    integer_counters: bool  # metrics-exporter-prometheus stores counters as u64
    blank_line_after_family: bool
    sort_label_names: bool
    sort_series: bool  # False: insertion order
    kind_order: Tuple[str, ...]  # empty: sort all families by name


RUST_METRICS_EXPORTER = Dialect(
    name="metrics-exporter-prometheus 0.18.3",
    format_value=format_float_rust,
    format_le=format_float_rust,
    integer_counters=True,
    blank_line_after_family=True,
    sort_label_names=False,
    sort_series=False,
    kind_order=(COUNTER, GAUGE, HISTOGRAM),
)

GO_CLIENT = Dialect(
    name="client_golang (expfmt text 0.0.4)",
    format_value=format_float_go,
    format_le=format_float_go,
    integer_counters=False,
    blank_line_after_family=False,
    sort_label_names=True,
    sort_series=True,
    kind_order=(),
)


# --------------------------------------------------------------------------------------------------
# metric families


class _Histo:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Sequence[float]):
        self.bounds = bounds
        self.counts = [0] * len(bounds)  # per bucket, not cumulative; cumulated when rendered
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, n: int = 1) -> None:
        i = bisect.bisect_left(self.bounds, value)  # first bound >= value ("le" semantics)
        if i < len(self.counts):
            self.counts[i] += n
        self.sum += value * n
        self.count += n

    def cumulative(self) -> List[Tuple[float, int]]:
        out, acc = [], 0
        for b, c in zip(self.bounds, self.counts):
            acc += c
            out.append((b, acc))
        return out


class MetricFamily:
    """One metric name with a fixed type, optional HELP, ordered label names and its series."""

    def __init__(
        self,
        name: str,
        mtype: str,
        help: Optional[str],
        labelnames: Sequence[str] = (),
        buckets: Optional[Sequence[float]] = None,
    ):
        if mtype not in (COUNTER, GAUGE, HISTOGRAM):
            raise ValueError(mtype)
        if (mtype == HISTOGRAM) != (buckets is not None):
            raise ValueError("buckets are required for histograms and only for them")
        if buckets is not None and list(buckets) != sorted(buckets):
            raise ValueError("buckets must be increasing")
        self.name = name
        self.type = mtype
        self.help = help
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(float(b) for b in buckets) if buckets is not None else None
        # key: tuple of label values -> float (counter/gauge) or _Histo; timestamps kept apart
        self._series: Dict[Tuple[str, ...], Union[float, _Histo]] = {}
        self._timestamps: Dict[Tuple[str, ...], int] = {}

    # -- keys ---------------------------------------------------------------------------------
    def key(self, labels: LabelsArg) -> Tuple[str, ...]:
        if labels is None:
            labels = ()
        if isinstance(labels, Mapping):
            if set(labels) != set(self.labelnames):
                raise ValueError(f"{self.name}: labels {sorted(labels)} != {sorted(self.labelnames)}")
            return tuple(str(labels[n]) for n in self.labelnames)
        values = tuple(str(v) for v in labels)
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected {len(self.labelnames)} label values")
        return values

    # -- mutation -----------------------------------------------------------------------------
    def inc(self, labels: LabelsArg = None, amount: float = 1.0) -> None:
        if self.type != COUNTER:
            raise TypeError(f"{self.name} is a {self.type}")
        if amount < 0:
            raise ValueError("counters only go up")
        k = self.key(labels)
        self._series[k] = self._series.get(k, 0.0) + amount

    def set(self, labels: LabelsArg = None, value: float = 0.0, timestamp_ms: Optional[int] = None) -> None:
        if self.type == HISTOGRAM:
            raise TypeError(f"{self.name} is a histogram")
        k = self.key(labels)
        self._series[k] = float(value)
        if timestamp_ms is None:
            self._timestamps.pop(k, None)
        else:
            self._timestamps[k] = int(timestamp_ms)

    def set_timestamp(self, labels: LabelsArg, timestamp_ms: Optional[int]) -> None:
        k = self.key(labels)
        if timestamp_ms is None:
            self._timestamps.pop(k, None)
        else:
            self._timestamps[k] = int(timestamp_ms)

    def observe(self, labels: LabelsArg, value: float, n: int = 1) -> None:
        if self.type != HISTOGRAM:
            raise TypeError(f"{self.name} is a {self.type}")
        k = self.key(labels)
        h = self._series.get(k)
        if h is None:
            h = self._series[k] = _Histo(self.buckets)
        h.observe(value, n)

    def ensure(self, labels: LabelsArg = None) -> None:
        """Create the series at zero if missing (like touching a metric handle without recording)."""
        k = self.key(labels)
        if k not in self._series:
            self._series[k] = _Histo(self.buckets) if self.type == HISTOGRAM else 0.0

    def remove(self, labels: LabelsArg) -> None:
        k = self.key(labels)
        self._series.pop(k, None)
        self._timestamps.pop(k, None)

    def clear(self) -> None:
        self._series.clear()
        self._timestamps.clear()

    # -- reading ------------------------------------------------------------------------------
    def has(self, labels: LabelsArg = None) -> bool:
        return self.key(labels) in self._series

    def get(self, labels: LabelsArg = None) -> float:
        v = self._series.get(self.key(labels))
        if v is None:
            return 0.0
        return v.count if isinstance(v, _Histo) else v

    def histogram(self, labels: LabelsArg = None) -> Optional[Tuple[List[Tuple[float, int]], float, int]]:
        h = self._series.get(self.key(labels))
        if h is None:
            return None
        return h.cumulative(), h.sum, h.count

    def __len__(self) -> int:
        return len(self._series)

    # -- rendering ----------------------------------------------------------------------------
    def render(self, dialect: Dialect, out: List[str]) -> None:
        if not self._series:
            return
        if self.help is not None:
            out.append(f"# HELP {self.name} {escape_help(self.help)}\n")
        out.append(f"# TYPE {self.name} {self.type}\n")
        names = self.labelnames
        order = list(range(len(names)))
        if dialect.sort_label_names:
            order.sort(key=lambda i: names[i])
        items = list(self._series.items())
        if dialect.sort_series:
            items.sort(key=lambda kv: tuple(kv[0][i] for i in order))

        def labelstr(key: Tuple[str, ...], extra: Optional[Tuple[str, str]] = None) -> str:
            parts = [f'{names[i]}="{escape_label_value(key[i])}"' for i in order]
            if extra is not None:
                parts.append(f'{extra[0]}="{extra[1]}"')
            return "{" + ",".join(parts) + "}" if parts else ""

        for key, val in items:
            ts = self._timestamps.get(key)
            suffix = f" {ts}\n" if ts is not None else "\n"
            if isinstance(val, _Histo):
                for bound, cum in val.cumulative():
                    out.append(f"{self.name}_bucket{labelstr(key, ('le', dialect.format_le(bound)))} {cum}\n")
                out.append(f'{self.name}_bucket{labelstr(key, ("le", "+Inf"))} {val.count}\n')
                out.append(f"{self.name}_sum{labelstr(key)} {dialect.format_value(val.sum)}\n")
                out.append(f"{self.name}_count{labelstr(key)} {val.count}\n")
            elif self.type == COUNTER and dialect.integer_counters:
                out.append(f"{self.name}{labelstr(key)} {int(val)}{suffix}")
            else:
                out.append(f"{self.name}{labelstr(key)} {dialect.format_value(val)}{suffix}")
        if dialect.blank_line_after_family:
            out.append("\n")


class Registry:
    """An ordered set of families rendered in one dialect."""

    def __init__(self, dialect: Dialect):
        self.dialect = dialect
        self._families: Dict[str, MetricFamily] = {}

    def add(self, family: MetricFamily) -> MetricFamily:
        if family.name in self._families:
            raise ValueError(f"duplicate family {family.name}")
        self._families[family.name] = family
        return family

    def counter(self, name: str, help: Optional[str], labelnames: Sequence[str] = ()) -> MetricFamily:
        return self.add(MetricFamily(name, COUNTER, help, labelnames))

    def gauge(self, name: str, help: Optional[str], labelnames: Sequence[str] = ()) -> MetricFamily:
        return self.add(MetricFamily(name, GAUGE, help, labelnames))

    def histogram(
        self, name: str, help: Optional[str], labelnames: Sequence[str], buckets: Sequence[float]
    ) -> MetricFamily:
        return self.add(MetricFamily(name, HISTOGRAM, help, labelnames, buckets))

    def __getitem__(self, name: str) -> MetricFamily:
        return self._families[name]

    def families(self) -> Iterable[MetricFamily]:
        return self._families.values()

    def clear(self) -> None:
        for f in self._families.values():
            f.clear()

    def render(self) -> str:
        fams = list(self._families.values())
        if self.dialect.kind_order:
            rank = {k: i for i, k in enumerate(self.dialect.kind_order)}
            fams.sort(key=lambda f: (rank[f.type], f.name))
        else:
            fams.sort(key=lambda f: f.name)
        out: List[str] = []
        for f in fams:
            f.render(self.dialect, out)
        return "".join(out)


# --------------------------------------------------------------------------------------------------
# deterministic spreading of samples


GOLDEN = 0.6180339887498949


def spread(i: int, lo: float, hi: float) -> float:
    """The i-th value of a deterministic low-discrepancy sequence in [lo, hi] (no randomness)."""
    return lo + (hi - lo) * ((i * GOLDEN + 0.5) % 1.0)


# --------------------------------------------------------------------------------------------------
# loopback HTTP serving


Response = Tuple[int, str, bytes]


def _check_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"fakes only bind loopback addresses, not {host!r}")


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class FakeExporterBase:
    """start/stop/port/url/scenario/clock plumbing shared by every fake.

    Subclasses define ``SCENARIOS``, ``_advance_locked(seconds)``, ``_render_locked()``,
    ``_reset_process_locked()`` and may extend ``_routes()``. All state changes and renders happen
    under ``self._lock``.
    """

    SCENARIOS: Tuple[str, ...] = ()
    METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
    MAX_CLOCK_TICKS = 86_400  # run_clock never runs longer than this many ticks

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        _check_loopback(host)
        self._host = host
        self._port = int(port)
        self._lock = threading.RLock()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._clock_thread: Optional[threading.Thread] = None
        self._clock_stop = threading.Event()
        self._scenario = self.SCENARIOS[0] if self.SCENARIOS else ""
        self.scrapes = 0  # successful /metrics responses served over HTTP

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            fake = self

            class Handler(http.server.BaseHTTPRequestHandler):
                # one request per connection: after stop() no kept-alive connection can still answer
                protocol_version = "HTTP/1.0"

                def do_GET(self):  # noqa: N802 (http.server API)
                    path = self.path.split("?", 1)[0]
                    route = fake._routes().get(path)
                    status, ctype, body = route() if route else (404, "text/plain; charset=utf-8", b"")
                    self.send_response(status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

                def log_message(self, *args):  # keep test output quiet
                    pass

            server = _Server((self._host, self._port), Handler)
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05},
                name=f"{type(self).__name__}:{self._port}", daemon=True,
            )
            self._thread.start()

    def stop(self) -> None:
        """Close the listening socket (the target goes down). State is kept; start() resumes it."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}/metrics"

    def restart_process(self) -> None:
        """Simulate a restart of the exporter process: counters and histograms start again at 0."""
        with self._lock:
            self._reset_process_locked()

    # -- scenarios ----------------------------------------------------------------------------
    @property
    def scenario(self) -> str:
        return self._scenario

    def set_scenario(self, name: str) -> None:
        if name not in self.SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}; expected one of {self.SCENARIOS}")
        with self._lock:
            self._scenario = name
            self._apply_gauges_locked()

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("cannot advance by a negative time")
        with self._lock:
            self._advance_locked(float(seconds))
            self._apply_gauges_locked()

    def exposition(self) -> str:
        with self._lock:
            return self._render_locked()

    # -- clock --------------------------------------------------------------------------------
    def run_clock(self, interval_s: float = 1.0, max_ticks: Optional[int] = None) -> None:
        """Call advance(interval_s) every interval_s seconds from a daemon thread, at most
        max_ticks times (default MAX_CLOCK_TICKS). Idempotent while running."""
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        ticks = self.MAX_CLOCK_TICKS if max_ticks is None else int(max_ticks)
        with self._lock:
            if self._clock_thread is not None and self._clock_thread.is_alive():
                return
            self._clock_stop = threading.Event()
            stop = self._clock_stop

            def loop():
                for _ in range(ticks):
                    if stop.wait(interval_s):
                        return
                    self.advance(interval_s)

            self._clock_thread = threading.Thread(target=loop, name=f"{type(self).__name__}-clock", daemon=True)
            self._clock_thread.start()

    def stop_clock(self) -> None:
        self._clock_stop.set()
        t = self._clock_thread
        if t is not None:
            t.join(timeout=5)
        self._clock_thread = None

    def close(self) -> None:
        self.stop_clock()
        self.stop()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- HTTP ---------------------------------------------------------------------------------
    def _routes(self) -> Dict[str, Callable[[], Response]]:
        return {"/metrics": self._metrics_response}

    def _metrics_response(self) -> Response:
        with self._lock:
            self._before_scrape_locked()
            body = self._render_locked().encode()
            self._after_scrape_locked()
            self.scrapes += 1
        return 200, self.METRICS_CONTENT_TYPE, body

    # -- hooks --------------------------------------------------------------------------------
    def _before_scrape_locked(self) -> None:
        pass

    def _after_scrape_locked(self) -> None:
        pass

    def _apply_gauges_locked(self) -> None:
        pass

    def _advance_locked(self, seconds: float) -> None:
        raise NotImplementedError

    def _render_locked(self) -> str:
        raise NotImplementedError

    def _reset_process_locked(self) -> None:
        raise NotImplementedError


class Carry:
    """Turns a fractional rate times elapsed time into whole events, deterministically."""

    __slots__ = ("acc",)

    def __init__(self) -> None:
        self.acc = 0.0

    def take(self, amount: float) -> int:
        self.acc += amount
        n = int(self.acc + 1e-9)
        self.acc -= n
        return n
