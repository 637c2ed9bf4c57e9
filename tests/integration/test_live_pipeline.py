"""Live pipeline test: a real Prometheus scrapes faithful fakes and the stack's alerts fire.

What runs (all on 127.0.0.1, one Prometheus for the whole module):

* Debian's Prometheus 2.42 (tests/integration/promserver.py) with the stack's own rendered
  `prometheus.yml` and rule files (llmstack.prometheus), for a config with 500 ms scrape and
  evaluation intervals. The only edits to the rendered config are structural, on the parsed YAML:
  each in-network target address (`mistral:1234`, `localhost:9090`, ...) becomes the loopback
  address of its fake (or of this Prometheus itself). Ollama targets are loopback addresses in the
  config already, so they are scraped as rendered.
* FakeMistral with `upstream="v0.9.2"` (the release the stack pins: no `mistralrs_sequences_capacity`),
  the Ollama exporter fakes (the `http` naming and NorskHelsenett), cAdvisor and DCGM. The config uses the CUDA
  flavour so the DCGM job is rendered, a mistral memory limit, and critical GPU/container memory
  thresholds of 95% (the fakes' pressure scenarios sit at exactly the default 97%).
* Debian ships 2.42; the stack runs 3.5. Metrics Prometheus added later (SINCE_PROMETHEUS_2_43, the
  TSDB size gauges) do not exist here, so the rules over them are checked for errors, not for data.

Time compression. The rule windows (`[5m]`, `[1m]`) and the alerts' `for` are fixed in
llmstack/alerts/ and llmstack/signals.py (the queue alert's `for` comes from config), so a
faithful run would take an hour. The rendered rule files are therefore transformed once, by
`compress_rules`: every range selector and every `for:` is divided by TIME_SCALE (20), so 5m -> 15s,
1m -> 3s, 10m -> 30s. Nothing else changes; series and rule names (`...:rate5m`) stay exactly as
rendered. With 500 ms scrapes the shortest window (3s) still holds six samples.

Scenarios run in sequence, each from and back to healthy traffic: healthy, latency regression,
error burst, queue saturation, KV-cache exhaustion, GPU memory full and an XID error (FakeDcgm),
container memory pressure (FakeCadvisor), target down (FakeMistral.stop()) and target absent (the
mistral job's target removed by a config reload). Which alerts a scenario must fire is derived
from the alert expressions (the shared-schema signals they read), not listed by hand. The
`timeline` fixture drives them once and records what it saw; the tests assert on that record, then
query the TSDB over the whole run (query_range) for "did this query ever return data", and finally
restart Prometheus on the same data directory and check no sample was lost.

Every process is stopped when the `live` fixture exits (an ExitStack), whatever fails.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

import pytest
import yaml

from components.common import LABEL_COMPONENT, LABEL_ENV
from llmstack import config as cfgmod
from llmstack import alerts, dashboards, engines, prometheus, signals, topology
from llmstack.engines import mistralrs
from tests.integration.fakes import FakeCadvisor, FakeDcgm, FakeMistral, FakeOllamaMetrics
from tests.integration.fakes.llamacpp import FakeLlamaCpp
from tests.integration.fakes.tgi import FakeTgi
from tests.integration.fakes.vllm import FakeVllm
from tests.integration.promserver import PrometheusServer, QueryError, free_port, wait_until

# --- knobs ------------------------------------------------------------------------------------
# The model each of the other engines' fakes serves (its `model` label comes from the target).
OTHER_MODELS = {"vllm": "meta-llama/Llama-3.1-8B-Instruct", "tgi": "mistralai/Mistral-7B-Instruct-v0.3", "llamacpp": "qwen2.5-7b-instruct-q4_k_m"}
INTERVAL = "500ms"  # scrape, evaluation and scrape timeout, set in the rendered config (below the 1s config allows)
TIME_SCALE = 20  # every rule window and `for` is divided by this (see the module docstring)
POLL_S = 0.5
MARGIN_S = 20.0  # slack on top of the computed `for` + window, for a loaded 2-core machine
FAKE_TICK_S = 0.25  # the fakes' clock advances in real time, in steps this long
# The mistral container was created this long before Prometheus starts: the model "loads" meanwhile.
MODEL_LOAD_S = 20
# Metrics the rules read from Prometheus's self-scrape that Prometheus added in 2.43: Debian's 2.42
# here does not export them (checked against the running server; llmstack/resources.py says "since
# 2.43"), so the rules over them can only be checked for errors, not for data.
SINCE_PROMETHEUS_2_43 = frozenset({"prometheus_tsdb_wal_storage_size_bytes", "prometheus_tsdb_head_chunks_storage_size_bytes"})
WATCHDOG = "Watchdog"
PENDING_GRACE_S = 3.0  # how long an alert may be pending on healthy traffic (see _observe_healthy)
RAW_MISTRAL_RATE_QUERY = "rate(mistral_http_requests_total[5m])"
RAW_OLLAMA_RATE_QUERY = "rate(ollama_http_requests_total[5m])"


# =============================================================================================
# Durations and the rule transform
# =============================================================================================

_DURATION = cfgmod.DURATION_RE.pattern
_RANGE_RE = re.compile(rf"\[({_DURATION})(?::({_DURATION})?)?\]")
_OFFSET_RE = re.compile(rf"(\boffset\s+)({_DURATION})")
_STRING_RE = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')


def duration_s(text: str) -> float:
    if not cfgmod.DURATION_RE.fullmatch(text):
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return cfgmod.duration_seconds(text)


INTERVAL_S = duration_s(INTERVAL)


def scale_duration(text: str, factor: float = TIME_SCALE) -> str:
    return cfgmod.format_duration(duration_s(text) / factor)


def compress_expr(expr: str, factor: float = TIME_SCALE) -> str:
    """`expr` with every range selector (and subquery step, and offset) divided by `factor`.
    Quoted strings (label values, regexes) are left alone."""

    def ranges(m: re.Match) -> str:
        out = "[" + scale_duration(m.group(1), factor)
        if m.group(0).rstrip("]").endswith(":") or m.group(2):
            out += ":" + (scale_duration(m.group(2), factor) if m.group(2) else "")
        return out + "]"

    def code(part: str) -> str:
        part = _RANGE_RE.sub(ranges, part)
        return _OFFSET_RE.sub(lambda m: m.group(1) + scale_duration(m.group(2), factor), part)

    out, last = [], 0
    for m in _STRING_RE.finditer(expr):
        out += [code(expr[last:m.start()]), m.group(0)]
        last = m.end()
    out.append(code(expr[last:]))
    return "".join(out)


def compress_rules(text: str, factor: float = TIME_SCALE) -> str:
    """A rendered rule file with every `expr` range and alert `for` divided by `factor`."""
    doc = yaml.safe_load(text)
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            rule["expr"] = compress_expr(rule["expr"], factor)
            if "for" in rule:
                rule["for"] = scale_duration(rule["for"], factor)
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, width=100_000)


# =============================================================================================
# Structural edits of the rendered prometheus.yml
# =============================================================================================


def rewrite_targets(doc: dict, addresses: dict[str, str]) -> dict:
    """A copy of the parsed config with every static target mapped through `addresses`.
    A target that is neither mapped nor already on 127.0.0.1 is an error: nothing may leave the machine."""
    doc = copy.deepcopy(doc)
    for job in doc.get("scrape_configs") or []:
        for static in job.get("static_configs") or []:
            new = []
            for target in static.get("targets") or []:
                mapped = addresses.get(target, target)
                if not mapped.startswith("127.0.0.1:"):
                    raise AssertionError(
                        f"job {job['job_name']!r} scrapes {target!r}, which has no loopback fake here; "
                        "add one to `in_network_addresses` in this test"
                    )
                new.append(mapped)
            static["targets"] = new
    return doc


def compressed(doc: dict, addresses: dict[str, str]) -> dict:
    """The config as this test runs it: targets on loopback, and the global intervals compressed like
    the rules (the stack's config refuses sub-second intervals, so they are set here, not rendered)."""
    doc = rewrite_targets(doc, addresses)
    doc["global"] = {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL, "scrape_timeout": INTERVAL}
    return doc


def without_targets(doc: dict, job_name: str) -> dict:
    """A copy of the config whose job `job_name` has no targets left.

    Not the job removed: Prometheus writes no staleness markers when a whole scrape pool goes away
    on reload (it treats that like a shutdown, prometheus/prometheus#5382), so `up` would linger for
    the 5-minute lookback. A target leaving its job is marked stale at once, as in production when
    service discovery or a config edit drops it.
    """
    doc = copy.deepcopy(doc)
    for job in doc["scrape_configs"]:
        if job["job_name"] == job_name:
            job["static_configs"] = [{"targets": []}]
    return doc


def jobs_scraping(doc: dict, address: str) -> list[str]:
    return [
        job["job_name"]
        for job in doc.get("scrape_configs") or []
        for static in job.get("static_configs") or []
        if address in (static.get("targets") or [])
    ]


# =============================================================================================
# Dashboard queries, as Grafana would send them on load
# =============================================================================================


def _panels(panels: list) -> Iterable[dict]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels") or [])


def _variable_values(dashboard: dict) -> dict[str, str]:
    """Each query variable as Grafana interpolates its default into a regex matcher."""
    values = {}
    for var in dashboard["templating"]["list"]:
        if var.get("type") != "query":
            continue
        current = var.get("current", {}).get("value")
        current = current if isinstance(current, list) else [current]
        if current == ["$__all"] or not current:
            values[var["name"]] = var.get("allValue") or ".*"
        elif len(current) == 1:
            values[var["name"]] = re.escape(current[0])
        else:
            values[var["name"]] = "(" + "|".join(re.escape(v) for v in current) + ")"
    return values


# Grafana's interval variables, for this test's compressed time: a rate window of four scrapes.
_GRAFANA_GLOBALS = {"__rate_interval": cfgmod.format_duration(4 * INTERVAL_S), "__interval": INTERVAL, "__range": "1h"}


def interpolate(expr: str, values: dict[str, str]) -> str:
    every = {**_GRAFANA_GLOBALS, **values}
    out = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: every.get(m.group(1) or m.group(2), m.group(0)), expr)
    if "$" in out:
        raise AssertionError(f"unknown dashboard variable left in {out!r}")
    return out


