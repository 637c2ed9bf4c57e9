"""Helpers the three benchmarks share: the stack's own scrape relabelling applied in Python, an
exposition parser, promtool and a loopback Prometheus with bounded waits.

The relabelling here is the point of this module. The bench inputs (promtool series, backfilled
OpenMetrics) must look like what the stack's Prometheus *stores*, not like the raw exposition, so
they are passed through the rendered `relabel_configs` / `metric_relabel_configs` of the `mistral`
job, with Prometheus's own order: target relabelling, then the target labels merged into every
sample (honor_labels: false moves a clashing scraped label to `exported_<name>`), then metric
relabelling. bench/series_per_instance.py checks this emulation against a real Prometheus scrape
of the same exposition, label set for label set.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from typing import Any, Iterable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from llmstack.config import duration_seconds  # noqa: E402
from llmstack.artifacts import replace_section  # noqa: E402

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"

# Loopback only, whatever proxy the environment names.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Labels = dict[str, str]

# --------------------------------------------------------------------------------------------------
# durations


_DURATION = re.compile(r"(\d+(?:\.\d+)?(ms|s|m|h|d|w|y))+")


def seconds(duration: str) -> float:
    """Seconds in a Prometheus/Go duration string ("5m", "1h2m3s", "0s"); refuses anything else."""
    if not _DURATION.fullmatch(duration):
        raise ValueError(f"not a duration: {duration!r}")
    return duration_seconds(duration)


def duration(secs: float) -> str:
    """A Prometheus duration for a whole number of seconds: 90 -> "1m30s"."""
    secs = int(round(secs))
    if secs == 0:
        return "0s"
    out = ""
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size:
            out += f"{secs // size}{unit}"
            secs %= size
    return out


# --------------------------------------------------------------------------------------------------
# exposition parsing (text format 0.0.4, as the fakes print it)


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+(-?\d+))?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), value)


def parse_exposition(text: str) -> list[tuple[Labels, float]]:
    """Every sample line as (labels with __name__, value); comments and blank lines skipped."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError(f"unparsable exposition line: {line!r}")
        labels = {"__name__": m.group(1)}
        body = m.group(2) or ""
        pos = 0
        while pos < len(body):
            lm = _LABEL.match(body, pos)
            if not lm:
                raise ValueError(f"unparsable labels in: {line!r}")
            labels[lm.group(1)] = _unescape(lm.group(2))
            pos = lm.end()
        out.append((labels, float(m.group(3))))
    return out


def selector(labels: Labels) -> str:
    """`name{a="b",...}` in PromQL series notation, labels sorted (what promtool input_series takes)."""
    name = labels["__name__"]
    rest = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(labels: Labels) -> tuple:
    return tuple(sorted(labels.items()))


# --------------------------------------------------------------------------------------------------
# relabelling, as Prometheus does it (model/relabel: regexes fully anchored, `$1`/`${1}`/`$$`)


