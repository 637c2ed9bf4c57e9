"""A webhook receiver on 127.0.0.1 that stands in for Slack, PagerDuty and a heartbeat service.

`WebhookReceiver` is an http.server on a loopback address and a free port. It records every POST:
its path, the wall-clock time it arrived, its headers and its body (parsed as JSON when it is JSON),
and answers the way the real services answer a successful delivery: Slack's incoming webhooks
`200 ok`, PagerDuty's Events API v2 `202` with its JSON acknowledgement, anything else `200`.
Alertmanager only looks at the status code, so these answers never change what it does next.

Every wait is bounded; `stop()` closes the socket and joins the serving thread.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

PAGERDUTY_ACK = {"status": "success", "message": "Event processed"}


@dataclass(frozen=True)
class Post:
    path: str
    at: float  # time.time() when the request was read
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or the raw text when it is not JSON
    raw: bytes = field(repr=False, default=b"")


class _Server(http.server.ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True


class WebhookReceiver:
    """Records every POST it receives; `posts(path)` returns them in arrival order."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, latency_s: Optional[dict[str, float]] = None):
        """`latency_s`: path -> seconds to wait before answering a POST to it, as a service across
        the internet takes tens of milliseconds where loopback takes one."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the receiver only binds loopback addresses, not {host!r}")
        self._host, self._port = host, port
        self.latency_s = dict(latency_s or {})
        self._lock = threading.Lock()
        self._posts: list[Post] = []
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> "WebhookReceiver":
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server API)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                path = self.path.split("?", 1)[0]
                receiver._record(Post(path, time.time(), {k.lower(): v for k, v in self.headers.items()}, body, raw))
                delay = receiver.latency_s.get(path, 0.0)
                if delay:
                    time.sleep(delay)
                if "pagerduty" in path:
                    status, ctype = 202, "application/json"
                    out = json.dumps({**PAGERDUTY_ACK, "dedup_key": (body or {}).get("dedup_key", "") if isinstance(body, dict) else ""}).encode()
                else:
                    status, ctype, out = 200, "text/plain; charset=utf-8", b"ok"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = _Server((self._host, self._port), Handler)
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"webhook-receiver:{self._port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> "WebhookReceiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    def url(self, path: str) -> str:
        return f"http://{self._host}:{self._port}/{path.lstrip('/')}"

    # -- what arrived -------------------------------------------------------------------------
    def _record(self, post: Post) -> None:
        with self._lock:
            self._posts.append(post)

    def posts(self, path: Optional[str] = None, since: float = 0.0, until: float = float("inf")) -> list[Post]:
        with self._lock:
            return [p for p in self._posts if (path is None or p.path == path) and since <= p.at <= until]

    def wait_for(self, predicate: Callable[[list[Post]], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
        """Poll `predicate(all posts)` until it returns something truthy; TimeoutError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self.posts())
            if result:
                return result
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}; received {self.summary()}")
            time.sleep(interval)

    def summary(self) -> list[tuple[str, float]]:
        """(path, time) of every POST so far: enough to read a failure."""
        return [(p.path, round(p.at, 1)) for p in self.posts()]