@dataclass(frozen=True)
class DashboardQuery:
    where: str  # "dashboard / panel / refId"
    expr: str  # interpolated


def dashboard_queries() -> list[DashboardQuery]:
    out = []
    for build in dashboards.DASHBOARDS.values():
        d = build()
        values = _variable_values(d)
        for panel in _panels(d["panels"]):
            for t in panel.get("targets") or []:
                if t.get("expr"):
                    out.append(DashboardQuery(f"{d['title']} / {panel['title']} / {t['refId']}", interpolate(t["expr"], values)))
    return out


def dashboard_variables() -> list[tuple[str, str, str, str]]:
    """(dashboard title, variable, label, series selector) of every label_values() variable."""
    out = []
    for build in dashboards.DASHBOARDS.values():
        d = build()
        values = _variable_values(d)
        for var in d["templating"]["list"]:
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", var.get("query") or "", re.S)
            if var.get("type") == "query" and m:
                out.append((d["title"], var["name"], m.group(2), interpolate(m.group(1), values)))
    return out


# =============================================================================================
# Which alerts a scenario must fire: derived from what each alert expression reads
# =============================================================================================


def _reads(expr: str, name: str) -> bool:
    return re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", expr) is not None


def alerts_reading(alerts, *signals: signals.Signal) -> frozenset[str]:
    return frozenset(a.name for a in alerts if any(_reads(a.expr, s.name) for s in signals))


