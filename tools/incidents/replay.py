"""Replay a scenario through promtool on the prod rules and judge it.

`series(scenario, cfg)` writes the scenario's timeline as the series this stack's Prometheus stores
for one mistral.rs v0.9.2 server: the names after the `mistral` job's rename, its target labels, the
server's own `model` kept as `exported_model`, the histogram buckets upstream uses
(tests/integration/fakes/mistral.py), only the metrics the job keeps, and `up`. `run` replays it
with promtool, asking at every evaluation step which alerts are firing (one expression test per
step that expects none, tagged with its step: promtool prints back exactly the firing ones), and
`judge` compares that with what the scenario expects.

promtool samples and evaluates on one aligned grid, recording rules before alerts, so a measured
time is the best case. A real server adds up to one scrape interval before the first sample shows
an incident, and up to two evaluation intervals between that sample and the alert (the recording
group and the alerting group run at independent offsets): the worst case adds those.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Optional

import yaml

from llmstack import prometheus, slo, topology
from llmstack.config import StackConfig, duration_seconds, format_duration
from llmstack.engines import mistralrs
from tools.detection import promtool_path

from .model import FAILING, REMOVED, SCRAPED, VANISHED, Scenario, State

# mistral.rs v0.9.2 (mistralrs-server-core/src/metrics.rs), as the fake of tests/integration/fakes serves them.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560)
FAILED_REQUEST_SECONDS = 0.05  # a 5xx answers fast
KV_BLOCKS = 1000
PROMPT_AND_COMPLETION_TOKENS = 300
ROUTE = "/v1/chat/completions"
GROUP_ORDER = ("llm-schema-mistralrs", slo.GROUP, prometheus.ALERT_GROUP)
_GOT = re.compile(r"\{([^{}]*)\}")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


def _labels(labels: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _compress(values: list) -> str:
    """promtool's expanding notation: runs of a constant step as `start+stepxN`; `_` no sample, `stale`."""
    out, i = [], 0
    while i < len(values):
        v = values[i]
        if isinstance(v, str):
            j = i
            while j + 1 < len(values) and values[j + 1] == v:
                j += 1
            out.append(v if j == i else f"{v}x{j - i}" if v == "_" else " ".join([v] * (j - i + 1)))
            i = j + 1
            continue
        j = i
        step = None
        while j + 1 < len(values) and not isinstance(values[j + 1], str):
            d = round(values[j + 1] - values[j], 9)
            if step is None:
                step = d
            elif d != step:
                break
            j += 1
        if j == i:
            out.append(f"{v:g}")
        else:
            sign = "+" if step >= 0 else "-"
            out.append(f"{v:.9g}{sign}{abs(step):.9g}x{j - i}")
        i = j + 1
    return " ".join(out)


class _Server:
    """The server's counters and gauges, advanced one scrape interval at a time."""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg
        self.reset()

    def reset(self) -> None:
        self.requests = {"200": 0.0, "500": 0.0}
        self.buckets = {s: [0.0] * (len(DURATION_BUCKETS) + 1) for s in self.requests}
        self.sums = {s: 0.0 for s in self.requests}
        self.ttft = [0.0] * (len(TTFT_BUCKETS) + 1)
        self.ttft_sum = 0.0
        self.preemptions = 0.0
        self.tokens = 0.0

    def advance(self, state: State, seconds: float) -> None:
        n = state.rps * seconds
        errors = n * state.error_share
        good = n - errors
        slow = good * state.slow_share
        for status, count, latency in (("200", good - slow, state.latency), ("200", slow, state.slow_latency), ("500", errors, FAILED_REQUEST_SECONDS)):
            if count:
                self.requests[status] += count
                self.buckets[status][bisect.bisect_left(DURATION_BUCKETS, latency)] += count
                self.sums[status] += count * latency
        if good:
            self.ttft[bisect.bisect_left(TTFT_BUCKETS, state.ttft)] += good
            self.ttft_sum += good * state.ttft
        self.preemptions += state.preemptions_per_s * seconds
        self.tokens += n * PROMPT_AND_COMPLETION_TOKENS

    def sample(self, state: State) -> dict[str, float]:
        """Metric key -> value, keyed by series text."""
        cfg = self.cfg
        model = cfg.mistral.model_id
        engine = {"engine": mistralrs.ENGINE, "env": cfg.env, "instance": topology.MISTRAL_INSTANCE, "job": mistralrs.JOB, "model": model}
        http = {**engine, "exported_model": model, "method": "POST", "path": ROUTE}
        out: dict[str, float] = {}

        def put(name: str, labels: dict, value: float) -> None:
            out[name + _labels(labels)] = value

        for status in self.requests:
            labels = {**http, "status": status}
            put("mistral_http_requests_total", labels, self.requests[status])
            cumulative = 0.0
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), self.buckets[status]):
                cumulative += count
                put("mistral_http_request_duration_seconds_bucket", {**labels, "le": _le(bound)}, cumulative)
            put("mistral_http_request_duration_seconds_sum", labels, self.sums[status])
            put("mistral_http_request_duration_seconds_count", labels, self.requests[status])
        cumulative = 0.0
        ttft_labels = {**http, "status": "200"}
        for bound, count in zip((*TTFT_BUCKETS, float("inf")), self.ttft):
            cumulative += count
            put("mistralrs_time_to_first_token_seconds_bucket", {**ttft_labels, "le": _le(bound)}, cumulative)
        put("mistralrs_time_to_first_token_seconds_count", ttft_labels, cumulative)
        put("mistral_http_requests_in_flight", http, state.running + state.waiting)
        put("mistralrs_sequences_running", engine, state.running)
        put("mistralrs_sequences_waiting", engine, state.waiting)
        put("mistralrs_kv_cache_blocks_total", engine, KV_BLOCKS)
        put("mistralrs_kv_cache_blocks_used", engine, round(state.kv_used * KV_BLOCKS))
        put("mistralrs_paged_preemptions_total", engine, self.preemptions)
        put("mistralrs_tokens_processed_total", engine, self.tokens)
        return out


