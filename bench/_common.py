"""What the three benchmarks share: series as the stack's Prometheus stores them, the results'
fingerprint, and the report, JSON and docs writer.

Bench inputs (promtool series, backfilled OpenMetrics) must look like what the stack's Prometheus
*stores*, not like the raw exposition: the `mistral_` prefix, the keep-lists, the target labels, the
server's own `model` kept as `exported_model`. Nothing here re-implements that. `StoredSeries` lets
Debian's Prometheus scrape every series the fakes expose with the stack's rendered jobs, and reads
back what it stored.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
from typing import Iterable, Mapping, NamedTuple, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import yaml  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from llmstack import dashboards  # noqa: E402
from llmstack import prometheus as prometheus_render  # noqa: E402
from tests.integration.promserver import PrometheusServer, wait_until  # noqa: E402
from tools.sections import replace_section  # noqa: E402

PROMTOOL = "/usr/bin/promtool"

Labels = dict[str, str]

# The series Prometheus writes itself for every target (2.42 and 3.x without extra scrape metrics).
SYNTHETIC = ("up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added")
_NOT_SYNTHETIC = f'__name__!~"{"|".join(SYNTHETIC)}"'


class Sample(NamedTuple):
    labels: Labels  # with __name__
    value: float
    kind: str  # the family's type: counter, gauge, histogram, ...


def samples(exposition: str) -> list[Sample]:
    """Every sample of a text-format exposition, in order."""
    return [Sample({"__name__": s.name, **s.labels}, s.value, fam.type)
            for fam in text_string_to_metric_families(exposition) for s in fam.samples]


def selector(labels: Labels) -> str:
    """`name{a="b",...}`, labels sorted: PromQL series notation (promtool's input_series), and a sample
    line of the text and OpenMetrics formats."""
    name = labels["__name__"]
    rest = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest else name


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def series_key(labels: Labels) -> tuple:
    return tuple(sorted(labels.items()))


def every_series(fake, seconds_each: float = 600) -> list[str]:
    """The expositions of a fake driven through each of its scenarios: between them, every label set it
    can expose."""
    texts = []
    for scenario in type(fake).SCENARIOS:
        fake.set_scenario(scenario)
        fake.advance(seconds_each)
        texts.append(fake.exposition())
    return texts


# --------------------------------------------------------------------------------------------------
# a real Prometheus, on loopback


def prometheus(workdir: str, name: str, config: dict, **kwargs) -> PrometheusServer:
    """A PrometheusServer (not started) with `config`, its data dir and log under workdir/name*."""
    config_file = os.path.join(workdir, f"{name}.yml")
    with open(config_file, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=True)
    return PrometheusServer(config_file, os.path.join(workdir, f"{name}-data"), os.path.join(workdir, f"{name}.log"), **kwargs)


def scalar(server: PrometheusServer, expr: str, at: Optional[float] = None) -> float:
    result = server.query(expr, at=at)
    return float(result[0]["value"][1]) if result else float("nan")


def own_metric(server: PrometheusServer, name: str) -> float:
    """A value from the server's own /metrics (the bench configs do not scrape it)."""
    return sum(s.value for s in samples(server.get("/metrics").decode()) if s.labels["__name__"] == name)


def pointed_at(job: dict, address: str) -> dict:
    """The job, scraping `address` instead of its target. `instance` stays the target's address, as
    Prometheus would set it, so what is stored is what the stack stores."""
    (static,) = job["static_configs"]
    (target,) = static["targets"]
    return {**job, "static_configs": [{"targets": [address], "labels": {"instance": target, **static.get("labels", {})}}]}


def fast_scrapes(doc: dict, jobs: Iterable[dict], interval: str = "1s") -> dict:
    """The rendered config `doc` with only `jobs`, no rules, scraping every `interval`."""
    glob = {**doc.get("global", {}), "scrape_interval": interval, "scrape_timeout": interval}
    return {**doc, "global": glob, "rule_files": [], "scrape_configs": list(jobs)}


class _Static(http.server.ThreadingHTTPServer):
    daemon_threads = True


def _serve(text: str) -> _Static:
    """`text` as a text-format exposition on 127.0.0.1, a free port, any path."""
    body = text.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server API)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = _Static(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


class StoredSeries:
    """Each exposed series of each job, mapped to the series the stack's Prometheus stores it as.

    `exposed` gives, per job of the rendered config, expositions that between them hold every label set
    its target will ever expose (see every_series). Each label set is served once on 127.0.0.1 with its
    index as the value; Prometheus scrapes that with the job as rendered (only the address changed),
    and the value of each stored series says which exposed series it came from. The fakes' own values
    cannot do that: many are equal (empty buckets, zero gauges). An exposed series without a stored
    one was dropped by the job's metric relabelling.
    """

    LEARN_TIMEOUT = 60.0

    def __init__(self, config_text: str, exposed: Mapping[str, Iterable[str]], workdir: str):
        doc = yaml.safe_load(config_text)
        jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
        raw: dict[str, dict[tuple, Labels]] = {}
        for job, texts in exposed.items():
            if job not in jobs:
                raise ValueError(f"the rendered config has no {job!r} job")
            raw[job] = {}
            for text in texts:
                for s in samples(text):
                    raw[job].setdefault(series_key(s.labels), s.labels)
        self.kinds: dict[str, dict[tuple, str]] = {}
        self._stored: dict[str, dict[tuple, Optional[Labels]]] = {}
        self._up: dict[str, Labels] = {}
        servers = {}
        try:
            for job, series in raw.items():
                servers[job] = _serve("".join(f"{selector(labels)} {i}\n" for i, labels in enumerate(series.values())))
            config = fast_scrapes(doc, [pointed_at(jobs[job], f"127.0.0.1:{servers[job].server_address[1]}") for job in raw])
            with prometheus(workdir, "learn", config) as server:
                for job, series in raw.items():
                    self._learn(server, job, list(series.values()))
        finally:
            for s in servers.values():
                s.shutdown()
                s.server_close()

    def _learn(self, server: PrometheusServer, job: str, exposed: list[Labels]) -> None:
        def scraped():
            return scalar(server, f'scrape_samples_scraped{{job="{job}"}}') == len(exposed)

        wait_until(scraped, self.LEARN_TIMEOUT, 0.2, f"Prometheus to scrape the {job} job")
        kept = scalar(server, f'scrape_samples_post_metric_relabeling{{job="{job}"}}')
        stored: dict[int, Labels] = {}
        for r in server.query(f'{{job="{job}", {_NOT_SYNTHETIC}}}'):
            stored[int(float(r["value"][1]))] = r["metric"]
        if len(stored) != kept or not set(stored) <= set(range(len(exposed))):
            raise RuntimeError(f"{job}: {int(kept)} samples kept per scrape, {len(stored)} distinct stored series read back")
        self._stored[job] = {series_key(labels): stored.get(i) for i, labels in enumerate(exposed)}
        (up,) = server.query(f'up{{job="{job}"}}')
        self._up[job] = up["metric"]

    def store(self, job: str, exposition: str) -> list[Sample]:
        """The samples of one scrape of the job's target, as stored."""
        mapping = self._stored[job]
        out = []
        for s in samples(exposition):
            key = series_key(s.labels)
            if key not in mapping:
                raise KeyError(f"{job} exposed {selector(s.labels)}, a series not seen when its stored form was learned")
            if mapping[key] is not None:
                out.append(Sample(mapping[key], s.value, s.kind))
        return out

    def up(self, job: str) -> Labels:
        """The labels of the job's `up` series."""
        return dict(self._up[job])


# --------------------------------------------------------------------------------------------------
# processes, results and docs


def run(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """A child process with a deadline; its output captured."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)


def fingerprint(cfg) -> dict:
    """What a result was measured against: the commit, and digests of the rendered rules and
    dashboards (the tree may hold uncommitted work when a bench runs)."""

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    rule_text = "".join(t for _, t in sorted(prometheus_render.render_rule_files(cfg).items()))
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