# What this run cannot show, each shown elsewhere: burn rates over windows longer than the run (a
# window is recorded once Prometheus holds 90% of it), and the alerts that need them, several replicas
# of one model, or a target failing on and off (tests/promtool/slo_*_test.yaml, fleet_test.yaml,
# mistral_alerts_test.yaml and the incident library).
LONGER_THAN_THE_RUN = frozenset(
    s.name for rates in (signals.SLO_BURN_RATES, signals.SLO_FLEET_BURN_RATES) for w, s in rates.items() if w != signals.WINDOW
)
NOT_IN_THIS_RUN = frozenset({
    "LLMErrorBudgetBurnFast", "LLMErrorBudgetBurnSlow", "LLMFleetErrorBudgetBurnFast", "LLMFleetReplicasDown", "LLMTargetFlapping",
})


def alerts_on_up(alerts, absent: bool) -> frozenset[str]:
    """Alerts over the `up` series: those that fire on a failing scrape, or on a missing target
    (not those this run cannot show)."""
    return frozenset(
        a.name for a in alerts
        if re.search(r"(?<![\w:])up\s*\{", a.expr) and ("absent(" in a.expr) == absent and a.name not in NOT_IN_THIS_RUN
    )


def reads_any(expr: str, metrics: Iterable[str], records: dict[str, str], _seen: Optional[set] = None) -> set[str]:
    """Which of `metrics` `expr` reads, directly or through the recording rules `records`."""
    seen = set() if _seen is None else _seen
    found = {m for m in metrics if _reads(expr, m)}
    for name, rexpr in records.items():
        if name not in seen and _reads(expr, name):
            seen.add(name)
            found |= reads_any(rexpr, metrics, records, seen)
    return found


# =============================================================================================
# The live setup
# =============================================================================================


def in_network_addresses(fakes: dict, prometheus_port: int) -> dict[str, str]:
    """Stack-network address (llmstack.topology.TARGETS, plus the self-scrape's localhost) -> loopback."""
    out = {}
    for name, (alias, port, _path) in topology.TARGETS.items():
        if name in fakes:
            out[f"{alias}:{port}"] = f"127.0.0.1:{fakes[name].port}"
    prom_alias, prom_port, _ = topology.TARGETS["prometheus"]
    for host in (prom_alias, "localhost"):
        out[f"{host}:{prom_port}"] = f"127.0.0.1:{prometheus_port}"
    return out


