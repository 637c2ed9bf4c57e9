#!/usr/bin/env python3
"""What a full refresh of each dashboard costs, recording rules vs raw: by default over 7 days of 16
instances; the fleet dashboard's goal is stated for 30 days of 64 (--days 30 --instances 64).

1. Backfill. --days of series shaped like mistral.rs v0.9.2 for --instances instances are streamed
   into OpenMetrics files and turned into TSDB blocks with `promtool tsdb create-blocks-from
   openmetrics` (Debian's promtool 2.42), in blocks as large as the stack's Prometheus compacts to
   (its largest compaction range under a tenth of the retention; the retention is the stack's, or
   the range plus two days where the range would not fit in it). One file per block-aligned window,
   backfilled while the next is written and then deleted: promtool parses its whole input once per
   block, and 30 days of 64 instances would be 34 GB in one file. One sample per series every
   --sample-interval (60 s by default, not the stack's 15 s, to keep the data and the backfill
   within minutes on this 2-core machine; see docs/benchmarks.md). The shapes come from FakeMistral: for every scenario it is stepped a few
   intervals and the per-interval increments of its counters and histograms (and its gauge values)
   are replayed along a per-instance schedule (nights idle, each incident scenario once a day for
   20 minutes at staggered times, healthy otherwise), so every label combination exists. Every
   series has the label set the stack's Prometheus stores it under, read back from a real Prometheus
   that scraped the fake's series with the `mistral` job as llmstack/prometheus.py renders it
   (bench/_common.StoredSeries); only `instance` differs per instance (mistral-inference-01..NN).
2. The recording rules (llmstack/prometheus.recording_groups) are backfilled over the same range
   with `promtool tsdb create-blocks-from rules`, querying a Prometheus started on 127.0.0.1 on the
   blocks so far, at the sample interval. Only the groups with something to record from the
   mistral.rs series, and in them only the records the dashboards read (and those those are computed
   from); in passes, so a group that reads another's records (the fleet records) is computed after
   it, from its blocks. Then Prometheus is restarted with everything and left to finish merging the
   overlapping blocks (vertical compaction) before anything is timed.
3. Each dashboard of llmstack/dashboards is refreshed the way Grafana would: every target of every
   panel outside a collapsed row (Grafana queries those only once the row is opened), range targets
   through /api/v1/query_range over the range with Grafana's step, instant targets through
   /api/v1/query at the end. Grafana's step for a range in a panel of MAX_DATA_POINTS = 1000 px: the
   range / 1000 rounded by its roundInterval table (7 days: 604.8 s -> 10m; 30 days: 2592 s -> 30m),
   at least the datasource's 15 s timeInterval and the range / 11000-point safe limit; start and end
   are aligned down to the step; `$__interval` = the step, `$__rate_interval` = max(step + 15s,
   4 × 15s); template variables take the dashboard's current value (All = the variable's allValue
   `.*`, one value as itself, several as `(a|b)`, regex metacharacters escaped as Grafana does).
   A repeated row is also timed opened, for one copy (the first instance): "<dashboard>: <row> opened".
4. The raw equivalent of each query replaces every recording-rule name with its rule's expression,
   down to raw series (a fleet record's expression reads per-instance records, which are replaced in
   turn; with several engines recording the same shared name, their expressions joined with `or`: a
   dashboard over raw metrics would have to ask every engine's names), the panel's label filters
   pushed into every selector, in the same run. Records that read their own last value (the
   model-load latches) have no raw equivalent; their queries, and those over no record at all
   (ALERTS), are sent unchanged in both variants. Only mistral.rs series are backfilled, so the
   resource panels (cAdvisor, DCGM) find no data either way.

Queries run one at a time (the sum is the refresh's total query work, not its wall time behind
Grafana's parallel requests). One warm-up round is discarded, then --rounds rounds alternate which
variant goes first; per dashboard the report gives the median refresh time of each variant over
HTTP (until the response is read) and in Prometheus's own execution time, their ratios, and the
samples Prometheus loaded (`stats=all`, totalQueryableSamples), which does not depend on timing
noise, and the median over the rounds of each round's raw / rules ratio (the goals' figure for the
fleet dashboard). Each raw query must return as many series as its recorded twin; the report lists
any that do not.

    .venv/bin/python bench/query_cost.py [--quick] [--json out.json] [--docs [SECTION]]
                                         [--sample-interval S] [--instances N] [--days D] [--rounds R]
                                         [--workdir DIR [--keep | --reuse-data]]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Optional
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import yaml  # noqa: E402

from bench._common import (  # noqa: E402
    PROMTOOL, StoredSeries, add_docs_argument, every_series, exit_on_sigterm, fingerprint, own_metric, publish, run, scalar, selector,
    series_key, wait_until,
)
from llmstack import dashboards, prometheus as promcfg  # noqa: E402
from llmstack.config import duration_seconds, format_duration, load_defaults  # noqa: E402
from llmstack.engines import mistralrs  # noqa: E402
from llmstack.promql import selected_metrics  # noqa: E402
from tests.integration.fakes.mistral import SCENARIOS, UPSTREAM_V092, FakeMistral  # noqa: E402
from tests.integration.promserver import PrometheusServer  # noqa: E402

JOB = mistralrs.JOB
CUMULATIVE = ("counter", "histogram")  # exposition types whose samples only grow (until a restart)
MAX_DATA_POINTS = 1000  # a typical 1000 px wide panel
SAFE_RESOLUTION = 11000  # Grafana's cap on points per series
VARIANTS_PER_SCENARIO = 8  # distinct per-interval increments replayed in turn
INCIDENT_MINUTES = 20
INCIDENTS = ("latency_regression", "error_burst", "queue_saturation", "kv_cache_exhaustion")
INFERENCE = dashboards.inference.build()["title"]
FLEET = dashboards.fleet.build()["title"]

# Grafana's roundInterval (pkg/tsdb/intervalv2, the same table as the frontend's rangeutil):
# (upper bound in ms, the interval it rounds to in s).
_ROUND = [
    (15, 0.01), (35, 0.02), (75, 0.05), (150, 0.1), (350, 0.2), (750, 0.5), (1500, 1), (3500, 2), (7500, 5),
    (12500, 10), (17500, 15), (25000, 20), (45000, 30), (90000, 60), (210000, 120), (450000, 300), (900000, 600),
    (1350000, 900), (2700000, 1800), (5400000, 3600), (9000000, 7200), (16200000, 10800), (24300000, 21600),
    (64800000, 43200), (604800000, 86400), (1814400000, 604800), (3628800000, 2592000),
]


def round_interval(secs: float) -> float:
    ms = secs * 1000
    return next((to for bound, to in _ROUND if ms <= bound), 31536000)


def grafana_step(range_s: float, ds_interval_s: float) -> int:
    calculated = round_interval(range_s / MAX_DATA_POINTS)
    safe = round_interval(range_s / SAFE_RESOLUTION)
    return int(max(calculated, ds_interval_s, safe))


# --------------------------------------------------------------------------------------------------
# 1. the OpenMetrics backfill file


class Shapes:
    """Per scenario: stored series -> per-interval increment (cumulative types) or value (gauges)."""

    def __init__(self, cfg, interval: int, workdir: str):
        def fake() -> FakeMistral:
            return FakeMistral(model=cfg.mistral.model_id, capacity=cfg.mistral.max_seqs, upstream=UPSTREAM_V092)

        self.stored = StoredSeries(promcfg.render_prometheus_yml(cfg), {JOB: every_series(fake())}, workdir)
        # Every instance's series are these with its own `instance`.
        self.instance = self.stored.up(JOB)["instance"]
        self.labels: dict[tuple, dict] = {}
        self.cumulative: set[tuple] = set()
        f = fake()
        f.set_scenario("healthy")
        f.advance(600)
        self.initial = self._stored(f.exposition())
        self.steps: dict[str, list[dict[tuple, float]]] = {}
        for scenario in SCENARIOS:
            f = fake()
            f.set_scenario("healthy")
            f.advance(600)
            f.set_scenario(scenario)
            f.advance(interval)
            before = self._stored(f.exposition())
            variants = []
            for _ in range(VARIANTS_PER_SCENARIO):
                f.advance(interval)
                after = self._stored(f.exposition())
                variants.append({k: (v - before.get(k, 0) if k in self.cumulative else v) for k, v in after.items()})
                before = after
            self.steps[scenario] = variants

    def _stored(self, exposition: str) -> dict[tuple, float]:
        out = {}
        for s in self.stored.store(JOB, exposition):
            key = series_key(s.labels)
            self.labels[key] = s.labels
            if s.kind in CUMULATIVE:
                self.cumulative.add(key)
            out[key] = s.value
        return out


def scenario_at(instance: int, t: int) -> str:
    minute = (t // 60) % 1440
    for j, incident in enumerate(INCIDENTS):
        start = (420 + 200 * j + 37 * instance) % 1440
        if 0 <= (minute - start) % 1440 < INCIDENT_MINUTES:
            return incident
    return "idle" if minute < 300 else "healthy"  # quiet until 05:00 UTC


def write_openmetrics(path_of, shapes: Shapes, instances: list[str], start: int, end: int, interval: int, chunk_s: int, done) -> dict:
    """Stream the samples, time-major (each series in time order, which the backfill needs), into one
    file per `chunk_s`-aligned window: `path_of(n)` names the n-th, `done(path)` is called once it is
    complete (and may backfill it while the next one is written)."""
    prefix = {key: [selector({**labels, "instance": name}) for name in instances] for key, labels in shapes.labels.items()}
    state = [dict(shapes.initial) for _ in instances]
    lines = size = 0
    fh, chunk, files = None, None, 0
    for step_no, t in enumerate(range(start, end + 1, interval)):
        if t // chunk_s != chunk:
            if fh is not None:
                fh.write("# EOF\n")
                fh.close()
                size += os.path.getsize(fh.name)
                done(fh.name)
            chunk = t // chunk_s
            fh = open(path_of(files), "w", buffering=1 << 22)
            files += 1
        for i, st in enumerate(state):
            scenario = scenario_at(i, t)
            for key, v in shapes.steps[scenario][step_no % VARIANTS_PER_SCENARIO].items():
                st[key] = st.get(key, 0) + v if key in shapes.cumulative else v
            out = [f"{prefix[key][i]} {_num(v)} {t}\n" for key, v in st.items()]
            fh.writelines(out)
            lines += len(out)
    fh.write("# EOF\n")
    fh.close()
    size += os.path.getsize(fh.name)
    done(fh.name)
    return {"samples": lines, "series": sum(len(s) for s in state), "bytes": size, "files": files}


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


# --------------------------------------------------------------------------------------------------
# 3./4. dashboard queries, as Grafana sends them, and their raw equivalents


def grafana_escape(value: str) -> str:
    """A variable's value as Grafana's Prometheus datasource puts it into a `=~` matcher: regex
    metacharacters escaped with a backslash that is itself escaped for the PromQL string (`-` is not
    one, and a lone `\\-` is not a valid PromQL escape)."""
    return re.sub(r"([\\^$*+?.()|{}\[\]])", r"\\\\\1", value)


def variable_values(dashboard: dict) -> dict[str, str]:
    out = {}
    for var in dashboard.get("templating", {}).get("list", []):
        if var.get("type") != "query":
            continue
        current = var.get("current", {}).get("value", [])
        current = current if isinstance(current, list) else [current]
        if not current or "$__all" in current:
            out[var["name"]] = var.get("allValue") or ".*"
        elif len(current) == 1:
            out[var["name"]] = grafana_escape(current[0])
        else:
            out[var["name"]] = "(" + "|".join(grafana_escape(v) for v in current) + ")"
    return out


def panels(dashboard: dict, opened: Optional[str] = None):
    """The panels a refresh queries: not those inside a collapsed row, which Grafana queries only
    once the row is opened. With `opened` (a repeated row's title), only that row's panels."""
    for p in dashboard.get("panels", []):
        if opened is None:
            yield p
            if not p.get("collapsed"):
                yield from p.get("panels", [])
        elif p.get("type") == "row" and p.get("title") == opened:
            yield from p.get("panels", [])


def all_panels(dashboard: dict):
    """Every panel, those inside collapsed rows too."""
    for p in dashboard.get("panels", []):
        yield p
        yield from p.get("panels", [])


def repeated_rows(dashboard: dict) -> list[tuple[str, str]]:
    """(title, variable) of each repeated row."""
    return [(p["title"], p["repeat"]) for p in dashboard.get("panels", []) if p.get("type") == "row" and p.get("repeat")]


def dashboard_queries(dashboard: dict, step: int, ds_interval: int, range_s: int, opened: Optional[str] = None,
                      values_set: Optional[dict[str, str]] = None) -> list[dict]:
    """Every query of a refresh; with `opened`, those of that one repeated row, `values_set` giving its
    variable the value of the copy opened."""
    variables = {**variable_values(dashboard), **(values_set or {})}
    builtins = {
        "__rate_interval": format_duration(max(step + ds_interval, 4 * ds_interval)),
        "__interval": format_duration(step),
        "__interval_ms": str(step * 1000),
        "__range": format_duration(range_s),
        "__range_s": str(range_s),
    }
    values = {**variables, **builtins}

    def substitute(expr: str) -> str:
        # Longest names first, so $__interval does not eat $__interval_ms.
        for name in sorted(values, key=len, reverse=True):
            expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
        if "$" in expr:
            raise ValueError(f"unsubstituted variable in {expr!r}")
        return expr

    out = []
    for p in panels(dashboard, opened):
        for target in p.get("targets", []):
            if "expr" in target:
                out.append({"panel": p.get("title", ""), "ref": target.get("refId", ""), "instant": bool(target.get("instant")),
                            "expr": substitute(target["expr"])})
    return out


_RECORDED = re.compile(r"(?<![A-Za-z0-9_:])(llm:[A-Za-z0-9_:]+)(\{[^}]*\})?")  # not the `llm:` inside `vllm:`
_RAW_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
_OVER_RANGE = re.compile(r"(?<![A-Za-z0-9_:])llm:[A-Za-z0-9_:]+(\{[^}]*\})?\[")
_BARE_RECORD = re.compile(r"(?<![A-Za-z0-9_:])(llm:[A-Za-z0-9_:]+)(?![A-Za-z0-9_:{])")


def raw_records(cfg) -> dict[str, list[str]]:
    """Recording-rule name -> the expressions that record it, one per engine mapping (several engines
    record the same shared-schema name). Records computed from other records are kept when those
    expand, in turn, to raw series (the fleet records, over the per-instance ones); the model-load
    latches, which read their own last value, and records over a range of records (the SLO burn
    rates' long windows) have no raw equivalent and are left out."""
    out: dict[str, list[str]] = {}
    for group in promcfg.recording_groups(cfg):
        for rule in group["rules"]:
            expr = rule["expr"]
            # A rule's static labels (the SLOs' `slo`) are part of what it records.
            for label, value in sorted((rule.get("labels") or {}).items()):
                expr = f'label_replace({expr}, "{label}", "{value}", "", "")'
            out.setdefault(rule["record"], []).append(expr)
    expandable: set[str] = set()
    while True:
        # A record over a range of another record (the SLO burn rates' long windows) would expand to a
        # subquery, which no raw dashboard would ask: like the latches, it stays a record.
        more = {name for name, exprs in out.items() if name not in expandable
                and not any(_OVER_RANGE.search(e) for e in exprs)
                and all(inner in expandable for e in exprs for inner, _ in _RECORDED.findall(e))}
        if not more:
            return {name: out[name] for name in sorted(expandable)}
        expandable |= more


def _push(body: str, matchers: str) -> str:
    """`body` with `matchers` added to every selector in it, bare record names included."""
    if not matchers:
        return body
    body = _RAW_SELECTOR.sub(lambda s: f"{s.group(1)}{{{matchers}, ", body)
    return _BARE_RECORD.sub(lambda m: f"{m.group(1)}{{{matchers}}}", body)


def raw_equivalent(expr: str, records: dict[str, list[str]]) -> tuple[str, bool]:
    """`expr` with each recording-rule name replaced by its expression, down to raw series, the
    selector's matchers pushed into every selector of that expression. Returns (expression, whether
    anything changed)."""
    changed = False

    def replace(m: re.Match) -> str:
        nonlocal changed
        name, matchers = m.group(1), (m.group(2) or "{}")[1:-1].strip()
        # A record read over a range (avg_over_time(x[30d]), the SLO budget panel) would need a
        # subquery of its expression, which is not what a raw dashboard would ask: it stays as it is.
        if name not in records or m.string[m.end():].lstrip().startswith("["):
            return m.group(0)
        changed = True
        bodies = [raw_equivalent(_push(b, matchers), records)[0] for b in records[name]]
        # Every engine's mapping: a dashboard over raw metrics has to ask each engine's names.
        return "(" + " or ".join(f"({b})" for b in bodies) + ")" if len(bodies) > 1 else f"({bodies[0]})"

    return _RECORDED.sub(replace, expr), changed


def rule_stages(cfg) -> list[list[dict]]:
    """The recording groups with something to record from the backfilled job, in backfill passes: a
    group that reads another group's records goes in a later pass than it (promtool backfills from
    what the server holds, not from what it is writing). Groups over other jobs only (other engines,
    cAdvisor, probes) would record nothing from this data and are left out: over 30 days their empty
    queries alone take minutes."""
    groups = promcfg.recording_groups(cfg)
    # Several engine groups record the same shared name: a group reading it needs every one of them.
    made_by: dict[str, set[str]] = {}
    for g in groups:
        for rule in g["rules"]:
            made_by.setdefault(rule["record"], set()).add(g["name"])
    needs = {g["name"]: set().union(*(made_by[n] for r in g["rules"] for n, _ in _RECORDED.findall(r["expr"]) if n in made_by)) - {g["name"]}
             for g in groups}
    live = {g["name"] for g in groups if any(selected_metrics(r["expr"], JOB) for r in g["rules"])}
    while more := {g["name"] for g in groups if g["name"] not in live and needs[g["name"]] & live}:
        live |= more
    # Only the records a dashboard reads, and those they are computed from: the alerts' 1-minute
    # twins and the p50/p99 quantiles would cost as much to backfill as the rest and change nothing.
    exprs = {rule["record"]: [] for g in groups for rule in g["rules"]}
    for g in groups:
        for rule in g["rules"]:
            exprs[rule["record"]].append(rule["expr"])
    read = {n for build in dashboards.DASHBOARDS.values() for p in all_panels(build()) for t in p.get("targets", [])
            for n, _ in _RECORDED.findall(t.get("expr", "")) if n in exprs}
    while more := {n for name in read for e in exprs[name] for n, _ in _RECORDED.findall(e) if n in exprs} - read:
        read |= more
    groups = [{**g, "rules": [r for r in g["rules"] if r["record"] in read]} for g in groups if g["name"] in live]
    groups = [g for g in groups if g["rules"]]
    needs = {g["name"]: needs[g["name"]] & {h["name"] for h in groups} for g in groups}
    stages, placed = [], set()
    while len(placed) < len(groups):
        stage = [g for g in groups if g["name"] not in placed and needs[g["name"]] <= placed]
        if not stage:
            raise RuntimeError(f"recording groups read each other's records in a cycle: {needs}")
        stages.append(stage)
        placed |= {g["name"] for g in stage}
    return stages


# --------------------------------------------------------------------------------------------------
# the run


def served(config_file: str, data_dir: str, log: str, flags: list[str]) -> PrometheusServer:
    """A Prometheus on the bench's TSDB: loading and compacting days of blocks, and queries over them, take minutes."""
    return PrometheusServer(config_file, data_dir, log, extra_args=flags, ready_timeout=900, stop_timeout=120, request_timeout=900)


def _proc_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_settled(server: PrometheusServer, timeout: float, first_pass: float = 70) -> dict:
    """Until the first compaction pass has run and the process has been idle for 15 s."""
    started = time.monotonic()
    blocks_at_start = own_metric(server, "prometheus_tsdb_blocks_loaded")
    time.sleep(first_pass)  # the TSDB's compaction loop first runs a minute after start

    def idle():
        before = _proc_cpu_seconds(server.pid)
        time.sleep(15)
        return _proc_cpu_seconds(server.pid) - before < 0.3

    wait_until(idle, timeout, 0, "prometheus to finish compacting")
    return {"blocks_at_start": blocks_at_start, "blocks_loaded": own_metric(server, "prometheus_tsdb_blocks_loaded"),
            "compactions": own_metric(server, "prometheus_tsdb_compactions_total"),
            "settle_seconds": round(time.monotonic() - started, 1)}


def timed(server: PrometheusServer, q: dict, start: int, end: int, step: int) -> dict:
    params = {"query": q["expr"], "stats": "all"}
    if q["instant"]:
        path, params["time"] = "/api/v1/query", end
    else:
        path = "/api/v1/query_range"
        params.update(start=start, end=end, step=step)
    # Timed until the whole response is read: what Grafana waits for, without our JSON decoding.
    t0 = time.perf_counter()
    body = server.get(path, params, timeout=600)
    elapsed = time.perf_counter() - t0
    doc = json.loads(body)
    if doc.get("status") != "success":
        raise RuntimeError(f"{q['expr']}: {doc}")
    stats = doc["data"].get("stats", {})
    return {"seconds": elapsed, "series": len(doc["data"]["result"]), "bytes": len(body),
            "server_seconds": float(stats.get("timings", {}).get("execTotalTime", 0.0)),
            "samples": int(stats.get("samples", {}).get("totalQueryableSamples", 0))}


def measure(args, workdir: str) -> dict:
    cfg = load_defaults(args.env)
    interval = args.sample_interval
    ds_interval = int(duration_seconds(cfg.prometheus.scrape_interval))
    range_s = int(args.days * 86400)
    step = grafana_step(range_s, ds_interval)
    # Data ends an hour ago (inside any retention), on a whole step.
    end = (int(time.time()) - 3600) // step * step
    start = end - range_s
    timings: dict = {"interval_s": interval, "instances": args.instances, "days": args.days, "step_s": step}
    data_dir = os.path.join(workdir, "data")
    config_file = os.path.join(workdir, "prometheus.yml")
    flags = [f"--storage.tsdb.retention.time={format_duration(retention_seconds(cfg, range_s))}", "--query.timeout=10m"]
    log = os.path.join(workdir, "prometheus.log")
    meta_file = os.path.join(workdir, "meta.json")
    if args.reuse_data and os.path.exists(meta_file):
        with open(meta_file) as fh:
            meta = json.load(fh)
        if {k: meta["setup"][k] for k in ("interval_s", "instances", "days", "step_s")} != {k: timings[k] for k in ("interval_s", "instances", "days", "step_s")}:
            raise SystemExit(f"{meta_file} was made with other parameters: {meta['setup']}")
        timings, start, end = meta["setup"], meta["start"], meta["end"]
        timings["reused_data"] = True
    else:
        timings.update(prepare(cfg, args, workdir, start, end, data_dir, config_file, flags, log))
        with open(meta_file, "w") as fh:
            json.dump({"setup": timings, "start": start, "end": end}, fh)
    return time_dashboards(cfg, args, timings, start, end, step, ds_interval, range_s, data_dir, config_file, flags, log)


def retention_seconds(cfg, range_s: int) -> int:
    """The stack's retention, or longer where the measured range would not fit in it (a 30-day
    dashboard on the dev stack's 15 days): two days more than the range."""
    return max(int(duration_seconds(cfg.prometheus.retention_time)), range_s + 2 * 86400)


def block_seconds(retention_s: int) -> int:
    """The largest block the stack's Prometheus compacts to: its largest compaction range (2h × 3^k)
    under a tenth of the retention (15d -> 18h, 32d -> 54h)."""
    block = 7200
    while block * 3 <= min(retention_s / 10, 31 * 86400):
        block *= 3
    return block


class RawBackfill:
    """`promtool tsdb create-blocks-from openmetrics` on each OpenMetrics file as soon as it is
    complete, while the next one is written, then the file is deleted: two on disk at most.

    One file per block-aligned window, because promtool 2.42 parses its whole input once per block it
    writes (cmd/promtool/backfill.go, createBlocks): a single file of 30 days in 54h blocks would be
    parsed 14 times over."""

    def __init__(self, data_dir: str, block_s: int):
        self.data_dir, self.block_s = data_dir, block_s
        self.proc: Optional[subprocess.Popen] = None
        self.path = ""
        self.waited = 0.0

    def __call__(self, path: str) -> None:
        self.wait()
        self.path = path
        self.proc = subprocess.Popen(
            [PROMTOOL, "tsdb", "create-blocks-from", "openmetrics", "--quiet", f"--max-block-duration={self.block_s}s", path, self.data_dir],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def wait(self) -> None:
        if self.proc is None:
            return
        t0 = time.monotonic()
        out, err = self.proc.communicate(timeout=7200)
        self.waited += time.monotonic() - t0
        if self.proc.returncode != 0:
            raise RuntimeError(f"openmetrics backfill of {self.path} failed:\n{out[-2000:]}{err[-2000:]}")
        os.remove(self.path)
        self.proc = None


def prepare(cfg, args, workdir, start, end, data_dir, config_file, flags, log) -> dict:
    """Steps 1 and 2: the raw blocks and the recording-rule blocks, both in data_dir."""
    interval = args.sample_interval
    timings: dict = {}
    # 1. raw blocks, in blocks as large as the stack's Prometheus compacts to
    t0 = time.monotonic()
    shapes = Shapes(cfg, interval, workdir)
    instances = [f"{shapes.instance}-{i + 1:02d}" for i in range(args.instances)]
    data_start = start - 3600  # an hour more, so the first 5m windows are full
    block_s = block_seconds(retention_seconds(cfg, end - start))
    backfill = RawBackfill(data_dir, block_s)
    try:
        timings["openmetrics"] = write_openmetrics(lambda n: os.path.join(workdir, f"mistral-{n:03d}.om"), shapes, instances,
                                                   data_start, end, interval, block_s, backfill)
        written = time.monotonic() - t0
        backfill.wait()
    finally:
        if backfill.proc is not None:
            backfill.proc.kill()
            backfill.proc.wait()
    timings["openmetrics"]["write_seconds"] = round(written, 1)
    timings["block_s"] = block_s
    # promtool's time beyond the writing it ran beside: the backfill's own share of the wall clock
    timings["backfill_raw_seconds"] = round(time.monotonic() - t0 - written + backfill.waited, 1)
    timings["backfill_raw_wall_seconds"] = round(time.monotonic() - t0, 1)

    # 2. recording rules, computed by a Prometheus on the blocks so far: one pass per stage, so the
    # fleet records are computed from the per-instance records as the stack computes them
    with open(config_file, "w") as fh:
        yaml.safe_dump({"global": {"evaluation_interval": cfg.prometheus.evaluation_interval}}, fh)
    t0 = time.monotonic()
    stages = rule_stages(cfg)
    for n, stage in enumerate(stages):
        rule_file = os.path.join(workdir, f"stage-{n}-{promcfg.RECORDING_FILE}")
        with open(rule_file, "w") as fh:
            yaml.safe_dump({"groups": stage}, fh, sort_keys=False, width=100_000)
        rules_dir = os.path.join(workdir, f"rule-blocks-{n}")
        with served(config_file, data_dir, log, flags) as server:
            proc = run([PROMTOOL, "tsdb", "create-blocks-from", "rules", f"--url={server.url}", f"--start={data_start}", f"--end={end}",
                        f"--output-dir={rules_dir}", f"--eval-interval={interval}s", rule_file], timeout=7200)
        if proc.returncode != 0 or "level=error" in proc.stderr:
            raise RuntimeError(f"rules backfill failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        for block in os.listdir(rules_dir):
            if os.path.isdir(os.path.join(rules_dir, block)) and re.fullmatch(r"[0-9A-Z]{26}", block):
                shutil.move(os.path.join(rules_dir, block), os.path.join(data_dir, block))
    timings["backfill_rules_seconds"] = round(time.monotonic() - t0, 1)
    timings["rule_stages"] = [[g["name"] for g in stage] for stage in stages]
    return timings


def time_dashboards(cfg, args, timings, start, end, step, ds_interval, range_s, data_dir, config_file, flags, log) -> dict:
    """Steps 3 and 4."""
    # 3./4. time the dashboards
    records = raw_records(cfg)
    boards = {model["title"]: model for model in (build() for _, build in sorted(dashboards.DASHBOARDS.items()))}
    plans = {}

    def plan(title: str, queries: list[dict]) -> None:
        for q in queries:
            q["raw"], q["mapped"] = raw_equivalent(q["expr"], records)
        plans[title] = queries

    for title, board in boards.items():
        plan(title, dashboard_queries(board, step, ds_interval, range_s))

    with served(config_file, data_dir, log, flags) as server:
        # --quick measures nothing, so it need not wait for the first compaction pass.
        timings["settle"] = wait_settled(server, 3600, first_pass=0 if args.quick else 70)
        # A repeated row, opened for one copy: what looking at one instance of the fleet costs.
        for title, board in boards.items():
            for row, variable in repeated_rows(board):
                first = sorted(json.loads(server.get(f"/api/v1/label/{variable}/values", {"start": start, "end": end}))["data"])[0]
                plan(f"{title}: {row.replace('$' + variable, first)} opened",
                     dashboard_queries(board, step, ds_interval, range_s, opened=row, values_set={variable: grafana_escape(first)}))
        timings["series_at_end"] = {
            "raw": int(scalar(server, f'count({{job="{JOB}", __name__!~"llm:.*"}})', at=end)),
            "recorded": int(scalar(server, 'count({__name__=~"llm:.*"})', at=end)),
        }
        # Other work on this machine skews the timings (not the sample counts): say how busy it was.
        timings["loadavg_before"] = round(os.getloadavg()[0], 2)
        rounds = []
        for r in range(args.rounds + 1):
            order = ("recorded", "raw") if r % 2 == 0 else ("raw", "recorded")
            this = {}
            for title, queries in plans.items():
                for variant in order:
                    this[(title, variant)] = [timed(server, {**q, "expr": q["expr"] if variant == "recorded" else q["raw"]}, start, end, step)
                                              for q in queries]
            if r > 0:  # round 0 warms the page cache and is discarded
                rounds.append(this)
        timings["loadavg_after"] = round(os.getloadavg()[0], 2)

    results = []
    for title, queries in plans.items():
        rec = [sum(q["seconds"] for q in rd[(title, "recorded")]) for rd in rounds]
        raw = [sum(q["seconds"] for q in rd[(title, "raw")]) for rd in rounds]
        first = rounds[0]
        per_query = []
        for i, q in enumerate(queries):
            rs, ws = first[(title, "recorded")][i], first[(title, "raw")][i]
            per_query.append({
                "panel": q["panel"], "ref": q["ref"], "instant": q["instant"], "mapped": q["mapped"], "expr": q["expr"], "raw": q["raw"],
                "recorded_median_ms": round(1000 * statistics.median(rd[(title, "recorded")][i]["seconds"] for rd in rounds), 2),
                "raw_median_ms": round(1000 * statistics.median(rd[(title, "raw")][i]["seconds"] for rd in rounds), 2),
                "recorded_server_median_ms": round(1000 * statistics.median(rd[(title, "recorded")][i]["server_seconds"] for rd in rounds), 2),
                "raw_server_median_ms": round(1000 * statistics.median(rd[(title, "raw")][i]["server_seconds"] for rd in rounds), 2),
                "recorded_series": rs["series"], "raw_series": ws["series"],
                "recorded_samples": rs["samples"], "raw_samples": ws["samples"],
            })
        rec_server = [sum(q["server_seconds"] for q in rd[(title, "recorded")]) for rd in rounds]
        raw_server = [sum(q["server_seconds"] for q in rd[(title, "raw")]) for rd in rounds]
        rec_med, raw_med = statistics.median(rec), statistics.median(raw)
        # Each round's refresh against its own raw twin, then the median over rounds.
        round_ratios = [w / r if r else math.inf for r, w in zip(rec, raw)]
        rec_srv, raw_srv = statistics.median(rec_server), statistics.median(raw_server)
        rec_samples = sum(q["recorded_samples"] for q in per_query)
        raw_samples = sum(q["raw_samples"] for q in per_query)
        results.append({
            "dashboard": title,
            "queries": len(queries),
            "queries_with_recording_rules": sum(q["mapped"] for q in per_query),
            "recorded_refresh_s": [round(x, 4) for x in rec],
            "raw_refresh_s": [round(x, 4) for x in raw],
            "recorded_median_s": round(rec_med, 4),
            "raw_median_s": round(raw_med, 4),
            "ratio": round(raw_med / rec_med, 1) if rec_med else math.inf,
            "round_ratios": [round(x, 2) for x in round_ratios],
            "median_round_ratio": round(statistics.median(round_ratios), 1),
            "recorded_server_median_s": round(rec_srv, 4),
            "raw_server_median_s": round(raw_srv, 4),
            "server_ratio": round(raw_srv / rec_srv, 1) if rec_srv else math.inf,
            "response_bytes": {"recorded": sum(q["bytes"] for q in first[(title, "recorded")]),
                               "raw": sum(q["bytes"] for q in first[(title, "raw")])},
            "recorded_samples": rec_samples,
            "raw_samples": raw_samples,
            "samples_ratio": round(raw_samples / rec_samples, 1) if rec_samples else math.inf,
            "series_mismatches": [f"{q['panel']} {q['ref']}" for q in per_query if q["recorded_series"] != q["raw_series"]],
            "per_query": per_query,
        })
    by_title = {r["dashboard"]: r for r in results}
    return {
        "setup": timings,
        "range": {"start": start, "end": end, "step_s": step, "rate_interval": format_duration(max(step + ds_interval, 4 * ds_interval))},
        "rounds": args.rounds,
        "dashboards": results,
        "goals": {
            "mistral_dashboard_10x_cheaper": by_title[INFERENCE]["ratio"] >= 10,
            # The fleet goal is stated for 30 days of 64 instances; other runs report it, but it is that run's.
            "fleet_dashboard_20x_cheaper": by_title[FLEET]["median_round_ratio"] >= 20,
        },
    }


def markdown(doc: dict) -> str:
    s = doc["setup"]
    om = s["openmetrics"]
    lines = [
        f"Data: {s['instances']} instances × {s['days']} days, one sample per series every {s['interval_s']} s: "
        f"{om['series']} raw series, {om['samples']:,} samples, {om['bytes'] / 1e9:.2f} GB of OpenMetrics in {om.get('files', 1)} file(s) "
        f"(written in {om['write_seconds']} s, backfilled in {s['backfill_raw_seconds']} s; rules backfilled in {s['backfill_rules_seconds']} s).",
        f"Grafana step {format_duration(doc['range']['step_s'])}, $__rate_interval {doc['range']['rate_interval']}; "
        f"median of {doc['rounds']} rounds after one warm-up round; queries sent one at a time; "
        f"1-minute load average {s['loadavg_before']} before and {s['loadavg_after']} after the timed rounds (2 cores).",
        f"At the end of the range: {s['series_at_end']['raw']} raw series, {s['series_at_end']['recorded']} recorded series.",
        "",
        "| dashboard | queries (with recording rules) | full refresh over HTTP: rules → raw | ratio | median of the rounds' ratios "
        "| Prometheus execution time: rules → raw | ratio | samples loaded: rules → raw | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in doc["dashboards"]:
        lines.append(
            f"| {r['dashboard']} | {r['queries']} ({r['queries_with_recording_rules']}) "
            f"| {r['recorded_median_s'] * 1000:.0f} ms → {r['raw_median_s'] * 1000:.0f} ms | {r['ratio']}× | **{r['median_round_ratio']}×** "
            f"| {r['recorded_server_median_s'] * 1000:.0f} ms → {r['raw_server_median_s'] * 1000:.0f} ms | {r['server_ratio']}× "
            f"| {r['recorded_samples']:,} → {r['raw_samples']:,} | {r['samples_ratio']}× |"
        )
    goals = doc["goals"]
    lines += [
        "",
        f"- Goal, Mistral.rs dashboard full refresh at least 10× cheaper than raw: **{'met' if goals['mistral_dashboard_10x_cheaper'] else 'missed'}**",
        f"- Goal, fleet dashboard full refresh at least 20× cheaper than raw (median of the rounds' ratios; stated for 30 days of 64 "
        f"instances, this run: {s['days']} days of {s['instances']}): **{'met' if goals['fleet_dashboard_20x_cheaper'] else 'missed'}**",
    ]
    for r in doc["dashboards"]:
        if r["series_mismatches"]:
            lines.append(f"- {r['dashboard']}: result series differ between rules and raw for {', '.join(r['series_mismatches'])}")
    for title in (FLEET, INFERENCE):
        board = next(r for r in doc["dashboards"] if r["dashboard"] == title)
        lines += ["", f"Per query ({title}, medians; HTTP / Prometheus execution):", "",
                  "| panel | ref | rules | raw | samples rules → raw |", "|---|---|---:|---:|---:|"]
        for q in board["per_query"]:
            lines.append(f"| {q['panel']} | {q['ref']}{'' if q['mapped'] else ' (no rule)'} "
                         f"| {q['recorded_median_ms']:.1f} / {q['recorded_server_median_ms']:.1f} ms "
                         f"| {q['raw_median_ms']:.1f} / {q['raw_server_median_ms']:.1f} ms | {q['recorded_samples']:,} → {q['raw_samples']:,} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 instances, 6 hours, 1 round: proves the pipeline, measures nothing")
    ap.add_argument("--instances", type=int, default=16)
    ap.add_argument("--days", type=float, default=7)
    ap.add_argument("--sample-interval", type=int, default=60, help="seconds between backfilled samples (default 60)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--env", default="dev")
    ap.add_argument("--workdir", help="where the OpenMetrics file and TSDB go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the workdir")
    ap.add_argument("--reuse-data", action="store_true", help="with --workdir: time again on the blocks a --keep run left there")
    ap.add_argument("--json", help="write the results here as JSON")
    add_docs_argument(ap)
    args = ap.parse_args(argv)
    exit_on_sigterm()
    if args.quick:
        args.instances, args.days, args.rounds = 2, 0.25, 1
    started = time.monotonic()
    if args.reuse_data and not args.workdir:
        raise SystemExit("--reuse-data needs --workdir")
    args.keep = args.keep or args.reuse_data
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-query-cost-")
    os.makedirs(workdir, exist_ok=True)
    try:
        doc = measure(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    doc.update({"measured_against": fingerprint(load_defaults(args.env)), "bench": "query_cost", "env": args.env, "quick": args.quick, "elapsed_seconds": round(time.monotonic() - started, 1)})
    report = markdown(doc)
    publish(doc, report, args.json, args.docs, "query_cost", list(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