def _expand(template: str, match: re.Match) -> str:
    def group(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(2)
        try:
            value = match.group(int(name)) if name.isdigit() else match.group(name)
        except IndexError:
            return ""
        return value or ""

    return re.sub(r"\$\$|\$\{(\w+)\}|\$(\w+)", group, template)


def relabel(labels: Labels, configs: Iterable[dict]) -> Optional[Labels]:
    """`labels` after the relabel configs, or None when a keep/drop rule drops them.

    Supports the actions the stack renders (replace, keep, drop, labelmap, labeldrop, labelkeep);
    anything else raises, so a new action in prometheus.py cannot be emulated silently wrong.
    """
    labels = dict(labels)
    for rc in configs:
        action = rc.get("action", "replace")
        regex = re.compile(f"^(?:{rc.get('regex', '(.*)')})$")
        source = rc.get("separator", ";").join(labels.get(n, "") for n in rc.get("source_labels", []))
        if action == "replace":
            m = regex.match(source)
            if not m:
                continue
            target = _expand(rc["target_label"], m)
            value = _expand(rc.get("replacement", "$1"), m)
            if not target:
                continue
            if value:
                labels[target] = value
            else:
                labels.pop(target, None)
        elif action == "keep":
            if not regex.match(source):
                return None
        elif action == "drop":
            if regex.match(source):
                return None
        elif action == "labeldrop":
            labels = {k: v for k, v in labels.items() if not regex.match(k)}
        elif action == "labelkeep":
            labels = {k: v for k, v in labels.items() if regex.match(k)}
        elif action == "labelmap":
            for k, v in list(labels.items()):
                m = regex.match(k)
                if m:
                    labels[_expand(rc.get("replacement", "$1"), m)] = v
        else:
            raise NotImplementedError(f"relabel action {action!r} is not emulated")
    return labels


def target_labels(job: dict, address: str, scrape_interval: str, scrape_timeout: str) -> Optional[Labels]:
    """The labels of the job's target at `address` after `relabel_configs` (None: target dropped)."""
    static_labels: Labels = {}
    for sc in job.get("static_configs", []):
        if address in sc.get("targets", []):
            static_labels = dict(sc.get("labels", {}))
    labels = {
        "__address__": address,
        "__scheme__": job.get("scheme", "http"),
        "__metrics_path__": job.get("metrics_path", "/metrics"),
        "__scrape_interval__": job.get("scrape_interval", scrape_interval),
        "__scrape_timeout__": job.get("scrape_timeout", scrape_timeout),
        "job": job["job_name"],
        **static_labels,
    }
    out = relabel(labels, job.get("relabel_configs", []))
    if out is None:
        return None
    out.setdefault("instance", out["__address__"])
    return {k: v for k, v in out.items() if not k.startswith("__")}


def stored_labels(sample: Labels, targets: Labels, job: dict) -> Optional[Labels]:
    """A scraped sample's labels as the TSDB stores them (None: dropped by metric relabelling)."""
    merged = dict(sample)
    if job.get("honor_labels", False):
        for k, v in targets.items():
            merged.setdefault(k, v)
    else:
        clashes = {k: sample[k] for k in targets if sample.get(k, "") != ""}
        merged.update(targets)
        for name, value in clashes.items():
            new = "exported_" + name
            while new in sample or new in targets:
                new = "exported_" + new
            merged[new] = value
    return relabel(merged, job.get("metric_relabel_configs", []))


class Scrape:
    """The stack's `mistral` job applied to expositions: what one target stores per scrape."""

    def __init__(self, prometheus_yml: str, job_name: str, address: str, instance: Optional[str] = None):
        import yaml

        doc = yaml.safe_load(prometheus_yml)
        glob = doc.get("global", {})
        jobs = [j for j in doc["scrape_configs"] if j["job_name"] == job_name]
        if len(jobs) != 1:
            raise ValueError(f"expected one {job_name!r} job in the rendered config")
        self.job = jobs[0]
        targets = target_labels(self.job, address, glob.get("scrape_interval", "1m"), glob.get("scrape_timeout", "10s"))
        if targets is None:
            raise ValueError(f"the {job_name!r} job drops its own target {address}")
        if instance is not None:
            # Many instances of one stack: only the instance label tells them apart.
            targets["instance"] = instance
        self.targets = targets

    def store(self, exposition: str) -> list[tuple[Labels, float]]:
        out = []
        for labels, value in parse_exposition(exposition):
            stored = stored_labels(labels, self.targets, self.job)
            if stored is not None:
                out.append((stored, value))
        return out

    def store_one(self, sample: Labels) -> Optional[Labels]:
        return stored_labels(sample, self.targets, self.job)

    def up(self) -> Labels:
        return {"__name__": "up", **self.targets}


# --------------------------------------------------------------------------------------------------
# processes and HTTP on loopback


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_bytes(url: str, params: Optional[dict] = None, timeout: float = 120.0) -> bytes:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"bench HTTP stays on loopback, not {url}")
    full = url + ("?" + urllib.parse.urlencode(params, doseq=True) if params else "")
    with _OPENER.open(full, timeout=timeout) as resp:
        return resp.read()