@dataclass
class Live:
    cfg: cfgmod.StackConfig
    prom: PrometheusServer
    mistral: FakeMistral
    ollama: dict[str, FakeOllamaMetrics]
    cadvisor: FakeCadvisor
    dcgm: FakeDcgm
    config_path: str
    config_doc: dict  # the live config as loaded (targets rewritten)
    rendered_doc: dict  # the config exactly as rendered
    alerts: list  # AlertRule, with `for` as loaded (compressed)
    records: dict[str, str]  # recording rule name -> expr, as rendered
    long_window_s: float

    def write_config(self, doc: dict) -> None:
        with open(self.config_path, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=True)

    def active_alerts(self) -> dict[str, str]:
        """alertname -> state ("pending"/"firing"); firing wins when an alert has both."""
        out: dict[str, str] = {}
        for a in self.prom.alerts():
            name = a["labels"]["alertname"]
            if out.get(name) != "firing":
                out[name] = a["state"]
        return out

    def for_s(self, name: str) -> float:
        rule = next(a for a in self.alerts if a.name == name)
        return duration_s(rule.for_) if rule.for_ else 0.0


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-pipeline")
    with ExitStack() as stack:
        # Fakes first: their ports go into the config (Ollama) and the target rewrite.
        http_fake = FakeOllamaMetrics(flavour="http")
        nh = FakeOllamaMetrics(flavour="norskhelsenett")
        # Every other engine the stack maps, one server each, serving healthy traffic all along.
        others = {"vllm": FakeVllm(model=OTHER_MODELS["vllm"]), "tgi": FakeTgi(), "llamacpp": FakeLlamaCpp()}
        for fake in (http_fake, nh, *others.values()):
            fake.start()
            stack.callback(fake.close)
        cfg = cfgmod.load_defaults(
            "dev",
            # The probes have a live test of their own (test_live_probes.py), with a blackbox exporter.
            probesEnabled="false",
            # The GPU flavour, so the DCGM job is rendered (dev has no GPU otherwise), and a memory
            # limit, so container memory has something to be measured against.
            mistralImageFlavour="cuda",
            mistralMemoryLimitMb=16384,
            # The fakes' pressure scenarios sit at 97%, exactly the default critical thresholds,
            # and the alerts fire above (not at) a threshold.
            alertGpuMemoryCriticalPercent=95,
            alertContainerMemoryCriticalPercent=95,
            ollamaTargets=json.dumps([f"http@127.0.0.1:{http_fake.port}", f"norskhelsenett@127.0.0.1:{nh.port}"]),
            **{f"{engine}Targets": json.dumps([f"{OTHER_MODELS[engine]}@127.0.0.1:{fake.port}"]) for engine, fake in others.items()},
        )
        mistral = FakeMistral(model=cfg.mistral.model_id, capacity=cfg.mistral.max_seqs, upstream="v0.9.2")
        containers = {c: cfg.container_name(c) for c in topology.STACK_CONTAINERS}
        images = {"mistral": cfg.mistral.image, "prometheus": cfg.prometheus.image, "grafana": cfg.grafana.image}
        cadvisor = FakeCadvisor(
            containers=tuple(containers.values()),
            memory_limit_bytes={containers["mistral"]: cfg.mistral.memory_limit_mb * 2**20},
            images={name: images[c] for c, name in containers.items()},
            docker_labels={name: {LABEL_COMPONENT: c, LABEL_ENV: cfg.env} for c, name in containers.items()},
            model_container=containers["mistral"],
            start_time=time.time() - MODEL_LOAD_S,
        )
        dcgm = FakeDcgm()
        for fake in (mistral, cadvisor, dcgm):
            fake.start()
            stack.callback(fake.close)
        for fake in (mistral, cadvisor, dcgm, http_fake, nh, *others.values()):
            fake.set_scenario("healthy")
            fake.run_clock(FAKE_TICK_S)

        # The real render, then only the addresses change.
        prom_port = free_port()
        rendered = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
        fakes = {"mistral": mistral, "cadvisor": cadvisor, "dcgm": dcgm}
        live_doc = compressed(rendered, in_network_addresses(fakes, prom_port))

        config_path = str(root / "prometheus.yml")
        rules_dir = root / topology.PROMETHEUS_RULES_SUBDIR
        rules_dir.mkdir()
        for name, text in prometheus.render_rule_files(cfg).items():
            (rules_dir / name).write_text(compress_rules(text))
        # The flags components/prometheus.py starts the stack's Prometheus with, besides paths.
        retention = [
            f"--storage.tsdb.retention.time={cfg.prometheus.retention_time}",
            f"--storage.tsdb.retention.size={cfg.prometheus.retention_size}",
        ]
        server = PrometheusServer(config_path, str(root / "data"), str(root / "prometheus.log"), extra_args=retention)
        # The alerts as loaded: `for` and any `offset` compressed like the rule files.
        loaded_alerts = [
            dataclasses.replace(a, expr=compress_expr(a.expr), for_=scale_duration(a.for_) if a.for_ else a.for_)
            for a in alerts.alert_rules(cfg)
        ]
        state = Live(
            cfg=cfg, prom=server, mistral=mistral, ollama={"http": http_fake, "norskhelsenett": nh},
            cadvisor=cadvisor, dcgm=dcgm, config_path=config_path, config_doc=live_doc, rendered_doc=rendered,
            alerts=loaded_alerts,
            records={r["record"]: r["expr"] for g in prometheus.recording_groups(cfg) for r in g["rules"]},
            long_window_s=duration_s(signals.WINDOW) / TIME_SCALE,
        )
        state.write_config(live_doc)
        stack.callback(server.stop)
        server.start(port=prom_port)
        if server.port != prom_port:  # lost the port in a race: point the self-scrape at the new one
            state.config_doc = compressed(rendered, in_network_addresses(fakes, server.port))
            state.write_config(state.config_doc)
            server.reload()
        yield state


# =============================================================================================
# The timeline: every scenario once, in sequence, recorded
# =============================================================================================


@dataclass
class Phase:
    name: str
    expected: frozenset[str]
    start: float = 0.0
    end: float = 0.0
    fired_after_s: dict[str, float] = field(default_factory=dict)
    missing: frozenset[str] = frozenset()
    resolved_after_s: Optional[float] = None
    still_active: dict[str, str] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)  # healthy only: alerts other than the Watchdog


@dataclass
class Timeline:
    start: float
    end: float
    warmup_s: float
    phases: list[Phase]
    rule_health: list[dict]  # every rule from /api/v1/rules at the end

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def phase_at(self, ts: float) -> str:
        for p in self.phases:
            if p.start <= ts <= p.end:
                return p.name
        return "between phases"


