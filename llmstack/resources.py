"""Resource recording rules and alerts: GPU, container CPU and memory, model load time, TSDB size.

Mistral.rs exports none of these. They come from the exporters beside it (components/exporters.py):
cAdvisor for every stack container and, on GPU hosts, NVIDIA's DCGM exporter; the TSDB size comes
from Prometheus's own metrics. On a cluster (platform kubernetes) they come from what the cluster
already runs: the kubelet's cAdvisor, kube-state-metrics and the GPU operator's DCGM exporter, whose
labels differ (`Shape`). This module turns their raw series into the shared `llm:*` names of
llmstack/signals.py, which the dashboards query. It also builds the `cadvisor`, `dcgm` and `prometheus` scrape jobs, whose keep-lists are
what the expressions here read (llmstack/promql.py's conventions); the resource alerts are in
llmstack/alerts/resources.py.

Container memory limit (`llm:container_memory_limit_bytes`). A container without a limit can still
run the host out of memory, so the record falls back to the host's memory for it, and the
container memory alerts hold for every container, with or without a limit (see `_container_records`).

The GPU rules are rendered on every stack, with or without a DCGM job: without DCGM series they
record nothing, so a stack without a GPU has "no data" on its GPU panels and no GPU alert can fire,
and the promtool tests can check them against the dev rules like every other rule.

Model load time (`llm:model_load_seconds`). mistral.rs binds its port only after the model has
loaded (mistralrs-cli/src/commands/serve.rs, v0.9.2: the builder awaits the load, then binds), so
the first scrape the server answers marks the end of the load. The start is cAdvisor's
`container_start_time_seconds`, which for a Docker container is the container's *creation* time
(cadvisor v0.53.0 container/docker/handler.go reads Docker's `Created`). Three records, evaluated
in order in one group, latch the measurement:

1. `llm:mistral_load_start_timestamp_seconds`: the creation time of the current mistral container,
   but only if Prometheus saw that container within `modelLoadSeenWithin` of its creation. Then
   Prometheus was watching while the model loaded. A Prometheus that first sees a container that has
   been running for longer (monitoring added to a running server, a lost TSDB) records nothing,
   rather than the container's age.
2. `llm:mistral_ready_timestamp_seconds`: the time of the first successful scrape after that
   creation time; it keeps its value until the container is replaced.
3. `llm:model_load_seconds`: (2) minus (1).

Each latch keeps its last value (`last_over_time` over LATCH_WINDOW, so a restart of Prometheus
does not lose it) for as long as it still belongs to the current container. A new container has a
new creation time, so it gets a new measurement. An in-place restart (crash plus the `unless-stopped`
restart policy, `docker restart`) keeps the creation time, so it is not measured again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from . import topology
from .config import StackConfig, duration_seconds
from .engines import mistralrs
from .promql import Promql, selected_metrics
from .scrape import ScrapeJob, keep_only, set_label
from .signals import BY as SCHEMA_BY
from .signals import (
    CONTAINER_CPU,
    CONTAINER_MEMORY,
    CONTAINER_MEMORY_LIMIT,
    GPU_LAST_XID,
    GPU_MEMORY_TOTAL,
    GPU_MEMORY_USED,
    GPU_POWER,
    GPU_TEMPERATURE,
    GPU_UTILISATION,
    LOAD_START,
    MODEL_LOAD_SECONDS,
    READY,
    TSDB_RETENTION_USED,
    Signal,
)

GROUP = "llm-resources"
CADVISOR_JOB = "cadvisor"
DCGM_JOB = "dcgm"
# The job name of Prometheus's self-scrape (llmstack/prometheus.py, kept whole).
PROMETHEUS_JOB = "prometheus"

# The component whose container runs the model (its Docker name is llmstack-<env>-mistral).
MODEL_CONTAINER = "mistral"
# How long a latched value survives without Prometheus evaluating its rules (a restart, an outage).
LATCH_WINDOW = "1d"

# Labels the resource records keep. GPUs: the index, the UUID and the model name. The DCGM
# exporter's Hostname is left out: in a container without NODE_NAME it is the container's id, which
# changes with every replacement (and later exporter releases rename the label to hostname).
# Containers: the stack component.
GPU_BY = "env, gpu, UUID, modelName"
CONTAINER_BY = "env, container"

MIB = 1048576  # DCGM reports framebuffer memory in MiB

# cAdvisor's one machine-level series the records read: the host's memory, MemTotal of /proc/meminfo
# (cadvisor v0.53.0 metrics/prometheus_machine.go; machine/info.go). Its labels are machine_id,
# system_uuid and boot_id, and no `name`: it belongs to no container.
MACHINE_MEMORY = "machine_memory_bytes"
# cAdvisor stamps the machine series with the time it last read the machine's info, which it does at
# start and then every 5 minutes (--update_machine_info_interval, manager/manager.go), and Prometheus
# keeps that timestamp. So the newest sample is up to 5 minutes plus a scrape interval old, past the
# 5-minute look-back of a bare selector; every 5 minutes the series would be missing for a moment and
# a pending alert would start its `for` again. The record reads it over three refreshes.
MACHINE_INFO_WINDOW = "15m"

_gpu = Promql(DCGM_JOB).sel
_container = Promql(CADVISOR_JOB).sel
_prometheus = Promql(PROMETHEUS_JOB).sel

# The kubelet's cAdvisor serves under this path; kube-prometheus-stack copies it into `metrics_path`,
# which tells its series from the kubelet's own /metrics under the same job.
KUBELET_CADVISOR_PATH = "/metrics/cadvisor"


@dataclass(frozen=True)
class Shape:
    """How the raw resource series are labelled on a platform, and how a record reads them.

    Docker: the stack's own `cadvisor` and `dcgm` jobs already attach `env` and the component as
    `container` (the scrape jobs below). Kubernetes: the cluster's kubelet cAdvisor and the GPU
    operator's DCGM exporter carry `namespace`, `pod` and `container` and no `env`, so the records
    keep the stack's namespace, add `env`, and take the pod as `instance`, the label the
    ServiceMonitor gives each server (llmstack/kubernetes.py). Both shapes give the same records,
    label for label.
    """

    gpu: Callable[[str], str]  # a DCGM metric -> the selector of the stack's GPUs
    container: Callable[..., str]  # a cAdvisor metric (and matchers) -> the stack's containers
    machine_memory: str  # the host's memory
    with_env: Callable[[str], str]  # attach `env` where the raw series lack it
    load_by: str  # the labels the model-load start is kept by
    pod_as_instance: Callable[[str], str]
    memory_limit: Optional[str] = None  # the limit record, where it does not come from cAdvisor


def _docker_shape() -> Shape:
    return Shape(
        gpu=_gpu,
        container=_container,
        machine_memory=_container(MACHINE_MEMORY),
        with_env=lambda expr: expr,
        load_by="env",
        pod_as_instance=lambda expr: expr,
    )


def _kubernetes_shape(cfg: StackConfig) -> Shape:
    k = cfg.kubernetes
    ns = k.namespace

    def gpu(metric: str) -> str:
        # A GPU is the stack's while one of its pods holds it: the exporter then labels it with that
        # pod's namespace. The GPU operator's ServiceMonitor does not honour the exporter's labels,
        # so Prometheus keeps that one as exported_namespace; a ServiceMonitor that does keeps it as
        # namespace. Either is read.
        sel = Promql(k.dcgm_job).sel
        exported, honoured = f'exported_namespace="{ns}"', f'namespace="{ns}"'
        return f"({sel(metric, exported)} or {sel(metric, honoured)})"

    def container(metric: str, *matchers: str) -> str:
        # container="" is the pod's cgroup and "POD" its sandbox: aggregates, not containers.
        extra = matchers or ('container!=""', 'container!="POD"')
        return Promql(k.cadvisor_job).sel(metric, f'metrics_path="{KUBELET_CADVISOR_PATH}"', f'namespace="{ns}"', *extra)

    def with_env(expr: str) -> str:
        # The stack name is a label value already (STACK_NAME): nothing in it needs quoting.
        return f'label_replace({expr}, "env", "{cfg.env}", "", "")'

    # kube-prometheus-stack drops cAdvisor's container_spec_* series by default (they overlap with
    # kube-state-metrics), so the limit is kube-state-metrics' view of the pod spec. A container
    # without a limit has no such series; it gets its node's memory, which the operator's `node`
    # target label on every kubelet series joins.
    ksm_limit = Promql(k.kube_state_metrics_job).sel("kube_pod_container_resource_limits", 'resource="memory"', f'namespace="{ns}"')
    machine = Promql(k.cadvisor_job).sel(MACHINE_MEMORY, f'metrics_path="{KUBELET_CADVISOR_PATH}"')
    node_memory = f"max by (node) (last_over_time({machine}[{MACHINE_INFO_WINDOW}]))"
    running = f"max by (namespace, pod, container, node) ({container('container_memory_working_set_bytes')})"
    memory_limit = (
        f"max by ({CONTAINER_BY}) ({with_env(ksm_limit)})"
        f" or max by ({CONTAINER_BY}) ({with_env(f'{running} * 0 + on (node) group_left () {node_memory}')})"
    )
    return Shape(
        gpu=gpu,
        container=container,
        machine_memory=machine,
        with_env=with_env,
        load_by="env, instance",
        pod_as_instance=lambda expr: f'label_replace({expr}, "instance", "$1", "pod", "(.+)")',
        memory_limit=memory_limit,
    )


def shape(cfg: StackConfig) -> Shape:
    return _kubernetes_shape(cfg) if cfg.on_kubernetes else _docker_shape()


@dataclass(frozen=True)
class Record:
    signal: Signal
    expr: str
    labels: str  # the labels the record keeps, for the docs
    source: str  # where the raw series come from, for the docs

    def prometheus_rule(self) -> dict:
        return {"record": self.signal.name, "expr": self.expr}


def _gpu_records(sh: Shape) -> list[Record]:
    def by(expr: str) -> str:
        # One series per GPU; max rather than sum, so a duplicate never doubles a value.
        return f"max by ({GPU_BY}) ({sh.with_env(expr)})"

    _gpu = sh.gpu
    used = _gpu("DCGM_FI_DEV_FB_USED")
    free = _gpu("DCGM_FI_DEV_FB_FREE")
    src = "DCGM exporter"
    return [
        Record(GPU_UTILISATION, f"{by(_gpu('DCGM_FI_DEV_GPU_UTIL'))} / 100", GPU_BY, f"{src}: `DCGM_FI_DEV_GPU_UTIL` (%) / 100"),
        Record(GPU_MEMORY_USED, f"{by(used)} * {MIB}", GPU_BY, f"{src}: `DCGM_FI_DEV_FB_USED` (MiB) x 1048576"),
        # Used plus free: the framebuffer applications can use. The driver's reserved part
        # (DCGM_FI_DEV_FB_RESERVED) is never available to them, so it is left out, and "used = total"
        # means full.
        Record(GPU_MEMORY_TOTAL, f"{by(f'{used} + {free}')} * {MIB}", GPU_BY, f"{src}: (`DCGM_FI_DEV_FB_USED` + `DCGM_FI_DEV_FB_FREE`) x 1048576"),
        Record(GPU_TEMPERATURE, by(_gpu("DCGM_FI_DEV_GPU_TEMP")), GPU_BY, f"{src}: `DCGM_FI_DEV_GPU_TEMP`"),
        Record(GPU_POWER, by(_gpu("DCGM_FI_DEV_POWER_USAGE")), GPU_BY, f"{src}: `DCGM_FI_DEV_POWER_USAGE`"),
        # err_msg is kept for the alert's text; the value is the XID itself.
        Record(
            GPU_LAST_XID,
            f"max by ({GPU_BY}, err_msg) ({sh.with_env(_gpu('DCGM_FI_DEV_XID_ERRORS'))})",
            f"{GPU_BY}, err_msg",
            f"{src}: `DCGM_FI_DEV_XID_ERRORS` (the last XID; its `err_msg` label is kept)",
        ),
    ]


def _container_records(sh: Shape) -> list[Record]:
    src = "cAdvisor"
    _container = sh.container
    limit = _container("container_spec_memory_limit_bytes")
    cpu = _container("container_cpu_usage_seconds_total")
    host = f"max by (env) (last_over_time({sh.machine_memory}[{MACHINE_INFO_WINDOW}]))"
    return [
        # Summed over `cpu`: cAdvisor reports cpu="total", or per-CPU series when the per-CPU metrics
        # are on. Summed over containers too: a replaced container's last 5 minutes still count.
        Record(
            CONTAINER_CPU,
            f"sum by ({CONTAINER_BY}) ({sh.with_env(f'rate({cpu}[5m])')})",
            CONTAINER_BY,
            f"{src}: `rate(container_cpu_usage_seconds_total[5m])`",
        ),
        Record(
            CONTAINER_MEMORY,
            f"sum by ({CONTAINER_BY}) ({sh.with_env(_container('container_memory_working_set_bytes'))})",
            CONTAINER_BY,
            f"{src}: `container_memory_working_set_bytes`",
        ),
        # The container's limit; for a container without one, the host's memory, the most it can take.
        # cAdvisor reports 0 for no limit (any limit above 2^62 counts as none, cadvisor
        # metrics/prometheus.go specMemoryValue). `0 + host` gives those containers the host's memory
        # under their own labels; `or` keeps a real limit where a container has one, also while a
        # replaced container without one is still reported.
        Record(
            CONTAINER_MEMORY_LIMIT,
            sh.memory_limit
            or f"max by ({CONTAINER_BY}) ({limit} > 0)"
            f" or (max by ({CONTAINER_BY}) ({limit} == 0) + on (env) group_left () {host})",
            CONTAINER_BY,
            f"{src}: `container_spec_memory_limit_bytes`; for a container without a limit (0), the host's "
            f"memory, `{MACHINE_MEMORY}` (over the last {MACHINE_INFO_WINDOW})",
        ),
    ]


def _model_load_records(cfg: StackConfig, sh: Shape) -> list[Record]:
    model_container = f'container="{MODEL_CONTAINER}"'
    # On a cluster each pod is a server of its own (its own `instance`), so each is timed on its own.
    started = sh.with_env(sh.pod_as_instance(sh.container("container_start_time_seconds", model_container)))
    created = f"max by ({sh.load_by}) ({started})"
    up = Promql(mistralrs.JOB).sel("up")
    seen_within = int(duration_seconds(cfg.exporters.model_load_seen_within))
    on_env = f"on ({sh.load_by}) group_left ()"
    # Latch 1: the creation time, if Prometheus saw the container soon after it (see the module doc).
    load_start = (
        f"(last_over_time({LOAD_START.name}[{LATCH_WINDOW}]) == {created})"
        f" or ({created} and (time() - {created} <= {seen_within}))"
    )
    # Latch 2: the first answer after that creation time. timestamp() of a bare selector is the
    # scrape's own time (of anything else it would be the evaluation time), hence the `and`.
    answered_at = f"max by ({SCHEMA_BY}) (timestamp({up}) and {up} == 1)"
    ready = (
        f"(last_over_time({READY.name}[{LATCH_WINDOW}]) >= {on_env} {LOAD_START.name})"
        f" or ({answered_at} > {on_env} {LOAD_START.name})"
    )
    return [
        Record(LOAD_START, load_start, sh.load_by, "cAdvisor: `container_start_time_seconds` of the mistral container (its creation time)"),
        Record(READY, ready, SCHEMA_BY, "the first successful scrape of the `mistral` job (`timestamp(up)`) after that"),
        Record(MODEL_LOAD_SECONDS, f"{READY.name} - {on_env} {LOAD_START.name}", SCHEMA_BY, "the two above: ready minus created"),
    ]


def _tsdb_records() -> list[Record]:
    # What size-based retention counts (tsdb/db.go BeyondSizeRetention: Head().Size(), i.e. WAL plus
    # head chunks, plus every block). The out-of-order WBL counts too, but this stack does not enable
    # out-of-order ingestion. The WAL and head-chunk gauges exist since Prometheus 2.43.
    on_disk = " + ".join(
        _prometheus(m)
        for m in (
            "prometheus_tsdb_storage_blocks_bytes",
            "prometheus_tsdb_wal_storage_size_bytes",
            "prometheus_tsdb_head_chunks_storage_size_bytes",
        )
    )
    # retention_limit_bytes is --storage.tsdb.retention.size as Prometheus parsed it; 0 means none.
    limit = _prometheus("prometheus_tsdb_retention_limit_bytes")
    return [
        Record(
            TSDB_RETENTION_USED,
            f"sum by (env) ({on_disk}) / sum by (env) ({limit} > 0)",
            "env",
            "Prometheus: blocks + WAL + head chunks / `prometheus_tsdb_retention_limit_bytes`",
        )
    ]


def records(cfg: StackConfig) -> list[Record]:
    """Every resource record, in evaluation order (the model-load latches depend on it)."""
    sh = shape(cfg)
    return [*_gpu_records(sh), *_container_records(sh), *_model_load_records(cfg, sh), *_tsdb_records()]


def recording_groups(cfg: StackConfig) -> list[dict]:
    return [{"name": GROUP, "rules": [r.prometheus_rule() for r in records(cfg)]}]


def raw_metrics(cfg: StackConfig, job: str) -> frozenset[str]:
    """The metric names the records read from `job`: what its scrape must keep."""
    return frozenset().union(*(selected_metrics(r.expr, job) for r in records(cfg)))


def container_name_regex(cfg: StackConfig) -> str:
    """cAdvisor's `name` of the stack's own containers, the component name captured as $1."""
    prefix = cfg.container_name("").replace(".", r"\.")  # env names may hold a dot
    return f"{prefix}({'|'.join(topology.STACK_CONTAINERS)})"


# --- scrape jobs ---------------------------------------------------------------------------------


def _static(component: str) -> list[dict]:
    return [{"targets": [topology.address(component)]}]


def prometheus_self_job(cfg: StackConfig) -> ScrapeJob:
    _, port, path = topology.TARGETS["prometheus"]
    config = {
        "job_name": PROMETHEUS_JOB,
        "metrics_path": path,
        "static_configs": [{"targets": [f"localhost:{port}"]}],
        "relabel_configs": [set_label("env", cfg.env)],
    }
    # Kept whole: its TSDB and rule-evaluation metrics are what tells us the monitoring itself works.
    series = frozenset({"prometheus_*", "go_*", "process_*", "promhttp_*", "net_conntrack_*"})
    return ScrapeJob(config=config, series=series)


def cadvisor_job(cfg: StackConfig) -> ScrapeJob:
    """cAdvisor, reduced to the stack's own containers, the host's memory, and the metrics the records read."""
    kept = raw_metrics(cfg, CADVISOR_JOB)
    # cAdvisor's `name` is the Docker container name, llmstack-<env>-<component>; the rules and
    # dashboards group by the component, as `container`.
    names = container_name_regex(cfg)
    config = {
        "job_name": CADVISOR_JOB,
        "metrics_path": topology.TARGETS["cadvisor"][2],
        "static_configs": _static("cadvisor"),
        "relabel_configs": [set_label("env", cfg.env)],
        "metric_relabel_configs": [
            keep_only(kept),
            # Other containers on the host, and the root and system cgroups (name=""), are dropped.
            # The host's memory is a machine-level series: it has no `name` at all, and the memory
            # limit record needs it for containers without a limit. So the rule reads the metric name
            # with `name` (joined by relabelling's default separator ";") and keeps that one metric
            # without a name, and every other kept metric only for the stack's containers.
            {"source_labels": ["__name__", "name"], "regex": f"{MACHINE_MEMORY};|[^;]+;{names}", "action": "keep"},
            {"source_labels": ["name"], "regex": names, "target_label": "container", "replacement": "${1}"},
        ],
    }
    return ScrapeJob(config=config, series=kept)


def dcgm_job(cfg: StackConfig) -> ScrapeJob:
    kept = raw_metrics(cfg, DCGM_JOB)
    config = {
        "job_name": DCGM_JOB,
        "metrics_path": topology.TARGETS["dcgm"][2],
        "static_configs": _static("dcgm"),
        "relabel_configs": [set_label("env", cfg.env)],
        "metric_relabel_configs": [keep_only(kept)],
    }
    return ScrapeJob(config=config, series=kept)


def scrape_jobs(cfg: StackConfig) -> list[ScrapeJob]:
    """Prometheus itself and cAdvisor on every stack; the DCGM exporter only where there is a GPU."""
    return [prometheus_self_job(cfg), cadvisor_job(cfg)] + ([dcgm_job(cfg)] if cfg.exporters.dcgm_enabled else [])
