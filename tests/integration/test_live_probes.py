"""Live probe test: Debian's blackbox exporter probes a fake mistral.rs with the stack's rendered
modules, a real Prometheus scrapes it with the rendered probe jobs, and LLMGenerationProbeFailing
fires when completions fail or hang while /metrics and /health keep answering, then resolves.

What runs (all on 127.0.0.1, started and stopped by the `stack` fixture, whatever fails):

* Debian's blackbox exporter 0.23 with `probes.render_blackbox_yml(cfg)` exactly as rendered.
* FakeMistral (v0.9.2, healthy traffic) with `set_generation("ok" | "fail" | "hang")`, and
  FakeCadvisor with the mistral container created an hour ago (no model load in progress).
* Debian's Prometheus 2.42 (tests/integration/promserver.py) with the rendered `prometheus.yml`
  and rule files, for a dev config with 1s scrape and evaluation intervals.

Exactly what is rewritten in the rendered prometheus.yml (the parsed YAML, nothing else):

* in the two probe jobs (`probe-liveness`, `probe-generation`):
  - the relabel rule that sets `__address__` to `blackbox-exporter:9115` gets the replacement
    `127.0.0.1:<exporter port>`: Prometheus scrapes the local exporter;
  - each static target `http://mistral:1234/<path>` (the probed URL, which the jobs pass on as
    `__param_target`) becomes `http://127.0.0.1:<fake port>/<path>`, the same path;
  - `scrape_interval` (30s) and `scrape_timeout` (25s) are divided by TIME_SCALE (20), like the
    rule windows: 1.5s and 1.25s. The exporter caps a probe at the scrape timeout minus its 0.5s
    offset, so a hung completion fails its probe after 0.75s instead of 24.5s;
* in every other job, the in-network address becomes its loopback fake, as test_live_pipeline.py's
  `rewrite_targets` does (`mistral:1234`, `cadvisor:8080`, and `localhost:9090` for this
  Prometheus itself);
* an `alerting` section, if the render has one, is dropped: alerts are read from the API here.

The rule files are compressed by test_live_pipeline.py's `compress_rules` (every range and `for`
divided by TIME_SCALE: the 1m window of llm:probe_success:max1m becomes 3s, the alert's `for` 1.5s).
The compressed deadline for the alert to fire is that window plus `for`, one probe interval and one
probe timeout, two evaluations, and MARGIN_S for a loaded machine.

Phases: healthy (every probe succeeds, no probe alert); completions failing (HTTP 500) -> fires;
recovery -> resolves; completions hanging -> fires; recovery -> resolves.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Optional

import pytest
import yaml

from components.common import LABEL_COMPONENT, LABEL_ENV
from llmstack import config as cfgmod
from llmstack import alerts, probes, prometheus, signals, topology
from tests.integration.fakes import FakeCadvisor, FakeMistral
from tests.integration.promserver import PrometheusServer, free_port, wait_until
from tests.integration.test_live_pipeline import (
    TIME_SCALE,
    compress_rules,
    duration_s,
    in_network_addresses,
    rewrite_targets,
    scale_duration,
)

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
SETPRIV = shutil.which("setpriv")
INTERVAL = "1s"  # scrape and evaluation interval of every other job and the rules (the lowest the config allows)
POLL_S = 0.25
MARGIN_S = 15.0  # slack on the compressed deadlines, for a loaded 2-core machine
BLACKBOX_TIMEOUT_OFFSET_S = 0.5  # the exporter's --timeout-offset default
FAKE_TICK_S = 0.25
ALERT = "LLMGenerationProbeFailing"
PROBE_ALERTS = (ALERT, "LLMProbeLatencyHigh")
HEALTHY_S = 6.0  # longer than the compressed 1m window plus `for`
HANG_BOUND_S = 20.0  # a hung completion's longest wait (FakeMistral.hang_timeout_s)

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# =============================================================================================
# The blackbox exporter process
# =============================================================================================


class BlackboxExporter:
    """Debian's blackbox exporter on 127.0.0.1, in its own process group (like PrometheusServer)."""

    def __init__(self, config_file: str, log_file: str):
        self.config_file, self.log_file = config_file, log_file
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None

    def start(self, attempts: int = 3) -> None:
        assert os.access(BLACKBOX, os.X_OK), f"{BLACKBOX} is missing: install Debian's prometheus-blackbox-exporter package"
        # Probes go to 127.0.0.1 only; no proxy from the environment may take them elsewhere.
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        for _ in range(attempts):
            self.port = free_port()
            guard = [SETPRIV, "--pdeathsig", "TERM", "--"] if SETPRIV else []
            with open(self.log_file, "ab") as log:
                self.proc = subprocess.Popen(
                    guard + [BLACKBOX, f"--config.file={self.config_file}", f"--web.listen-address=127.0.0.1:{self.port}"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env,
                )
            try:
                wait_until(self._ready, timeout=20, interval=0.1, what="the blackbox exporter")
                return
            except TimeoutError:
                self.stop()
        raise RuntimeError(f"the blackbox exporter did not start:\n{self.log_tail()}")

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"exited with {self.proc.returncode}:\n{self.log_tail()}")
        with _OPENER.open(f"http://127.0.0.1:{self.port}/-/healthy", timeout=2) as resp:
            return resp.status == 200

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                return b"".join(fh.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"


# =============================================================================================
# The rewrites of the rendered prometheus.yml (see the module docstring)
# =============================================================================================


def rewrite_probe_jobs(doc: dict, exporter: str, probed: dict[str, str]) -> dict:
    """A copy of the config whose probe jobs scrape `exporter` and probe through `probed`
    (http://host:port of the render -> http://127.0.0.1:port), with their intervals compressed."""
    doc = copy.deepcopy(doc)
    names = {probes.job(p) for p in probes.PROBES}
    rendered_exporter = topology.address("blackbox")
    for job in doc["scrape_configs"]:
        if job["job_name"] not in names:
            continue
        moved = [r for r in job["relabel_configs"] if r.get("target_label") == "__address__"]
        assert [r["replacement"] for r in moved] == [rendered_exporter], job["relabel_configs"]
        moved[0]["replacement"] = exporter
        for static in job["static_configs"]:
            new = []
            for target in static["targets"]:
                base = next((b for b in probed if target.startswith(b + "/")), None)
                assert base, f"{job['job_name']} probes {target!r}, which has no loopback fake here"
                new.append(probed[base] + target[len(base):])
            static["targets"] = new
        job["scrape_interval"] = scale_duration(job["scrape_interval"])
        job["scrape_timeout"] = scale_duration(job["scrape_timeout"])
    return doc


def live_config(rendered: dict, addresses: dict[str, str], exporter: str, probed: dict[str, str]) -> dict:
    names = {probes.job(p) for p in probes.PROBES}
    rest = rewrite_targets({**rendered, "scrape_configs": [j for j in rendered["scrape_configs"] if j["job_name"] not in names]}, addresses)
    probing = rewrite_probe_jobs({"scrape_configs": [j for j in rendered["scrape_configs"] if j["job_name"] in names]}, exporter, probed)
    doc = {**rest, "scrape_configs": rest["scrape_configs"] + probing["scrape_configs"]}
    doc.pop("alerting", None)
    return doc


# =============================================================================================
# The stack
# =============================================================================================


@dataclass
class Stack:
    cfg: cfgmod.StackConfig
    prom: PrometheusServer
    exporter: BlackboxExporter
    mistral: FakeMistral
    fire_deadline_s: float
    resolve_deadline_s: float
    probe_timeout_s: float

    def active(self) -> dict[str, str]:
        """alertname -> state; firing wins."""
        out: dict[str, str] = {}
        for a in self.prom.alerts():
            name = a["labels"]["alertname"]
            if out.get(name) != "firing":
                out[name] = a["state"]
        return out

    def value(self, expr: str) -> Optional[float]:
        found = self.prom.query(expr)
        return float(found[0]["value"][1]) if found else None


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-probes")
    with ExitStack() as exits:
        cfg = cfgmod.load_defaults("dev", scrapeInterval=INTERVAL, evaluationInterval=INTERVAL, scrapeTimeout=INTERVAL)
        assert cfg.probes.enabled and not cfg.probes.ollama_targets
        mistral = FakeMistral(model=cfg.mistral.model_id, capacity=cfg.mistral.max_seqs, upstream="v0.9.2")
        mistral.hang_timeout_s = HANG_BOUND_S
        containers = {c: cfg.container_name(c) for c in topology.STACK_CONTAINERS}
        cadvisor = FakeCadvisor(
            containers=tuple(containers.values()),
            docker_labels={name: {LABEL_COMPONENT: c, LABEL_ENV: cfg.env} for c, name in containers.items()},
            model_container=containers["mistral"],
            start_time=time.time() - 3600,  # loaded long ago: no model load in progress
        )
        for fake in (mistral, cadvisor):
            fake.start()
            exits.callback(fake.close)
            fake.set_scenario("healthy")
            fake.run_clock(FAKE_TICK_S)

        blackbox_yml = root / "blackbox.yml"
        blackbox_yml.write_text(probes.render_blackbox_yml(cfg))
        exporter = BlackboxExporter(str(blackbox_yml), str(root / "blackbox.log"))
        exits.callback(exporter.stop)
        exporter.start()

        [target] = [t for t in probes.targets(cfg) if t.engine == "mistralrs"]
        probed = {target.base_url: f"http://127.0.0.1:{mistral.port}"}
        rendered = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
        fakes = {"mistral": mistral, "cadvisor": cadvisor}

        def write(port: int) -> None:
            doc = live_config(rendered, in_network_addresses(fakes, port), f"127.0.0.1:{exporter.port}", probed)
            (root / "prometheus.yml").write_text(yaml.safe_dump(doc, sort_keys=True))

        rules_dir = root / topology.PROMETHEUS_RULES_SUBDIR
        rules_dir.mkdir()
        for name, text in prometheus.render_rule_files(cfg).items():
            (rules_dir / name).write_text(compress_rules(text))
        prom_port = free_port()
        write(prom_port)
        server = PrometheusServer(str(root / "prometheus.yml"), str(root / "data"), str(root / "prometheus.log"))
        exits.callback(server.stop)
        server.start(port=prom_port)
        if server.port != prom_port:  # lost the port in a race: point the self-scrape at the new one
            write(server.port)
            server.reload()

        # The compressed deadlines (see the module docstring).
        alert = next(a for a in alerts.alert_rules(cfg) if a.name == ALERT)
        window_s = duration_s(signals.SHORT_WINDOW) / TIME_SCALE  # llm:probe_success:max1m's window
        for_s = duration_s(scale_duration(alert.for_))
        interval_s = duration_s(cfg.probes.interval) / TIME_SCALE
        probe_timeout_s = duration_s(cfg.probes.timeout) / TIME_SCALE - BLACKBOX_TIMEOUT_OFFSET_S
        evaluation_s = duration_s(INTERVAL)
        yield Stack(
            cfg=cfg, prom=server, exporter=exporter, mistral=mistral,
            fire_deadline_s=window_s + for_s + interval_s + probe_timeout_s + 2 * evaluation_s + MARGIN_S,
            resolve_deadline_s=window_s + interval_s + 2 * evaluation_s + MARGIN_S,
            probe_timeout_s=probe_timeout_s,
        )


# =============================================================================================
# The timeline: healthy, fail, recover, hang, recover
# =============================================================================================

GEN = 'probe="generation"'


@dataclass
class Phase:
    name: str
    start: float
    fired_after_s: Optional[float] = None
    resolved_after_s: Optional[float] = None
    during: dict = field(default_factory=dict)  # what the phase saw while the incident lasted
    other_alerts: set[str] = field(default_factory=set)
    violations: list[str] = field(default_factory=list)


def _observe_healthy(s: Stack) -> Phase:
    phase = Phase("healthy", time.time())
    served = s.mistral.completions
    deadline = time.monotonic() + HEALTHY_S
    while time.monotonic() < deadline:
        for name, state in s.active().items():
            if name in PROBE_ALERTS:
                phase.violations.append(f"{name} {state} at +{time.time() - phase.start:.1f}s")
        time.sleep(POLL_S)
    phase.during = {
        "generation": s.value(f"probe_success{{{GEN}}}"),
        "liveness": s.value('probe_success{probe="liveness"}'),
        "max1m": s.value(f"llm:probe_success:max1m{{{GEN}}}"),
        "ratio5m": s.value(f"llm:probe_success:ratio5m{{{GEN}}}"),
        "completions served": s.mistral.completions - served,
    }
    return phase


def _incident(s: Stack, mode: str) -> Phase:
    phase = Phase(mode, time.time())
    s.mistral.set_generation(mode)
    deadline = time.monotonic() + s.fire_deadline_s
    try:
        while time.monotonic() < deadline:
            active = s.active()
            phase.other_alerts |= {n for n, st in active.items() if st == "firing" and n not in (ALERT, "Watchdog")}
            if active.get(ALERT) == "firing":
                phase.fired_after_s = round(time.time() - phase.start, 1)
                break
            time.sleep(POLL_S)
        # While it fires, the server still answers its scrapes and /health.
        phase.during = {
            "up": s.value('up{job="mistral"}'),
            "liveness": s.value('probe_success{probe="liveness"}'),
            "generation": s.value(f"probe_success{{{GEN}}}"),
            "duration": s.value(f"probe_duration_seconds{{{GEN}}}"),
            "completion errors": s.value('sum(mistral_http_requests_total{path="/v1/completions", status="500"})'),
        }
    finally:
        s.mistral.set_generation("ok")
    healed = time.time()
    deadline = time.monotonic() + s.resolve_deadline_s
    while time.monotonic() < deadline:
        if ALERT not in s.active():
            phase.resolved_after_s = round(time.time() - healed, 1)
            break
        time.sleep(POLL_S)
    return phase


@pytest.fixture(scope="module")
def timeline(stack: Stack) -> dict[str, Phase]:
    t0 = time.time()
    wait_until(lambda: stack.value(f"llm:probe_success:max1m{{{GEN}}}") == 1 and stack.value('up{job="mistral"}') == 1,
               timeout=60, interval=POLL_S, what="a first successful generation probe, recorded")
    warm = time.time() - t0
    phases = {p.name: p for p in (_observe_healthy(stack), _incident(stack, "fail"), _incident(stack, "hang"))}
    print(f"\nlive probes: warm-up {warm:.1f}s, run {time.time() - t0:.1f}s, fire deadline {stack.fire_deadline_s:.1f}s")
    for p in phases.values():
        print(f"  {p.name:8s} fired after {p.fired_after_s}s, resolved after {p.resolved_after_s}s, saw {p.during}, "
              f"other alerts firing {sorted(p.other_alerts)}, violations {p.violations[:3]}")
    return phases


def test_healthy_probes_succeed_and_no_probe_alert(timeline):
    p = timeline["healthy"]
    assert p.violations == []
    assert p.during["generation"] == 1 and p.during["liveness"] == 1
    assert p.during["max1m"] == 1 and p.during["ratio5m"] == 1
    assert p.during["completions served"] >= 2, "the generation probes did not reach the fake"


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_broken_generation_fires_within_the_compressed_deadline(timeline, stack, mode):
    p = timeline[mode]
    assert p.fired_after_s is not None, f"{ALERT} did not fire within {stack.fire_deadline_s:.1f}s of completions that {mode}"
    # /metrics and /health answered all along; only generation failed
    assert p.during["up"] == 1 and p.during["liveness"] == 1 and p.during["generation"] == 0
    if mode == "fail":
        # the failed probes are in the server's own request metrics, as any failed request
        assert (p.during["completion errors"] or 0) >= 1
    else:
        # the probe gave up at the exporter's timeout: the scrape timeout minus the offset
        assert p.during["duration"] == pytest.approx(stack.probe_timeout_s, abs=0.3)


@pytest.mark.parametrize("mode", ["fail", "hang"])
def test_recovery_resolves(timeline, stack, mode):
    p = timeline[mode]
    assert p.resolved_after_s is not None, f"{ALERT} still active {stack.resolve_deadline_s:.1f}s after completions recovered"