def _watch_firing(live: Live, phase: Phase, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        active = live.active_alerts()
        for name, st in active.items():
            if st == "firing" and name in phase.expected and name not in phase.fired_after_s:
                phase.fired_after_s[name] = round(time.time() - phase.start, 1)
        if phase.expected <= set(phase.fired_after_s) or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    phase.missing = phase.expected - set(phase.fired_after_s)


def _watch_resolved(live: Live, phase: Phase, since: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        active = live.active_alerts()
        others = {n: s for n, s in active.items() if n != WATCHDOG}
        if not others and active.get(WATCHDOG) == "firing":
            phase.resolved_after_s = round(time.time() - since, 1)
            phase.still_active = {}
            return
        phase.still_active = others
        if time.monotonic() >= deadline:
            return
        time.sleep(POLL_S)


def _run_fault(live: Live, name: str, expected: frozenset[str], inject: Callable[[], None], heal: Callable[[], None]) -> Phase:
    phase = Phase(name, expected, start=time.time())
    # Long enough for the long window to fill past the threshold, then the slowest `for`.
    fire_timeout = max((live.for_s(n) for n in expected), default=0.0) + live.long_window_s + MARGIN_S
    try:
        inject()
        _watch_firing(live, phase, fire_timeout)
    finally:
        heal()
    healed = time.time()
    _watch_resolved(live, phase, healed, live.long_window_s + MARGIN_S)
    phase.end = time.time()
    return phase


def _observe_healthy(live: Live, seconds: float) -> Phase:
    """Healthy traffic for `seconds`: the Watchdog fires, nothing else fires or stays pending.

    A single failed scrape on a loaded machine makes `up == 0` true for one evaluation; that brief
    pending state is tolerated for PENDING_GRACE_S. A rule that is wrongly true on healthy data stays
    pending longer, so it is caught even when its `for` outlasts the observation."""
    phase = Phase("healthy", frozenset({WATCHDOG}), start=time.time())
    pending_since: dict[str, float] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        active = live.active_alerts()
        now = time.time()
        if active.get(WATCHDOG) == "firing":
            phase.fired_after_s.setdefault(WATCHDOG, round(now - phase.start, 1))
        pending_since = {n: pending_since.get(n, now) for n, st in active.items() if st == "pending"}
        for n, st in sorted(active.items()):
            if n != WATCHDOG and (st == "firing" or now - pending_since[n] > PENDING_GRACE_S):
                phase.violations.append(f"{n} {st} at +{now - phase.start:.1f}s")
        time.sleep(POLL_S)
    phase.missing = phase.expected - set(phase.fired_after_s)
    phase.end = time.time()
    return phase


def _wait_warm(live: Live) -> None:
    """Every target up and the first rate-based records present; only the Watchdog active."""

    def warm():
        targets = live.prom.targets()
        if not targets or any(t["health"] != "up" for t in targets):
            return False
        if not live.prom.query(signals.REQUESTS_RATE.name):
            return False
        active = live.active_alerts()
        return set(active) == {WATCHDOG} and active[WATCHDOG] == "firing"

    wait_until(warm, timeout=60, interval=POLL_S, what="all targets up, first records, only the Watchdog")


@pytest.fixture(scope="module")
def timeline(live: Live) -> Timeline:
    t0 = time.time()
    _wait_warm(live)
    warm = time.time()
    a = live.alerts
    m = live.mistral

    def scenario(name: str, fake=m) -> tuple[Callable[[], None], Callable[[], None]]:
        return (lambda: fake.set_scenario(name)), (lambda: fake.set_scenario("healthy"))

    def reload_with(doc: dict) -> Callable[[], None]:
        def apply():
            live.write_config(doc)
            live.prom.reload()
        return apply

    faults = [
        ("latency_regression", alerts_reading(a, signals.LATENCY_P95, signals.TTFT_P95), *scenario("latency_regression")),
        ("error_burst", alerts_reading(a, signals.ERROR_RATIO, signals.ERROR_RATIO_1M), *scenario("error_burst")),
        ("queue_saturation", alerts_reading(a, signals.QUEUE_DEPTH), *scenario("queue_saturation")),
        ("kv_cache_exhaustion", alerts_reading(a, signals.KV_CACHE_UTILISATION, signals.PREEMPTIONS_RATE, signals.PREEMPTIONS_RATE_1M),
         *scenario("kv_cache_exhaustion")),
        ("gpu_memory_full", alerts_reading(a, signals.GPU_MEMORY_USED), *scenario("gpu_memory_full", live.dcgm)),
        ("gpu_xid_error", alerts_reading(a, signals.GPU_LAST_XID), *scenario("xid_errors", live.dcgm)),
        ("container_memory_pressure", alerts_reading(a, signals.CONTAINER_MEMORY), *scenario("memory_pressure", live.cadvisor)),
        ("target_down", alerts_on_up(a, absent=False), m.stop, m.start),
        (
            "target_absent",
            alerts_on_up(a, absent=True),
            reload_with(without_targets(live.config_doc, mistralrs.JOB)),
            reload_with(live.config_doc),
        ),
    ]
    # Healthy long enough for any rule over the long window to have seen only healthy data.
    phases = [_observe_healthy(live, live.long_window_s + 5)]
    for name, expected, inject, heal in faults:
        phases.append(_run_fault(live, name, expected, inject, heal))
    rule_health = [r for g in live.prom.rules() for r in g["rules"]]
    tl = Timeline(start=t0, end=time.time(), warmup_s=round(warm - t0, 1), phases=phases, rule_health=rule_health)
    print(f"\nlive pipeline: warm-up {tl.warmup_s}s, run {tl.end - t0:.0f}s")
    for p in phases:
        print(
            f"  {p.name:22s} {p.end - p.start:5.1f}s fired {p.fired_after_s} missing {sorted(p.missing)} "
            f"resolved after {p.resolved_after_s}s still {p.still_active} violations {p.violations[:3]}"
        )
    return tl


# =============================================================================================
# Range queries over the whole run: "did this ever return data, and when"
# =============================================================================================


@dataclass
class Seen:
    error: Optional[str] = None
    phases: set[str] = field(default_factory=set)


def seen_over_run(live: Live, tl: Timeline, exprs: Iterable[str]) -> dict[str, Seen]:
    out = {}
    for expr in dict.fromkeys(exprs):
        seen = Seen()
        try:
            for series in live.prom.query_range(expr, tl.start, tl.end, INTERVAL_S):
                for ts, value in series["values"]:
                    if math.isfinite(float(value)):
                        seen.phases.add(tl.phase_at(float(ts)))
        except QueryError as err:
            seen.error = str(err)
        out[expr] = seen
    return out


# =============================================================================================
# Tests
# =============================================================================================


def test_compress_expr_scales_ranges_and_nothing_else():
    expr = 'sum by (le) (rate(x_bucket{path=~"/v1/[0-9]+[5m]"}[5m])) / llm:requests:rate5m offset 1m + max_over_time(y[10m:1m])'
    assert compress_expr(expr, 20) == (
        'sum by (le) (rate(x_bucket{path=~"/v1/[0-9]+[5m]"}[15s])) / llm:requests:rate5m offset 3s + max_over_time(y[30s:3s])'
    )
    rules_text = yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"alert": "A", "expr": "llm:x:rate5m > 0", "for": "2m", "labels": {"severity": "warning"}},
        {"record": "llm:x:rate5m", "expr": "rate(x[1m])"},
    ]}]})
    compressed = yaml.safe_load(compress_rules(rules_text, 20))["groups"][0]["rules"]
    assert compressed == [
        {"alert": "A", "expr": "llm:x:rate5m > 0", "for": "6s", "labels": {"severity": "warning"}},
        {"record": "llm:x:rate5m", "expr": "rate(x[3s])"},
    ]


