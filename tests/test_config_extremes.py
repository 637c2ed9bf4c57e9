"""No accepted config gives an alert that cannot fire: every numeric knob at both of its extremes.

The requirement: for every numeric knob (an Integer, Duration or Size kind in llmstack.config), the
rules rendered with the knob at its minimum and at its maximum still let each alert fire on its
firing scenario, checked with promtool.

- The knobs and their bounds come from `llmstack.config.knobs()`; nothing here lists them. Where an
  extreme would break a cross-key rule, the partner knob moves the least needed to stay valid, or,
  when no partner value can, the knob takes the valid value nearest its extreme
  (`extreme_overrides`; `Case.note` says what moved).
- The scenario is derived from the config, not from one threshold: the worst case each alert watches
  for (every request in the +Inf bucket, 100% 5xx at a rate well above the largest
  alertErrorCriticalMinFailures, KV cache / GPU framebuffer / container memory / TSDB at 100% of
  their total or limit, every sequence slot busy with a request waiting, a preemption every scrape,
  `up` 0, no `up` series, a non-zero XID, failing or slow generation probes), sampled at the
  config's scrape interval (the probes at their probe interval) and evaluated at its evaluation
  interval. It is healthy until ONSET and broken from then on. Each alert is probed (through
  tools/detection.py) at onset + its windows (the longest range it reads, plus an `offset`) + its
  `for` + a margin, all read from the config and the rendered rules.
- The converse, for the same configs: a healthy copy of the scenario, as close below each threshold
  as the config allows, in which no alert fires; so the check can fail, and `test_the_check_can_fail`
  shows that it does when the thresholds are out of reach.

Incidents that contradict each other (a target down, a failing and a slow probe, all with `up` 1
for the probe alert) run side by side as copies of the stack under their own `env` label, in one
promtool test group: every record and alert keeps `env`, so the copies do not mix, and one rule
evaluation serves them all. The healthy copy has the stack's own env, which the absent() alert
names: there the target's `up` series disappears after that alert's quiet probe, and the alert must
fire later, on the same grid (the other alerts stay quiet, a missing `up` breaks none of them).

One promtool run per distinct rendering (configs whose rule files, intervals and scenario are the
same share a run: the ports and the notification timings render the default rules), at most two at a
time, the longest first. The whole rule files are evaluated, not only what the alerts read, so every
extreme also shows its rule files load.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import pytest
import yaml

from llmstack import alerts, config, prometheus, resources, topology
from llmstack.config import (
    LATENCY_LARGEST_BUCKET_SECONDS,
    MIN_MEMORY_LIMIT_MB,
    TTFT_LARGEST_BUCKET_SECONDS,
    AlertThresholds,
    Duration,
    Integer,
    Size,
    StackConfig,
    duration_seconds,
    format_duration,
)
from llmstack.alerts import slo as slo_alerts
from llmstack.engines import mistralrs
from tools.detection import Probe, Promtool, promtool_path

NUMERIC_KINDS = (Integer, Duration, Size)

# --- the configs: each numeric knob at each extreme ---------------------------------------------

# The cross-key rules between numeric knobs, as (lower key, upper key, strict): lower < upper, or
# lower <= upper, compared in the kinds' units (Integer seconds and Durations compare in seconds).
# The warning/critical pairs are config's own table; the others are written out in its
# _check_across_keys. Rules over knobs this config does not have are left out. (mistralMemoryLimitMb's
# "0 or at least 2048" is met by both of its extremes, 0 and 4194304.)
#
# What moves, with the bounds config declares now (the knob itself moves only when no partner value
# keeps it valid; it then takes the valid value nearest its extreme):
# - each warning at its maximum (99%, or 1199s for the latency): the critical would have to exceed
#   its own maximum, so the warning takes 98 (1198) and the critical 99 (1199);
# - each critical at its minimum 1: the warning would have to be below its minimum 1, so the critical
#   takes 2 and the warning 1;
# - scrapeInterval at 1s moves scrapeTimeout from 10s to 1s;
# - alertRepeatInterval at 1m moves alertGroupInterval from 5m to 1m;
# - probeTimeout at 1m moves probeInterval from 30s to 1m; probeTimeout at 5s moves
#   alertProbeLatencyWarningSeconds from 10 to 4;
# - alertProbeLatencyWarningSeconds at 59 moves probeTimeout to 1m, which moves probeInterval to 1m.
_THRESHOLD_KEYS = {f.name: f.metadata["knob"].key for f in dataclasses.fields(AlertThresholds)}
KNOBS = {k.key: k for k in config.knobs()}
CROSS_KEY_RULES = [
    rule
    for rule in [(_THRESHOLD_KEYS[w], _THRESHOLD_KEYS[c], True) for w, c in config._ORDERED_PAIRS]
    + [
        ("scrapeTimeout", "scrapeInterval", False),
        ("alertGroupInterval", "alertRepeatInterval", False),
        ("probeTimeout", "probeInterval", False),
        ("alertProbeLatencyWarningSeconds", "probeTimeout", True),
    ]
    if rule[0] in KNOBS and rule[1] in KNOBS
]


def numeric_knobs() -> list[config.Knob]:
    # The scenario runs the dev stack on docker, where the kubernetes knobs are refused; none of them
    # reaches an alert (replicas, GPUs, volume size and startup budget shape the workload only).
    return [k for k in config.knobs() if isinstance(k.kind, NUMERIC_KINDS) and k.key not in config.kubernetes_only()]


def _number(kind: config.Kind, raw) -> float:
    if isinstance(kind, Integer):
        return int(raw)
    if isinstance(kind, Duration):
        return duration_seconds(raw)
    return Size.bytes(raw)


def _raw(kind: config.Kind, number: float) -> str:
    if isinstance(kind, Integer):
        return str(int(number))
    if isinstance(kind, Duration):
        return format_duration(number)
    return f"{int(number)}B"


def _bounds(key: str) -> tuple[float, float]:
    kind = KNOBS[key].kind
    return _number(kind, kind.minimum), _number(kind, kind.maximum)


@dataclass(frozen=True)
class Case:
    knob: str
    end: str  # "min" or "max"
    overrides: tuple[tuple[str, str], ...]
    note: str  # what moved to keep the config valid, if anything

    @property
    def id(self) -> str:
        return f"{self.knob}={self.end}"

    def config(self) -> StackConfig:
        return config.load_defaults("dev", **dict(self.overrides))


def extreme_overrides(key: str, end: str) -> tuple[dict[str, str], str]:
    """The overrides that put `key` at its `end` ("min" or "max"), and a note on what else moved."""
    target = _bounds(key)[0 if end == "min" else 1]
    values = {k: _number(KNOBS[k].kind, KNOBS[k].default) for rule in CROSS_KEY_RULES for k in rule[:2]}
    values[key] = target
    for _ in range(4 * len(CROSS_KEY_RULES) + 1):
        broken = next(((lo, up, 1 if strict else 0) for lo, up, strict in CROSS_KEY_RULES if values[lo] + strict > values[up]), None)
        if broken is None:
            break
        lower, upper, gap = broken
        if upper != key:  # raise the upper one the least needed, as far as its maximum
            values[upper] = min(values[lower] + gap, _bounds(upper)[1])
            values[lower] = min(values[lower], values[upper] - gap)  # it could not rise enough
        else:  # lower the lower one the least needed, as far as its minimum
            values[lower] = max(values[upper] - gap, _bounds(lower)[0])
            values[upper] = max(values[upper], values[lower] + gap)
    else:
        raise AssertionError(f"no valid config found with {key} at its {end}")
    moved = {k: v for k, v in values.items() if k != key and v != _number(KNOBS[k].kind, KNOBS[k].default)}
    notes = [f"{key} {_raw(KNOBS[key].kind, values[key])}, the valid value nearest its {end} {_raw(KNOBS[key].kind, target)}"] if values[key] != target else []
    notes += [f"{k} {KNOBS[k].default} -> {_raw(KNOBS[k].kind, v)}" for k, v in moved.items()]
    overrides = {key: _raw(KNOBS[key].kind, values[key]), **{k: _raw(KNOBS[k].kind, v) for k, v in moved.items()}}
    return overrides, "; ".join(notes)


def cases() -> list[Case]:
    out = []
    for k in numeric_knobs():
        for end in ("min", "max"):
            overrides, note = extreme_overrides(k.key, end)
            out.append(Case(k.key, end, tuple(sorted(overrides.items())), note))
    return out


CASES = cases()

# --- the scenarios, from the config -------------------------------------------------------------

MIB = 1048576
INF = math.inf
# mistral.rs's bucket bounds (mistralrs-server-core/src/metrics.rs, v0.9.2), as tests/promtool stores them.
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, INF)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0, INF)
API_PATH = "/v1/chat/completions"
GPU_FRAMEBUFFER_MIB = 81920  # an 80 GB card
HOST_MEMORY_MIB = 65536  # cAdvisor's machine_memory_bytes: a 64 GiB host
KV_CACHE_BLOCKS = 20000
HEALTHY_REQUESTS_PER_SCRAPE = 200
# The breach starts after a healthy stretch of one short window (1m): counters carry on and series
# appear and go stale across the change, as on a real server.
ONSET = duration_seconds(config.SHORT_WINDOW)

# The incidents, each a copy of the stack under its own env label, and the alerts whose incident is
# not the main breach. ABSENT happens to the healthy copy, late (see the module doc): the absent()
# alert names the stack's own env.
HEALTHY, BREACH, DOWN, SLOW_PROBE, ABSENT = "healthy", "breach", "down", "slow-probe", "absent"
OWN_INCIDENT = {"LLMTargetDown": DOWN, "LLMTargetAbsent": ABSENT, "LLMProbeLatencyHigh": SLOW_PROBE}

# Alerts no numeric knob moves, each shown firing elsewhere, left out of the replay (their windows of
# hours to days would make every run replay days): the burn-rate alerts (their objectives are of the
# Objective kind, whose extremes test_every_objective_lets_the_burn_rate_alerts_fire checks; their
# windows are fixed; tests/promtool/slo_*_test.yaml and the incident library show them), the fleet
# alerts (they need several replicas: tests/promtool/fleet_test.yaml), and the flapping alert (a fixed
# 5-minute window, at least 20 scrapes at the largest scrape interval: mistral_alerts_test.yaml).
NOT_KNOB_BOUND = frozenset({
    "LLMErrorBudgetBurnFast", "LLMErrorBudgetBurnSlow", "LLMFleetErrorBudgetBurnFast", "LLMFleetReplicasDown", "LLMTargetFlapping",
})


def incident_env(cfg: StackConfig, incident: str) -> str:
    return cfg.env if incident in (HEALTHY, ABSENT) else f"{cfg.env}-{incident}"


# A phase of one series: ("gauge", value), ("counter", increment per sample), or None (no series).
Phase = Optional[tuple[str, float]]


@dataclass(frozen=True)
class Series:
    name: str
    labels: tuple[tuple[str, str], ...]
    healthy: Phase
    breach: Phase
    every: int = 1  # a sample every `every` scrape intervals (the probes' own interval)
    onset: Optional[float] = None  # when `breach` starts, if not at ONSET

    def selector(self) -> str:
        return self.name + "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in self.labels) + "}"


def _series(name: str, labels: dict, healthy: Phase, breach: Phase, every: int = 1) -> Series:
    return Series(name, tuple(sorted(labels.items())), healthy, breach, every)


def _near_miss_bucket(buckets: tuple, threshold: float) -> float:
    """The largest finite bucket at or below the threshold: a quantile over it stays below the threshold."""
    return max(b for b in buckets if b <= threshold)


def _histogram(name: str, labels: dict, buckets: tuple, healthy_bucket: float, healthy_per_scrape: int, breach_per_scrape: int) -> list[Series]:
    """Healthy: every observation in `healthy_bucket`. Breach: every observation in +Inf, so the
    quantile reads the largest finite bucket, above any threshold config accepts."""
    out = []
    for le in buckets:
        healthy = ("counter", healthy_per_scrape if le >= healthy_bucket else 0)
        breach = ("counter", breach_per_scrape if le == INF else 0)
        out.append(_series(name, {**labels, "le": "+Inf" if le == INF else repr(float(le))}, healthy, breach))
    return out


def _part(total: int, percent: int) -> int:
    """Half of `percent` of `total`: a healthy level well below a percent threshold."""
    return total * percent // 200


def _engine_labels(cfg: StackConfig, env: str) -> dict:
    return {"engine": mistralrs.ENGINE, "env": env, "instance": topology.MISTRAL_INSTANCE, "job": mistralrs.JOB, "model": cfg.mistral.model_id}


def _probes(cfg: StackConfig):
    """The black-box probe settings, when this config has them and they are on."""
    probes = getattr(cfg, "probes", None)
    return probes if probes is not None and probes.enabled else None


def _probe_series(cfg: StackConfig, env: str, failing: bool) -> list[Series]:
    """The generation probe: healthy, it succeeds in half the latency threshold; in breach it fails
    (`failing`, at its timeout), or succeeds a millisecond before its timeout, slower than any
    threshold config accepts (they are below the timeout)."""
    from llmstack import probes as blackbox  # with the probes only

    p = _probes(cfg)
    every = max(1, round(duration_seconds(p.interval) / duration_seconds(cfg.prometheus.scrape_interval)))
    labels = {**_engine_labels(cfg, env), "job": blackbox.job("generation"), "probe": "generation"}
    timeout = duration_seconds(p.timeout)
    return [
        _series("probe_success", labels, ("gauge", 1), ("gauge", 0 if failing else 1), every),
        _series("probe_duration_seconds", labels, ("gauge", p.latency_warning_seconds / 2),
                ("gauge", timeout if failing else round(timeout - 0.001, 3)), every),
    ]


def scenario(cfg: StackConfig, incident: str, container_limit_mb: Optional[int] = None) -> list[Series]:
    """The raw series of one incident's copy of the stack, healthy and in breach, as the stack's
    scrape jobs store them. HEALTHY and BREACH hold every series the alerts read (BREACH breaks all
    but the `up` of the scrape target); DOWN and ABSENT only the target's `up`, SLOW_PROBE only the probes.

    The mistral container's memory limit is mistralMemoryLimitMb. With 0 (no limit) the stack sets
    none, cAdvisor reports 0 and the limit record falls back to the host's memory; the scenario then
    gives the container the smallest limit config accepts, so every case exercises a limit too,
    unless `container_limit_mb` says what cAdvisor reports (0: the container fills the host's memory)."""
    t, s, env = cfg.thresholds, duration_seconds(cfg.prometheus.scrape_interval), incident_env(cfg, incident)
    engine = _engine_labels(cfg, env)
    if incident == DOWN:
        return [_series("up", engine, ("gauge", 1), ("gauge", 0))]
    if incident == ABSENT:
        return [_series("up", engine, ("gauge", 1), None)]
    if incident == SLOW_PROBE:
        return _probe_series(cfg, env, failing=False) if _probes(cfg) else []

    model = cfg.mistral.model_id
    http = {**engine, "exported_model": model, "method": "POST", "path": API_PATH}
    # Failures per scrape: twice the largest alertErrorCriticalMinFailures config accepts, over the 5
    # minutes the critical alert counts them.
    failing = math.ceil(2 * KNOBS["alertErrorCriticalMinFailures"].kind.maximum * s / 300)
    ok = HEALTHY_REQUESTS_PER_SCRAPE - t.error_ratio_warning_percent  # healthy: half the warning ratio fails
    out = [
        _series("mistral_http_requests_total", {**http, "status": "200"}, ("counter", ok), ("counter", 0)),
        _series("mistral_http_requests_total", {**http, "status": "500"}, ("counter", HEALTHY_REQUESTS_PER_SCRAPE - ok), ("counter", failing)),
        # The histograms count the breach's requests under status 200: no rule joins them to the status counter.
        *_histogram("mistral_http_request_duration_seconds_bucket", {**http, "status": "200"}, LATENCY_BUCKETS,
                    _near_miss_bucket(LATENCY_BUCKETS, t.latency_p95_warning_seconds), HEALTHY_REQUESTS_PER_SCRAPE, failing),
        *_histogram("mistralrs_time_to_first_token_seconds_bucket", {**http, "status": "200"}, TTFT_BUCKETS,
                    _near_miss_bucket(TTFT_BUCKETS, t.ttft_p95_warning_seconds), HEALTHY_REQUESTS_PER_SCRAPE, failing),
        # Every slot busy in both; a request waits only in the breach.
        _series("mistralrs_sequences_running", engine, ("gauge", cfg.mistral.max_seqs), ("gauge", cfg.mistral.max_seqs)),
        _series("mistralrs_sequences_waiting", engine, ("gauge", 0), ("gauge", 1)),
        _series("mistralrs_kv_cache_blocks_total", engine, ("gauge", KV_CACHE_BLOCKS), ("gauge", KV_CACHE_BLOCKS)),
        _series("mistralrs_kv_cache_blocks_used", engine, ("gauge", _part(KV_CACHE_BLOCKS, t.kv_cache_warning_percent)), ("gauge", KV_CACHE_BLOCKS)),
        # The counter appears with the first preemption; then one every scrape.
        _series("mistralrs_paged_preemptions_total", engine, None, ("counter", 1)),
        # The target answers its scrapes throughout (the probe alert needs that); DOWN breaks it.
        _series("up", engine, ("gauge", 1), ("gauge", 1)),
    ]
    if _probes(cfg):
        out += _probe_series(cfg, env, failing=True)

    gpu = {
        "DCGM_FI_DRIVER_VERSION": "570.133.20", "Hostname": "7c6d2e1f0a9b", "UUID": "GPU-fd89a7a7-1b34-677a-010b-893b94294bce",
        "device": "nvidia0", "env": env, "gpu": "0", "instance": topology.address("dcgm"), "job": resources.DCGM_JOB,
        "modelName": "NVIDIA H100 80GB HBM3", "pci_bus_id": "00000000:18:00.0",
    }
    used = _part(GPU_FRAMEBUFFER_MIB, t.gpu_memory_warning_percent)
    out += [
        _series("DCGM_FI_DEV_FB_USED", gpu, ("gauge", used), ("gauge", GPU_FRAMEBUFFER_MIB)),
        _series("DCGM_FI_DEV_FB_FREE", gpu, ("gauge", GPU_FRAMEBUFFER_MIB - used), ("gauge", 0)),
        _series("DCGM_FI_DEV_XID_ERRORS", {**gpu, "err_code": "0", "err_msg": "No Error"}, ("gauge", 0), None),
        _series("DCGM_FI_DEV_XID_ERRORS", {**gpu, "err_code": "79", "err_msg": "GPU has fallen off the bus"}, None, ("gauge", 79)),
    ]

    limit_mb = (cfg.mistral.memory_limit_mb or MIN_MEMORY_LIMIT_MB) if container_limit_mb is None else container_limit_mb
    limit, reference = limit_mb * MIB, (limit_mb or HOST_MEMORY_MIB) * MIB
    container = {
        "container": resources.MODEL_CONTAINER, "env": env,
        "id": "/system.slice/docker-051676767ef22b0b6a58d050c740a8ebeaa4f58409249205150bc2004c437d73.scope",
        "image": cfg.mistral.image, "instance": topology.address("cadvisor"), "job": resources.CADVISOR_JOB,
        "name": cfg.container_name(resources.MODEL_CONTAINER),
    }
    out += [
        _series("container_memory_working_set_bytes", container,
                ("gauge", _part(reference, t.container_memory_warning_percent)), ("gauge", reference)),
        _series("container_spec_memory_limit_bytes", container, ("gauge", limit), ("gauge", limit)),
        # The host's memory: a machine-level series, without the container labels.
        _series(resources.MACHINE_MEMORY, {
            "boot_id": "0f4bd3a6-9c8e-4d2b-a1f7-3e5c6b8d9a01", "env": env, "instance": topology.address("cadvisor"),
            "job": resources.CADVISOR_JOB, "machine_id": "3b9f1c2d4e5a6b7c8d9e0f1a2b3c4d5e",
            "system_uuid": "4c4c4544-0042-3510-8052-b4c04f4e3732",
        }, ("gauge", HOST_MEMORY_MIB * MIB), ("gauge", HOST_MEMORY_MIB * MIB)),
    ]

    # The TSDB against the configured retention size, which Prometheus reports as its limit.
    retention = Size.bytes(cfg.prometheus.retention_size)
    prom = {"env": env, "instance": f"localhost:{topology.TARGETS['prometheus'][1]}", "job": resources.PROMETHEUS_JOB}
    healthy_disk = _part(retention, t.tsdb_disk_warning_percent)
    for name, share in (("prometheus_tsdb_wal_storage_size_bytes", 8), ("prometheus_tsdb_head_chunks_storage_size_bytes", 16)):
        out.append(_series(name, prom, ("gauge", healthy_disk // share), ("gauge", retention // share)))
    out += [
        _series("prometheus_tsdb_storage_blocks_bytes", prom, ("gauge", healthy_disk - healthy_disk // 8 - healthy_disk // 16),
                ("gauge", retention - retention // 8 - retention // 16)),
        _series("prometheus_tsdb_retention_limit_bytes", prom, ("gauge", retention), ("gauge", retention)),
    ]
    return out


def _number_text(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def _values(segments: list[tuple[Phase, int]], every: int = 1) -> str:
    """promtool's expanding notation for consecutive phases of `count` samples each; counters carry
    on. With `every` > 1 only every `every`-th sample is there (spelled out one by one)."""
    if every > 1:
        out, i = [], 0
        for phase, count in segments:
            for _ in range(count):
                out.append(_number_text(phase[1]) if phase is not None and i % every == 0 else "_")
                i += 1
        assert all(phase is None or phase[0] == "gauge" for phase, _ in segments), "sparse series are gauges"
        return " ".join(out)
    parts, last, present = [], 0, False
    for phase, count in segments:
        if count <= 0:
            continue
        if phase is None:
            if present:
                parts.append("stale")
                count -= 1
            if count:
                parts.append(f"_x{count}")  # `_xN` is N missing samples
            present = False
            continue
        kind, number = phase
        if kind == "gauge":
            start, step = number, 0
        else:  # a counter starts at 0, or at its first increment when it appears later
            start, step = (last + number if present else number if parts else 0), number
        # `a+bxN` is N+1 samples: a, a+b, ..., a+N*b
        parts.append(f"{_number_text(start)}+{_number_text(step)}x{count - 1}" if count > 1 else _number_text(start))
        last, present = start + step * (count - 1), True
    return " ".join(parts)


# --- when each alert must be firing, from the rendered rules --------------------------------------

# A selector with its range and offset, if any: `name{...}[5m] offset 1m`.
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?\s*(?:\[([0-9a-z]+)\])?(?:\s+offset\s+([0-9a-z]+))?")


def _records(cfg: StackConfig) -> dict[str, list[str]]:
    """Record name -> its expressions (an engine-neutral name is recorded once per engine mapping)."""
    out: dict[str, list[str]] = {}
    for group in prometheus.recording_groups(cfg):
        for rule in group["rules"]:
            out.setdefault(rule["record"], []).append(rule["expr"])
    return out


def _changes(name: str, records: dict[str, list[str]], changing: set[str], seen: frozenset = frozenset()) -> bool:
    """Whether the series `name` (raw or recorded) moves when the incident starts."""
    if name in changing:
        return True
    return name in records and name not in seen and any(
        _changes(inner, records, changing, seen | {name}) for expr in records[name] for inner, _, _ in _SELECTOR.findall(expr)
    )


def _reach(expr: str, records: dict[str, list[str]], changing: set[str], seen: frozenset = frozenset()) -> tuple[float, float]:
    """(longest range, longest offset) over the series that move in the incident, that the
    expression reads, through the records it reads. A look-back over series the incident leaves
    alone (the model-load latches' 1d) is no window the breach has to fill."""
    ranges, offsets = [0.0], [0.0]
    for name, window, offset in _SELECTOR.findall(expr):
        if not _changes(name, records, changing):
            continue
        ranges.append(duration_seconds(window) if window else 0.0)
        offsets.append(duration_seconds(offset) if offset else 0.0)
        for inner in records.get(name, []) if name not in seen else []:
            r, o = _reach(inner, records, changing, seen | {name})
            ranges.append(r)
            offsets.append(o)
    return max(ranges), max(offsets)


def _sample_interval(cfg: StackConfig) -> float:
    """The longest interval between two samples of a series the alerts read."""
    p = _probes(cfg)
    return max(duration_seconds(cfg.prometheus.scrape_interval), duration_seconds(p.interval) if p else 0)


def firing_time(cfg: StackConfig, alert: alerts.AlertRule, records: dict[str, list[str]], changing: set[str]) -> float:
    """When the alert must fire: the onset, then its windows (the longest range it reads and the
    `offset` of the window before it, twice the range at least; an alert over gauges has none), its
    `for`, and a margin of one short window plus two sample and two evaluation intervals; on the
    evaluation grid. `changing`: the raw series the alert's incident moves."""
    window, offset = _reach(alert.expr, records, changing)
    step = duration_seconds(cfg.prometheus.evaluation_interval)
    margin = duration_seconds(config.SHORT_WINDOW) + 2 * (_sample_interval(cfg) + step)
    at = ONSET + window + max(window, offset) + duration_seconds(alert.for_) + margin
    return math.ceil(at / step) * step


# --- one promtool run per config ----------------------------------------------------------------

INCIDENTS_GROUP = "incidents"


@dataclass
class Plan:
    """The promtool test groups and probes of one config."""

    rule_texts: dict[str, str]
    evaluation_interval: str
    group_order: list[str]
    groups: list[dict]
    firing_probes: list[Probe]  # must all fire
    healthy_probes: list[Probe]  # none may fire
    watchdog: list[Probe]

    def steps(self) -> float:
        """Evaluation steps promtool takes, which is what a run costs."""
        return max(p.at for p in self.firing_probes + self.watchdog) / duration_seconds(self.evaluation_interval)

    def key(self) -> str:
        doc = [sorted(self.rule_texts.items()), self.evaluation_interval, self.group_order, self.groups,
               [dataclasses.astuple(p) for p in self.firing_probes + self.healthy_probes]]
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def _group(name: str, series: list[Series], scrape: float, end: float) -> dict:
    """A test group: each series healthy until its onset and in breach from then on (a healthy copy
    has the same phase twice), sampled every `scrape` seconds until past `end`."""
    total = int(end // scrape) + 2

    def values(x: Series) -> str:
        before = math.ceil((ONSET if x.onset is None else x.onset) / scrape)
        return _values([(x.healthy, before), (x.breach, total - before)], x.every)

    return {"name": name, "interval": format_duration(scrape), "input_series": [{"series": x.selector(), "values": values(x)} for x in series]}


def plan(cfg: StackConfig, rule_texts: Optional[dict[str, str]] = None, container_limit_mb: Optional[int] = None,
         only: Optional[set[str]] = None) -> Plan:
    """The test groups and probes for `cfg` (its rendered rules unless `rule_texts`; every alert unless `only`)."""
    rule_texts = rule_texts or prometheus.render_rule_files(cfg)
    records = _records(cfg)
    scrape = duration_seconds(cfg.prometheus.scrape_interval)
    rules = [a for a in alerts.alert_rules(cfg)
             if a.name != alerts.WATCHDOG and a.name not in NOT_KNOB_BOUND and (only is None or a.name in only)]
    incident = {a.name: OWN_INCIDENT.get(a.name, BREACH) for a in rules}
    changing = {i: {x.name for x in scenario(cfg, i, container_limit_mb) if x.healthy != x.breach} for i in set(incident.values())}
    at = {a.name: firing_time(cfg, a, records, changing[incident[a.name]]) for a in rules}
    step = duration_seconds(cfg.prometheus.evaluation_interval)
    healthy = [dataclasses.replace(x, breach=x.healthy) for x in scenario(cfg, HEALTHY, container_limit_mb)]
    fire_at = {n: t for n, t in at.items() if incident[n] != ABSENT}
    absent = [n for n, i in incident.items() if i == ABSENT]
    if absent:
        # After the absent() alert's quiet probe, the healthy copy's `up` series goes stale and stays
        # missing: its onset moves from ONSET to then, and so does the alert's firing time.
        removed_at = (math.floor(max(at[n] for n in absent) / scrape) + 1) * scrape
        gone = {x.selector(): dataclasses.replace(x, onset=removed_at) for x in scenario(cfg, ABSENT)}
        healthy = [gone.pop(x.selector(), x) for x in healthy] + list(gone.values())
        fire_at.update({n: math.ceil((removed_at + at[n] - ONSET) / step) * step for n in absent})
    end = max(fire_at.values())
    broken = [x for i in (BREACH, DOWN, SLOW_PROBE) for x in scenario(cfg, i, container_limit_mb)]
    groups = [_group(INCIDENTS_GROUP, healthy + broken, scrape, end)]

    def probe(name: str, env: str, when: float) -> Probe:
        return Probe(INCIDENTS_GROUP, name, when, (("env", env),))

    firing = [probe(n, incident_env(cfg, incident[n]), t) for n, t in fire_at.items()]
    # The healthy copy, at each alert's own time and at the end: nothing fires (but the absent()
    # alert at the end, after the copy lost its target).
    quiet = [probe(n, incident_env(cfg, HEALTHY), t) for n, t in at.items()]
    quiet += [probe(n, incident_env(cfg, HEALTHY), end) for n in at if n not in absent]
    watchdog = [Probe(INCIDENTS_GROUP, alerts.WATCHDOG, end)]
    order = [g["name"] for g in prometheus.recording_groups(cfg) + prometheus.alerting_groups(cfg)]  # records first
    return Plan(rule_texts, cfg.prometheus.evaluation_interval, order, groups, firing, quiet, watchdog)


def run(p: Plan, binary: str) -> set[Probe]:
    """The probes of the plan at which their alert fires, in one promtool run."""
    with tempfile.TemporaryDirectory(prefix="llmstack-extremes-") as workdir:
        for name, text in p.rule_texts.items():
            with open(os.path.join(workdir, name), "w") as fh:
                fh.write(text)
        promtool = Promtool(workdir, sorted(p.rule_texts), p.evaluation_interval, p.group_order, binary, timeout=300)
        return promtool.firing(p.groups, [*p.firing_probes, *p.healthy_probes, *p.watchdog], name="extremes")


@pytest.fixture(scope="module")
def binary() -> str:
    # promtool's rule evaluation churns Go's garbage collector; collecting less often saves about a
    # quarter of its CPU time here (its heap stays small). Inherited by every run of this module.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GOGC", "400")
        yield promtool_path()


@pytest.fixture(scope="module")
def results(binary) -> dict[str, tuple[Plan, set[Probe]]]:
    """Every case's plan and the probes that fired: one promtool run per distinct plan, two at a time."""
    plans = {case.id: plan(case.config()) for case in CASES}
    # The longest runs first (evaluationInterval=1s, alertQueueSaturationFor=1h), so none is left last.
    distinct = dict(sorted({p.key(): p for p in plans.values()}.items(), key=lambda kv: -kv[1].steps()))
    with ThreadPoolExecutor(max_workers=2) as pool:
        fired = dict(zip(distinct, pool.map(lambda p: run(p, binary), distinct.values())))
    return {case_id: (p, fired[p.key()]) for case_id, p in plans.items()}


def _show(probes) -> str:
    return ", ".join(f"{p.alert} ({dict(p.labels).get('env', '')} at {format_duration(p.at)})" for p in sorted(probes, key=lambda p: (p.alert, p.at)))


# --- the tests ----------------------------------------------------------------------------------


def test_every_numeric_knob_has_both_extremes():
    """Every Integer, Duration and Size knob, at its minimum and its maximum, loads as a valid config
    with the knob at that extreme, or one unit from it when the cross-key rules leave no other way;
    and every partner that moved, moved the least: one unit back towards its default is invalid."""
    assert len(numeric_knobs()) >= 20  # the enumeration found the knobs at all
    assert {(c.knob, c.end) for c in CASES} == {(k.key, e) for k in numeric_knobs() for e in ("min", "max")}
    for case in CASES:
        case.config()  # a ConfigError names a cross-key rule CROSS_KEY_RULES does not know yet
        overrides = dict(case.overrides)
        kind = KNOBS[case.knob].kind
        bound = _number(kind, kind.minimum if case.end == "min" else kind.maximum)
        got = _number(kind, overrides[case.knob])
        assert got == bound or (abs(got - bound) <= 1 and case.note.startswith(f"{case.knob} ")), case
        for key in set(overrides) - {case.knob}:
            assert key in case.note, case
            k = KNOBS[key]
            value, default = _number(k.kind, overrides[key]), _number(k.kind, k.default)
            back = _raw(k.kind, value + (1 if default > value else -1))
            with pytest.raises(config.ConfigError):
                config.load_defaults("dev", **{**overrides, key: back})
    # The table has work to do at the bounds config declares now (see CROSS_KEY_RULES).
    assert any(case.note for case in CASES)


def test_every_objective_lets_the_burn_rate_alerts_fire():
    """At either extreme of an SLO objective, the highest burn rate an alert asks for is reachable:
    every request bad burns at 1 / (1 - objective)."""
    highest = max(rate for rate, _, _ in (*slo_alerts.PAGE, *slo_alerts.TICKET))
    for k in config.knobs():
        if isinstance(k.kind, config.Objective):
            assert 1 / (1 - k.kind.minimum / 100) > highest, k.key
            assert 1 / (1 - k.kind.maximum / 100) > highest, k.key


def test_the_scenario_reads_the_largest_finite_buckets():
    """The breach puts every request in +Inf, so the p95s read the largest finite bucket, which
    config bounds every latency threshold below."""
    assert max(b for b in LATENCY_BUCKETS if b != INF) == LATENCY_LARGEST_BUCKET_SECONDS
    assert max(b for b in TTFT_BUCKETS if b != INF) == TTFT_LARGEST_BUCKET_SECONDS


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_every_alert_fires_at_the_extreme(case, results):
    p, fired = results[case.id]
    assert p.firing_probes, "no alerts to probe"
    missing = [probe for probe in p.firing_probes if probe not in fired]
    assert not missing, (
        f"{case.id} ({dict(case.overrides)}{'; ' + case.note if case.note else ''}): not firing on the worst case: {_show(missing)}"
    )
    assert set(p.watchdog) <= fired, "the Watchdog did not fire: the rules were not evaluated"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_no_alert_fires_when_healthy(case, results):
    p, fired = results[case.id]
    wrong = [probe for probe in p.healthy_probes if probe in fired]
    assert not wrong, f"{case.id}: firing on the healthy scenario: {_show(wrong)}"


def test_the_check_can_fail(binary, results):
    """Every alert's threshold out of reach (`(expr) > 1e9`) in a copy of the default rules: then no
    probe reports an alert firing on the same worst case, only the Watchdog; while on the rules as
    rendered every alert fires."""
    cfg = config.load_defaults("dev")
    texts = prometheus.render_rule_files(cfg)
    doc = yaml.safe_load(texts[prometheus.ALERTS_FILE])
    edited = 0
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") not in (None, alerts.WATCHDOG) and rule["alert"] not in NOT_KNOB_BOUND:
                rule["expr"] = f"({rule['expr']}) > 1e9"
                edited += 1
    texts = {**texts, prometheus.ALERTS_FILE: yaml.safe_dump(doc, sort_keys=True, width=100_000)}
    p = plan(cfg, texts)
    assert edited == len(p.firing_probes) > 0
    fired = run(p, binary)
    assert {probe.alert for probe in fired} == {alerts.WATCHDOG}, _show(fired)
    # The rules as rendered, the same plan otherwise (a case with the default rules ran it already).
    unedited = plan(cfg)
    fired = next((f for q, f in results.values() if q.key() == unedited.key()), None)
    fired = run(unedited, binary) if fired is None else fired
    assert set(unedited.firing_probes) <= fired


CONTAINER_MEMORY_ALERTS = {a.name for a in alerts.alert_rules(config.load_defaults()) if a.name.startswith("LLMContainerMemoryNearLimit")}


def test_container_memory_alerts_as_deployed_without_a_limit(binary):
    """mistralMemoryLimitMb=0 (its minimum, and the default): the stack sets no limit, cAdvisor reports
    0, and the limit record is the host's memory, which the container fills."""
    cfg = {c.id: c for c in CASES}["mistralMemoryLimitMb=min"].config()
    assert cfg.mistral.memory_limit_mb == 0
    p = plan(cfg, container_limit_mb=cfg.mistral.memory_limit_mb, only=CONTAINER_MEMORY_ALERTS)
    assert {probe.alert for probe in p.firing_probes} == CONTAINER_MEMORY_ALERTS
    fired = run(p, binary)
    missing = [probe for probe in p.firing_probes if probe not in fired]
    assert not missing, f"not firing with the mistral container, without a limit, at 100% of the host's memory: {_show(missing)}"
