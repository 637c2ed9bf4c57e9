"""What every fake shares: metric state rendered through prometheus_client, deterministic traffic
helpers, and a loopback HTTP server with a simulated clock."""

from __future__ import annotations

import bisect
import http.server
import ipaddress
import select
import socket
import threading
from itertools import accumulate
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

Labels = Tuple[str, ...]


class _Histogram:
    __slots__ = ("counts", "sum")

    def __init__(self, n_buckets: int):
        self.counts = [0] * (n_buckets + 1)  # per bucket, the last one is +Inf; cumulated when collected
        self.sum = 0.0


class Family:
    """One metric: fixed name, type, HELP, label names and buckets, with its series keyed by label
    values. Exporters only show a series once code has touched it, so a family starts empty."""

    _METRIC = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily}

    def __init__(self, name: str, mtype: str, help_text: str, labelnames: Sequence[str] = (),
                 buckets: Optional[Sequence[float]] = None):
        if (mtype == "histogram") != (buckets is not None):
            raise ValueError("buckets are required for histograms and only for them")
        self.name = name
        self.type = mtype
        self.help = help_text
        self.labelnames = tuple(labelnames)
        self.buckets = tuple(float(b) for b in buckets) if buckets is not None else None
        self.timestamp: Optional[float] = None  # unix seconds, put on every sample when set
        self.series: Dict[Labels, Union[float, _Histogram]] = {}

    def _key(self, labels: Sequence[str]) -> Labels:
        if len(labels) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected values for {self.labelnames}, got {labels}")
        return tuple(str(v) for v in labels)

    def inc(self, labels: Sequence[str] = (), amount: float = 1.0) -> None:
        assert self.type == "counter" and amount >= 0, self.name
        key = self._key(labels)
        self.series[key] = self.series.get(key, 0.0) + amount

    def set(self, labels: Sequence[str] = (), value: float = 0.0) -> None:
        assert self.type != "histogram", self.name
        self.series[self._key(labels)] = float(value)

    def observe(self, labels: Sequence[str], value: float, n: int = 1) -> None:
        assert self.type == "histogram", self.name
        key = self._key(labels)
        h = self.series.get(key)
        if h is None:
            h = self.series[key] = _Histogram(len(self.buckets))
        h.counts[bisect.bisect_left(self.buckets, value)] += n  # first bound >= value: "le" semantics
        h.sum += value * n

    def ensure(self, labels: Sequence[str] = ()) -> None:
        """Create the series at zero, as touching a metric handle without recording does."""
        key = self._key(labels)
        if key not in self.series:
            self.series[key] = _Histogram(len(self.buckets)) if self.type == "histogram" else 0.0

    def has(self, labels: Sequence[str] = ()) -> bool:
        return self._key(labels) in self.series

    def remove(self, labels: Sequence[str]) -> None:
        self.series.pop(self._key(labels), None)

    def clear(self) -> None:
        self.series.clear()

    def metric(self) -> Metric:
        # Custom metric families carry no _created samples unless given `created=`, so none are served.
        m = self._METRIC[self.type](self.name, self.help, labels=self.labelnames)
        for labels, v in self.series.items():
            if isinstance(v, _Histogram):
                bounds = [floatToGoString(b) for b in self.buckets] + ["+Inf"]
                m.add_metric(labels, list(zip(bounds, accumulate(v.counts))), v.sum, timestamp=self.timestamp)
            else:
                m.add_metric(labels, v, timestamp=self.timestamp)
        return m