def test_rewrite_targets_refuses_a_target_without_a_loopback_fake():
    doc = {"scrape_configs": [{"job_name": "a", "static_configs": [{"targets": ["mistral:1234"]}]}]}
    assert rewrite_targets(doc, {"mistral:1234": "127.0.0.1:5"})["scrape_configs"][0]["static_configs"][0]["targets"] == ["127.0.0.1:5"]
    assert doc["scrape_configs"][0]["static_configs"][0]["targets"] == ["mistral:1234"]  # a copy, not in place
    with pytest.raises(AssertionError, match="no loopback fake"):
        rewrite_targets(doc, {})


def test_config_is_the_rendered_one_with_loopback_targets(live: Live):
    """Only target addresses and the compressed global intervals differ from the render, and every
    target is on loopback."""
    rendered, loaded = copy.deepcopy(live.rendered_doc), copy.deepcopy(live.config_doc)
    assert loaded.pop("global") == {"scrape_interval": INTERVAL, "evaluation_interval": INTERVAL, "scrape_timeout": INTERVAL}
    rendered.pop("global")
    for doc in (rendered, loaded):
        for job in doc["scrape_configs"]:
            for static in job.get("static_configs") or []:
                static["targets"] = ["<address>"] * len(static["targets"])
    assert loaded == rendered
    addresses = [t for j in live.config_doc["scrape_configs"] for s in j.get("static_configs") or [] for t in s["targets"]]
    assert addresses and all(t.startswith("127.0.0.1:") for t in addresses), addresses


def test_mistral_target_up_with_expected_labels(live: Live, timeline: Timeline):
    c = live.cfg
    expected = {"instance": topology.MISTRAL_INSTANCE, "engine": mistralrs.ENGINE, "env": c.env, "model": c.mistral.model_id}

    def mistral_targets():
        return [t for t in live.prom.targets() if t["labels"].get("job") == mistralrs.JOB]

    # Bounded wait: one slow scrape on a loaded machine must not decide this.
    wait_until(lambda: [t for t in mistral_targets() if t["health"] == "up"], timeout=10, interval=POLL_S, what="the mistral target up")
    targets = mistral_targets()
    assert len(targets) == 1, targets
    t = targets[0]
    assert t["scrapeUrl"] == f"http://127.0.0.1:{live.mistral.port}{topology.TARGETS['mistral'][2]}"
    assert {k: t["labels"].get(k) for k in expected} == expected
    up = wait_until(lambda: live.prom.query(f'up{{job="{mistralrs.JOB}"}} == 1'), timeout=10, interval=POLL_S, what="up == 1")
    assert len(up) == 1 and {k: up[0]["metric"].get(k) for k in expected} == expected


