"""A real Prometheus (Debian's /usr/bin/prometheus) on loopback, for the tests and the benchmarks.

`PrometheusServer` starts the binary on 127.0.0.1 on a free port with a data directory the caller
owns, waits until `/-/ready`, and wraps the HTTP API its users need. The process runs in its own
process group, so `stop()` (SIGTERM, then SIGKILL after a timeout) takes down anything it spawned.
`restart()` starts it again on the same data directory, which is how the test proves that the TSDB
keeps every sample across a restart.

Every wait is bounded and every request has a timeout. Nothing listens on or talks to anything but
loopback: the listen address is 127.0.0.1, and the HTTP client ignores proxy settings.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable, Optional, Sequence

PROMETHEUS_BINARY = "/usr/bin/prometheus"
SETPRIV = shutil.which("setpriv")

# Proxy variables in the environment must never route a loopback request elsewhere.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusError(RuntimeError):
    """The server did not start, or the API answered with an error."""


class QueryError(PrometheusError):
    """The API rejected a query (bad PromQL, execution error): status "error" with its errorType."""

    def __init__(self, expr: str, error_type: str, error: str):
        self.expr, self.error_type, self.error = expr, error_type, error
        super().__init__(f"{error_type}: {error} (query: {expr})")


def free_port() -> int:
    """A port that was free a moment ago. start() retries on the small race this leaves."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.5, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something truthy, for at most `timeout` seconds.

    Exceptions from the predicate count as "not yet" until the deadline; then the last one is
    chained to the TimeoutError so a failure says what was actually seen.
    """
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            result = predicate()
            if result:
                return result
            last_exc = None
        except Exception as exc:  # noqa: BLE001 (reported below)
            last_exc = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}") from last_exc
        time.sleep(interval)


class PrometheusServer:
    """One Prometheus process on 127.0.0.1; start/stop/restart it on the same data directory."""

    def __init__(
        self,
        config_file: str,
        data_dir: str,
        log_file: str,
        binary: str = PROMETHEUS_BINARY,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 60.0,
        stop_timeout: float = 20.0,
        request_timeout: float = 15.0,
    ):
        self.config_file = config_file
        self.data_dir = data_dir
        self.log_file = log_file
        self.binary = binary
        self.extra_args = tuple(extra_args)
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        # A bench query over days of data takes minutes; a test's should fail fast.
        self.request_timeout = request_timeout
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None

    # -- lifecycle ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    def _command(self, port: int) -> list[str]:
        # If the test process dies without cleaning up (SIGKILL, a CI timeout), the kernel sends the
        # server SIGTERM. setpriv is util-linux, essential on Debian; without it, stop() is all.
        guard = [SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []
        return guard + [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            *self.extra_args,
        ]

    def start(self, port: Optional[int] = None, attempts: int = 3) -> None:
        """Start the process and wait until it is ready. With `port`, that port is tried first
        (restart keeps its address); a port lost to another process is replaced by a fresh one."""
        if self.proc is not None:
            raise PrometheusError("already running")
        os.makedirs(self.data_dir, exist_ok=True)
        last_error = ""
        for attempt in range(attempts):
            chosen = port if (port is not None and attempt == 0) else free_port()
            with open(self.log_file, "ab") as log:
                log.write(f"\n--- start on 127.0.0.1:{chosen} ---\n".encode())
                log.flush()
                # Own session and process group: stop() signals the whole group, and a Ctrl-C on
                # pytest does not race our own shutdown.
                self.proc = subprocess.Popen(
                    self._command(chosen),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self.port = chosen
            try:
                self._wait_ready()
                return
            except PrometheusError as exc:
                last_error = str(exc)
                self.stop()
                if "address already in use" not in last_error:
                    break
        raise PrometheusError(f"prometheus did not become ready: {last_error}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(f"exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                status, _ = self._request("GET", "/-/ready", timeout=2)
                if status == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        raise PrometheusError(f"not ready after {self.ready_timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> Optional[int]:
        """SIGTERM the process group, SIGKILL it after `stop_timeout`. Returns the exit code."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=10)
        return proc.returncode

    def restart(self) -> None:
        """Stop, then start again on the same data directory (and, if still free, the same port)."""
        port = self.port
        self.stop()
        self.start(port=port)

    def reload(self) -> None:
        """Re-read the config and rule files (POST /-/reload, needs --web.enable-lifecycle)."""
        status, body = self._request("POST", "/-/reload", timeout=30)
        if status != 200:
            raise PrometheusError(f"reload failed ({status}): {body!r}")

    def log_tail(self, lines: int = 40) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                return b"".join(fh.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"

    def __enter__(self) -> "PrometheusServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- HTTP ---------------------------------------------------------------------------------
    def _request(self, method: str, path: str, params: Optional[dict] = None, timeout: Optional[float] = None):
        if self.port is None:
            raise PrometheusError("not started")
        url = self.url + path
        data = None
        if params:
            encoded = urllib.parse.urlencode(params)
            if method == "GET":
                url += "?" + encoded
            else:
                data = encoded.encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with _OPENER.open(req, timeout=timeout or self.request_timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get(self, path: str, params: Optional[dict] = None, timeout: Optional[float] = None) -> bytes:
        """The body of GET `path` (/metrics, /federate, /api/v1/...), read to the end; PrometheusError unless 200."""
        status, body = self._request("GET", path, params, timeout)
        if status != 200:
            raise PrometheusError(f"GET {path}: HTTP {status}: {body[:300]!r}")
        return body

    def api(self, path: str, params: Optional[dict] = None, method: str = "GET") -> Any:
        """The `data` of a /api/v1 answer; QueryError when the API reports an error."""
        status, body = self._request(method, "/api/v1/" + path, params)
        try:
            doc = json.loads(body)
        except ValueError:
            raise PrometheusError(f"{path}: HTTP {status}, not JSON: {body[:200]!r}") from None
        if doc.get("status") != "success":
            raise QueryError((params or {}).get("query", path), doc.get("errorType", str(status)), doc.get("error", ""))
        return doc["data"]

    # -- API helpers --------------------------------------------------------------------------
    def query(self, expr: str, at: Optional[float] = None) -> list[dict]:
        """Instant query: the result vector (or [scalar]/[string] wrapped as one item)."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", params, method="POST")
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return data["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        return self.api("query_range", params, method="POST")["result"]

    def series(self, match: str) -> list[dict]:
        """The label sets of the stored series `match` selects (/api/v1/series, default time range)."""
        return self.api("series", {"match[]": match})

    def targets(self, state: str = "active") -> list[dict]:
        return self.api("targets", {"state": state})["activeTargets" if state == "active" else "droppedTargets"]

    def alerts(self) -> list[dict]:
        return self.api("alerts")["alerts"]

    def rules(self, kind: Optional[str] = None) -> list[dict]:
        """Rule groups; kind "alert" or "record" filters the rules."""
        return self.api("rules", {"type": kind} if kind else None)["groups"]

    def label_values(
        self, label: str, match: Optional[str] = None, start: Optional[float] = None, end: Optional[float] = None
    ) -> list[str]:
        """What Grafana's label_values(match, label) asks for: /api/v1/label/<label>/values."""
        params = {}
        if match is not None:
            params["match[]"] = match
        if start is not None:
            params["start"] = f"{start:.3f}"
        if end is not None:
            params["end"] = f"{end:.3f}"
        return self.api(f"label/{urllib.parse.quote(label)}/values", params or None)

    def runtime_info(self) -> dict:
        return self.api("status/runtimeinfo")
