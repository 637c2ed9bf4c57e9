"""A real Alertmanager (Debian's /usr/bin/prometheus-alertmanager 0.25) on loopback, for the tests.

`AlertmanagerServer` reuses `PrometheusServer`'s process handling (tests/integration/promserver.py):
own process group, `setpriv --pdeathsig`, a free port on 127.0.0.1 retried on a bind race, bounded
waits for `/-/ready`, SIGTERM then SIGKILL on `stop()`, and `restart()` on the same data directory,
which for Alertmanager is `--storage.path` (silences and the notification log). Only the command
line differs: the config file, the storage path, the listen address and `--cluster.listen-address=`
(one instance, no gossip port), as components/alertmanager.py starts the stack's container.

The API helpers speak Alertmanager's v2 API in JSON. Every request has a timeout and never goes
through a proxy.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from typing import Any, Optional, Sequence

from tests.integration.promserver import SETPRIV, PrometheusError, PrometheusServer

ALERTMANAGER_BINARY = "/usr/bin/prometheus-alertmanager"
AMTOOL_BINARY = "/usr/bin/amtool"

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """Alertmanager's timestamps (nanoseconds, `Z` or an offset) as unix seconds."""
    text = text.replace("Z", "+00:00")
    head, _, tail = text.partition(".")
    if tail:  # Python takes at most microseconds
        digits = "".join(c for c in tail if c.isdigit())
        text = f"{head}.{digits[:6]}{tail[len(digits):]}"
    return datetime.fromisoformat(text).timestamp()


class AlertmanagerServer(PrometheusServer):
    """One Alertmanager process on 127.0.0.1; start/stop/restart it on the same storage path."""

    def __init__(self, config_file: str, data_dir: str, log_file: str, binary: str = ALERTMANAGER_BINARY,
                 extra_args: Sequence[str] = (), **kwargs: Any):
        super().__init__(config_file, data_dir, log_file, binary=binary, extra_args=extra_args, **kwargs)

    def _command(self, port: int) -> list[str]:
        guard = [SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []
        return guard + [
            self.binary,
            f"--config.file={self.config_file}",
            f"--storage.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            *self.extra_args,
        ]

    # -- v2 API -------------------------------------------------------------------------------
    def v2(self, method: str, path: str, body: Any = None, params: Optional[dict] = None) -> Any:
        if self.port is None:
            raise PrometheusError("not started")
        url = f"{self.url}/api/v2/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with _OPENER.open(req, timeout=self.request_timeout) as resp:
                text = resp.read()
        except urllib.error.HTTPError as err:
            raise PrometheusError(f"{method} {path}: HTTP {err.code}: {err.read()[:300]!r}") from None
        return json.loads(text) if text.strip() else None

    def alerts(self, **filters: Any) -> list[dict]:
        """GET /api/v2/alerts: active, silenced and inhibited alerts, each with its `status`."""
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()}
        return self.v2("GET", "alerts", params=params or None)

    def post_alerts(self, alerts: list[dict]) -> None:
        """POST /api/v2/alerts, as Prometheus does (labels, annotations, startsAt, endsAt, generatorURL)."""
        self.v2("POST", "alerts", alerts)

    def silences(self) -> list[dict]:
        return self.v2("GET", "silences")

    def create_silence(self, matchers: dict[str, str], starts: float, ends: float, created_by: str, comment: str) -> str:
        body = {
            "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
            "startsAt": rfc3339(starts),
            "endsAt": rfc3339(ends),
            "createdBy": created_by,
            "comment": comment,
        }
        return self.v2("POST", "silences", body)["silenceID"]

    def status(self) -> dict:
        return self.v2("GET", "status")