def test_the_raw_mistral_request_rate_returns_data(live: Live, timeline: Timeline):
    result = live.prom.query(RAW_MISTRAL_RATE_QUERY)
    assert result, f"{RAW_MISTRAL_RATE_QUERY} returned nothing"
    ok = [r for r in result if r["metric"].get("status") == "200" and r["metric"].get("path") == FakeMistral.CHAT_PATH]
    assert ok and float(ok[0]["value"][1]) > 0, result


def test_the_raw_ollama_request_rate_returns_data(live: Live, timeline: Timeline):
    http_fake = live.ollama["http"]
    address = f"127.0.0.1:{http_fake.port}"
    assert jobs_scraping(live.rendered_doc, address), f"the rendered config does not scrape the configured http target {address}"
    assert http_fake.scrapes > 0, "the http Ollama fake was never scraped"
    result = live.prom.query(RAW_OLLAMA_RATE_QUERY)
    assert result and any(float(r["value"][1]) > 0 for r in result), result


def test_healthy_fires_only_the_watchdog(timeline: Timeline):
    healthy = timeline.phase("healthy")
    assert WATCHDOG in healthy.fired_after_s, "the Watchdog never fired"
    assert healthy.violations == []


SCENARIOS = (
    "latency_regression", "error_burst", "queue_saturation", "kv_cache_exhaustion",
    "gpu_memory_full", "gpu_xid_error", "container_memory_pressure", "target_down", "target_absent",
)


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenario_alerts_fire_then_resolve(timeline: Timeline, name: str):
    p = timeline.phase(name)
    assert p.expected, f"no alert reads what {name} breaks; the derivation in this test no longer matches the rules"
    assert not p.missing, f"{name}: never reached firing: {sorted(p.missing)} (fired: {p.fired_after_s})"
    assert p.resolved_after_s is not None, f"{name}: still active after the scenario ended: {p.still_active}"


@pytest.fixture(scope="module")
def version_gaps(live: Live, timeline: Timeline) -> frozenset[str]:
    """The SINCE_PROMETHEUS_2_43 metrics this Prometheus does not export (none from 2.43 on)."""
    build = live.prom.api("status/buildinfo")["version"]
    exported = set(live.prom.label_values("__name__", match='{job="prometheus"}', start=timeline.start, end=timeline.end))
    gaps = frozenset(SINCE_PROMETHEUS_2_43 - exported)
    if tuple(int(x) for x in re.findall(r"\d+", build)[:2]) >= (2, 43):
        assert gaps == frozenset(), f"Prometheus {build} should export {sorted(gaps)}"
    if gaps:
        print(f"\nPrometheus {build} lacks {sorted(gaps)}: rules over them are checked for errors only")
    return gaps


def _cannot_have_data(live: Live, exprs: dict[str, str], gaps: frozenset[str]) -> dict[str, list[str]]:
    """name -> what it needs that this run lacks: a metric of a version gap, a burn rate over a window
    longer than the run, or (an alert this run cannot show) the alert itself."""
    beyond = {a.expr: a.name for a in live.alerts if a.name in NOT_IN_THIS_RUN}
    out = {
        name: sorted(reads_any(expr, gaps | LONGER_THAN_THE_RUN, live.records) | ({name} & LONGER_THAN_THE_RUN)
                     | ({beyond[expr]} if expr in beyond else set()))
        for name, expr in exprs.items()
    }
    return {name: missing for name, missing in out.items() if missing}


def test_every_alert_fired_in_some_scenario(live: Live, timeline: Timeline, version_gaps):
    fired = set().union(*(p.fired_after_s for p in timeline.phases))
    exempt = _cannot_have_data(live, {a.name: a.expr for a in live.alerts}, version_gaps)
    assert {a.name for a in live.alerts} - fired - set(exempt) == set()


def test_every_rule_evaluates_without_error(live: Live, timeline: Timeline):
    loaded = {r["name"] for r in timeline.rule_health}
    assert loaded == {a.name for a in live.alerts} | set(live.records)
    bad = {r["name"]: r.get("lastError") for r in timeline.rule_health if r["health"] != "ok"}
    assert bad == {}


def test_every_recording_rule_returns_data(live: Live, timeline: Timeline, version_gaps):
    seen = seen_over_run(live, timeline, list(live.records))
    assert {n: s.error for n, s in seen.items() if s.error} == {}
    exempt = _cannot_have_data(live, live.records, version_gaps)
    assert sorted(n for n, s in seen.items() if not s.phases and n not in exempt) == []


def test_every_alert_expression_returns_data(live: Live, timeline: Timeline, version_gaps):
    # What Prometheus evaluated (compressed), and the expression as rendered: both must be valid.
    for a in alerts.alert_rules(live.cfg):
        live.prom.query(a.expr)
    seen = seen_over_run(live, timeline, [a.expr for a in live.alerts])
    assert {e: s.error for e, s in seen.items() if s.error} == {}
    exempt = _cannot_have_data(live, {a.expr: a.expr for a in live.alerts}, version_gaps)
    assert sorted(e for e, s in seen.items() if not s.phases and e not in exempt) == []