def http_get(url: str, params: Optional[dict] = None, timeout: float = 120.0) -> Any:
    body = http_get_bytes(url, params, timeout)
    return json.loads(body) if body[:1] in (b"{", b"[") else body.decode()


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last: Optional[BaseException] = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 (reported if the wait runs out)
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}") from last


class Prometheus:
    """/usr/bin/prometheus on 127.0.0.1, a free port and a data dir the caller owns; always stopped."""

    def __init__(self, config_file: str, data_dir: str, log_file: str, extra_args: Iterable[str] = ()):
        self.config_file, self.data_dir, self.log_file = config_file, data_dir, log_file
        self.extra_args = list(extra_args)
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_timeout: float = 300.0) -> "Prometheus":
        self.port = free_port()
        cmd = [
            PROMETHEUS,
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self.extra_args,
        ]
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}; see {self.log_file}")
            return http_get(self.url + "/-/ready", timeout=5) is not None

        try:
            wait_until(ready, ready_timeout, 0.3, "prometheus to become ready")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __enter__(self) -> "Prometheus":
        return self.start() if self.proc is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    def api(self, path: str, params: Optional[dict] = None, timeout: float = 300.0) -> Any:
        doc = http_get(self.url + path, params, timeout)
        if doc.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {doc}")
        return doc["data"]

    def query(self, expr: str, **params) -> list:
        return self.api("/api/v1/query", {"query": expr, **params})["result"]

    def own_metric(self, name: str) -> float:
        """A value from the server's own /metrics (it does not scrape itself here)."""
        text = http_get(self.url + "/metrics", timeout=30)
        return sum(v for labels, v in parse_exposition(text) if labels["__name__"] == name)

    def metric(self, expr: str, **params) -> float:
        result = self.query(expr, **params)
        return float(result[0]["value"][1]) if result else float("nan")


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """A child process with a deadline; its output captured."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


def fingerprint(cfg) -> dict:
    """What a result was measured against: the commit, and digests of the rendered rules and
    dashboards (the tree may hold uncommitted work when a bench runs)."""
    import hashlib

    from llmstack import dashboards, prometheus

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    rule_text = "".join(t for _, t in sorted(prometheus.render_rule_files(cfg).items()))
    board_text = "".join(dashboards.render(build()) for _, build in sorted(dashboards.DASHBOARDS.items()))
    head = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=30).stdout.strip()
    dirty = bool(run(["git", "-C", ROOT, "status", "--porcelain", "--", "llmstack"], timeout=30).stdout.strip())
    return {"commit": head, "llmstack_uncommitted_changes": dirty, "rules_sha256": digest(rule_text),
            "dashboards_sha256": digest(board_text), "promtool": run([PROMTOOL, "--version"], timeout=30).stdout.split("\n")[0]}


DOCS = "docs/benchmarks.md"


def add_docs_argument(parser) -> None:
    parser.add_argument("--docs", nargs="?", const="", metavar="SECTION",
                        help=f"also write the report into {DOCS}, between its <!-- bench:SECTION:start/end --> markers "
                        "(default section: the script's name)")


def write_docs(section: str, report: str, argv: list[str]) -> None:
    """Put `report` and the command that made it into the docs page's section for it."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), ROOT)
    command = " ".join([".venv/bin/python", script, *argv])
    body = f"Produced by:\n\n```sh\n{command}\n```\n\n{report}"
    path = os.path.join(ROOT, DOCS)
    with open(path) as fh:
        text = fh.read()
    with open(path, "w") as fh:
        fh.write(replace_section(text, f"bench:{section}", body))


def exit_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so `finally` blocks still stop Prometheus and remove temp dirs."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))



def publish(doc: dict, report: str, json_path: Optional[str], docs_section: Optional[str], default_section: str, argv: list[str]) -> None:
    """Print the report, and write the JSON and the docs/benchmarks.md section when asked to."""
    print(report)
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(doc, fh, indent=2, sort_keys=True)
    if docs_section is not None:
        write_docs(docs_section or default_section, report, argv)