class Registry(Collector):
    """The families of one exporter process, collected in the order they were added."""

    def __init__(self) -> None:
        self._families: Dict[str, Family] = {}

    def _add(self, family: Family) -> Family:
        if family.name in self._families:
            raise ValueError(f"duplicate family {family.name}")
        self._families[family.name] = family
        return family

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Family:
        return self._add(Family(name, "counter", help, labelnames))

    def gauge(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Family:
        return self._add(Family(name, "gauge", help, labelnames))

    def histogram(self, name: str, help: str, labelnames: Sequence[str], buckets: Sequence[float]) -> Family:
        return self._add(Family(name, "histogram", help, labelnames, buckets))

    def __getitem__(self, name: str) -> Family:
        return self._families[name]

    def families(self) -> Iterator[Family]:
        return iter(self._families.values())

    def clear(self) -> None:
        for f in self._families.values():
            f.clear()

    def collect(self) -> Iterator[Metric]:
        # An empty family would still print HELP and TYPE; upstream exporters print nothing for it.
        return (f.metric() for f in self._families.values() if f.series)


# --------------------------------------------------------------------------------------------------
# deterministic traffic

GOLDEN = 0.6180339887498949


def spread(i: int, lo: float, hi: float) -> float:
    """The i-th value of a low-discrepancy sequence in [lo, hi]: evenly spread, and reproducible."""
    return lo + (hi - lo) * ((i * GOLDEN + 0.5) % 1.0)


class Carry:
    """Turns a fractional rate times elapsed time into whole events without losing the remainder."""

    __slots__ = ("acc",)

    def __init__(self) -> None:
        self.acc = 0.0

    def take(self, amount: float) -> int:
        self.acc += amount
        n = int(self.acc + 1e-9)
        self.acc -= n
        return n


# --------------------------------------------------------------------------------------------------
# loopback HTTP serving

Response = Tuple[int, str, bytes]
MAX_REQUEST_BODY_BYTES = 1 << 20  # POST bodies the fakes read; larger (or unreadable lengths) get 413


def client_gone(conn: socket.socket) -> bool:
    """Whether the peer has closed the connection (an EOF is waiting): a client that timed out."""
    try:
        readable, _, _ = select.select([conn], [], [], 0)
        return bool(readable) and conn.recv(1, socket.MSG_PEEK) == b""
    except OSError:
        return True


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


class FakeExporterBase(Collector):
    """start/stop/port/url/scenario/clock plumbing shared by every fake.

    Subclasses define ``SCENARIOS``, ``_advance_locked(seconds)`` and ``_reset_process_locked()``,
    keep their metrics in ``self.registry`` (or override ``collect()``) and may extend ``_routes()``
    (GET) and ``_post_routes()`` (POST).
    State changes and collection happen under ``self._lock``.
    """

    SCENARIOS: Tuple[str, ...] = ()
    METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
    MAX_CLOCK_TICKS = 86_400  # run_clock never runs longer than this many ticks

    registry: Registry

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
                    if route:
                        self._answer(*route())
                    else:
                        self._answer(405 if path in fake._post_routes() else 404, "text/plain; charset=utf-8", b"")

                def do_POST(self):  # noqa: N802 (http.server API)
                    path = self.path.split("?", 1)[0]
                    route = fake._post_routes().get(path)
                    if not route:
                        self._answer(405 if path in fake._routes() else 404, "text/plain; charset=utf-8", b"")
                        return
                    try:
                        length = int(self.headers.get("Content-Length") or 0)
                    except ValueError:
                        length = -1
                    if not 0 <= length <= MAX_REQUEST_BODY_BYTES:
                        self._answer(413, "text/plain; charset=utf-8", b"request body too large")
                        return
                    answer = route(self.rfile.read(length), self.connection)
                    if answer is not None:  # None: the client went away, nothing to write
                        self._answer(*answer)

                def _answer(self, status, ctype, body):
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

    def collect(self) -> Iterator[Metric]:
        return self.registry.collect()

    def exposition(self) -> str:
        """The /metrics body, without counting as a scrape."""
        with self._lock:
            return generate_latest(self).decode()

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

    def _post_routes(self) -> Dict[str, Callable[[bytes, socket.socket], Optional[Response]]]:
        """POST routes: called with the request body and the connection (see `client_gone`); an
        answer of None writes nothing (the client has gone)."""
        return {}

    def _metrics_response(self) -> Response:
        with self._lock:
            self._before_scrape_locked()
            body = self.exposition().encode()
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

    def _reset_process_locked(self) -> None:
        raise NotImplementedError