def series(scenario: Scenario, cfg: StackConfig) -> list[dict]:
    """promtool input series for the scenario: one sample per step, from 0 to its end."""
    step = duration_seconds(scenario.step)
    server = _Server(cfg)
    kept = mistralrs.mapping(cfg).raw_metrics
    up = "up" + _labels({"engine": mistralrs.ENGINE, "env": cfg.env, "instance": topology.MISTRAL_INSTANCE, "job": mistralrs.JOB, "model": cfg.mistral.model_id})
    keys = list(server.sample(scenario.timeline[0].state))
    unkept = {key.split("{", 1)[0] for key in keys} - kept
    if unkept:
        raise AssertionError(f"{sorted(unkept)} are not kept by the mistral job: the replay must only use stored series")
    values: dict[str, list] = {key: [] for key in [*keys, up]}
    previous, first = SCRAPED, True
    for stretch in scenario.timeline:
        state = stretch.state
        for i in range(round(stretch.seconds / step)):
            if i == 0 and state.restart:
                server.reset()
            if not first:
                server.advance(state, step)
            first = False
            sample = server.sample(state)
            if state.scrape == SCRAPED:
                for key in keys:
                    values[key].append(sample[key])
                values[up].append(1)
            elif state.scrape == FAILING:
                # A failed scrape marks the target's series stale once; `up` records the failure.
                for key in keys:
                    values[key].append("stale" if previous == SCRAPED else "_")
                values[up].append(0)
            elif state.scrape in (VANISHED, REMOVED):
                marker = "stale" if state.scrape == REMOVED and previous != REMOVED else "_"
                for key in values:
                    values[key].append(marker)
            else:
                raise ValueError(f"unknown scrape state {state.scrape!r}")
            previous = state.scrape
    return [{"series": key, "values": _compress(column)} for key, column in sorted(values.items())]


@dataclass
class Replay:
    scenario: Scenario
    # (alertname, severity, extra labels) -> evaluation times (seconds) at which it was firing
    firing: dict[tuple[str, str, tuple], list[float]] = field(default_factory=dict)

    def episodes(self, key) -> list[tuple[float, float]]:
        """(first firing step, first step no longer firing or the end) per firing stretch."""
        step = duration_seconds(self.scenario.step)
        out, start, last = [], None, None
        for t in sorted(self.firing.get(key, [])):
            if start is None:
                start = t
            elif t - last > step + 1e-6:
                out.append((start, last + step))
                start = t
            last = t
        if start is not None:
            out.append((start, last + step))
        return out


def _probe(k: int, t: float) -> dict:
    expr = f'count by (alertname, severity, slo, probe) (label_replace(ALERTS{{alertstate="firing", alertname!="Watchdog"}}, "probe", "p{k}", "", ""))'
    return {"expr": expr, "eval_time": format_duration(t) if t else "0s", "exp_samples": []}


@functools.lru_cache(maxsize=None)
def _rule_texts(cfg: StackConfig, step: str) -> tuple:
    """The rules as this stack renders them. A scenario replayed at a coarser step than the stack's
    evaluation interval (the day-long SLO ones) gets them rendered for that interval, so each
    burn-rate window's coverage counts its evaluations; no knob allows it, the replay alone does."""
    if step != cfg.prometheus.evaluation_interval:
        cfg = dataclasses.replace(cfg, prometheus=dataclasses.replace(cfg.prometheus, scrape_interval=step, evaluation_interval=step))
    return tuple(sorted(prometheus.render_rule_files(cfg).items()))


def run(scenario: Scenario, cfg: StackConfig, binary: Optional[str] = None) -> Replay:
    step = duration_seconds(scenario.step)
    steps = round(scenario.seconds / step)
    times = [k * step for k in range(steps)]
    with tempfile.TemporaryDirectory(prefix="llmstack-incident-") as workdir:
        names = []
        for name, text in _rule_texts(cfg, scenario.step):
            with open(os.path.join(workdir, name), "w") as fh:
                fh.write(text)
            names.append(name)
        doc = {
            "rule_files": names,
            "evaluation_interval": scenario.step,
            "group_eval_order": list(GROUP_ORDER),
            "tests": [{"name": scenario.name, "interval": scenario.step, "input_series": series(scenario, cfg),
                       "promql_expr_test": [_probe(k, t) for k, t in enumerate(times)]}],
        }
        path = os.path.join(workdir, "incident.yaml")
        with open(path, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False, width=1 << 30)
        done = subprocess.run([binary or promtool_path(), "test", "rules", path], capture_output=True, text=True,
                              timeout=900, stdin=subprocess.DEVNULL, cwd=workdir)
    report = done.stdout + done.stderr
    replay = Replay(scenario)
    failed_probes = set()
    for body in _GOT.findall(report):
        labels = dict(_LABEL.findall(body))
        if "probe" not in labels or "alertname" not in labels:
            continue
        k = int(labels.pop("probe")[1:])
        failed_probes.add(k)
        key = (labels.pop("alertname"), labels.pop("severity", ""), tuple(sorted(labels.items())))
        replay.firing.setdefault(key, []).append(times[k])
    failures = report.count("exp: nil")
    if failures != len(failed_probes) or (done.returncode != 0) != bool(failed_probes):
        raise RuntimeError(f"cannot read promtool's report for {scenario.name!r} (exit {done.returncode}, "
                           f"{failures} failed tests, {len(failed_probes)} read back):\n{report[-3000:]}")
    return replay