def test_the_comparison_dashboard_shows_every_engine_that_has_the_signal(live: Live, timeline: Timeline):
    """All five engines at once: each comparison panel returns a series for every engine whose
    mapping records what the panel reads, and for no other."""
    board = dashboards.comparison.build()
    values = _variable_values(board)
    mappings = engines.mappings(live.cfg)
    missing = {}
    for panel in _panels(board["panels"]):
        for t in panel.get("targets") or []:
            expr = t.get("expr") or ""
            read = set(re.findall(r"llm:[a-z0-9_:]+", expr))
            if "by (engine)" not in expr or not read <= {s.name for m in mappings for s in m.signals}:
                continue  # not a per-engine KPI (alerts, model load time)
            expected = {m.engine for m in mappings if read <= {s.name for s in m.signals}}
            got = {r["metric"].get("engine") for r in live.prom.query_range(interpolate(expr, values), timeline.start, timeline.end, INTERVAL_S)}
            if got != expected:
                missing[panel["title"]] = (sorted(expected - got), sorted(got - expected))
    assert missing == {}
    assert {"mistralrs", "ollama", "vllm", "tgi", "llamacpp"} <= {m.engine for m in mappings}


def test_every_dashboard_query_evaluates_and_returns_data(live: Live, timeline: Timeline, version_gaps):
    queries = dashboard_queries()
    assert queries
    seen = seen_over_run(live, timeline, [q.expr for q in queries])
    assert {q.where: seen[q.expr].error for q in queries if seen[q.expr].error} == {}
    exempt = _cannot_have_data(live, {q.where: q.expr for q in queries}, version_gaps)
    # The probe panels read records this run does not have: its stack runs without probes
    # (test_live_probes.py runs them against a real blackbox exporter).
    unrecorded = {q.where for q in queries if set(re.findall(r"llm:[a-z0-9_:]+", q.expr)) - set(live.records)}
    assert all("Probe" in where for where in unrecorded), unrecorded
    assert sorted(q.where for q in queries if not seen[q.expr].phases and q.where not in set(exempt) | unrecorded) == []


def test_model_load_time_is_measured(live: Live, timeline: Timeline):
    """llm:model_load_seconds is the first successful mistral scrape minus the container's creation."""
    created = live.cadvisor.start_times[live.cfg.container_name("mistral")]
    window = cfgmod.format_duration(timeline.end - timeline.start + 60)
    ups = live.prom.query(f'up{{job="{mistralrs.JOB}"}}[{window}]', at=timeline.end)
    first_answer = min(float(ts) for r in ups for ts, v in r["values"] if v == "1")
    measured = [float(r["value"][1]) for r in live.prom.query(signals.MODEL_LOAD_SECONDS.name, at=timeline.end)]
    assert len(measured) == 1, measured
    # The ready time latches at the first evaluation that also knows the creation time, so it can
    # trail the first answer by about a scrape of cAdvisor.
    assert first_answer - created <= measured[0] <= first_answer - created + 3 * INTERVAL_S, (measured, first_answer - created)


def test_dashboard_variables_list_the_mistral_target(live: Live, timeline: Timeline):
    labels = next(t["labels"] for t in live.prom.targets() if t["labels"].get("job") == mistralrs.JOB)
    variables = dashboard_variables()
    assert variables
    for title, name, label, selector in variables:
        values = live.prom.label_values(label, match=selector, start=timeline.start, end=timeline.end)
        assert labels[label] in values, f"{title}: variable {name} = label_values({selector}, {label}) -> {values}"


def test_restart_keeps_every_sample(live: Live, timeline: Timeline):
    """Stop Prometheus, start it on the same data directory: at a fixed past time, every raw sample
    of the scraped mistral series, the recording rules and ALERTS is still there, unchanged."""
    at = time.time() - 2  # every sample up to here has been appended (scrapes commit within ms)
    window = cfgmod.format_duration(at - timeline.start + 60)
    queries = [
        f'count_over_time(up{{job="{mistralrs.JOB}"}}[10m])',
        f'{{job="{mistralrs.JOB}"}}[{window}]',
        f'{{__name__=~"llm:.*"}}[{window}]',
        f"ALERTS[{window}]",
    ]

    def snapshot() -> dict[str, dict]:
        out = {}
        for q in queries:
            out[q] = {
                json.dumps(r["metric"], sort_keys=True): r.get("values") or [r["value"]]
                for r in live.prom.query(q, at=at)
            }
        return out

    before = snapshot()
    scrapes = float(next(iter(before[queries[0]].values()))[0][1])
    assert scrapes >= 0.5 * (at - timeline.start) / INTERVAL_S, f"too few mistral scrapes before the restart: {scrapes}"
    samples = sum(len(v) for q in queries[1:] for v in before[q].values())
    old_pid = live.prom.pid
    t = time.monotonic()
    live.prom.restart()
    print(f"\nrestart: {time.monotonic() - t:.1f}s, {samples} raw samples compared")
    assert live.prom.pid != old_pid
    after = snapshot()
    for q in queries:
        assert after[q].keys() == before[q].keys(), q
        lost = {k: len(before[q][k]) - len(after[q][k]) for k in before[q] if after[q][k] != before[q][k]}
        assert lost == {}, f"{q}: series whose samples changed across the restart (count lost): {lost}"
    # And it scrapes again after the restart.
    restarted = time.time()
    wait_until(
        lambda: live.prom.query(f'timestamp(up{{job="{mistralrs.JOB}"}}) > {restarted:.3f}'),
        timeout=30, interval=POLL_S, what="a fresh mistral scrape after the restart",
    )
