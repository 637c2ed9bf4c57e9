"""Resource recording rules and alerts: GPU, container CPU and memory, model load time, TSDB size.

Mistral.rs exports none of these. They come from the exporters beside it (components/exporters.py):
cAdvisor for every stack container and, on GPU hosts, NVIDIA's DCGM exporter; the TSDB size comes
from Prometheus's own metrics. This module turns their raw series into the shared `llm:*` names of
llmstack/schema.py, which the dashboards already query, and writes the resource alerts over those
names. rules.py adds both to the stack's rule files and alert list; prometheus.py builds the
`cadvisor` and `dcgm` scrape jobs, whose keep-lists are what the expressions here read.

The expressions follow engines.py's conventions: every raw selector is `metric{job="...", ...}`, so
`raw_metrics(job)` can read the keep-list back from them.

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
   but only if Prometheus saw that container within LOAD_START_SEEN_WITHIN_SECONDS of its creation. Then
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

import re
from dataclasses import dataclass

from . import rules, schema
from .config import StackConfig
from .engines import BY as SCHEMA_BY
from .engines import MISTRAL_JOB
from .schema import Signal

GROUP = "llm-resources"
CADVISOR_JOB = "cadvisor"
DCGM_JOB = "dcgm"
# The job name of Prometheus's self-scrape (llmstack/prometheus.py, kept whole).
PROMETHEUS_JOB = "prometheus"

# The component whose container runs the model (its Docker name is llmstack-<env>-mistral).
MODEL_CONTAINER = "mistral"
# How soon after the mistral container's creation Prometheus must first see it for its load to be
# timed. cAdvisor reports a new container at its next scrape (15 s by default), and on a first
# deploy Prometheus can start a little after mistral; 5 minutes covers both with a wide margin.
LOAD_START_SEEN_WITHIN_SECONDS = 300
# How long a latched value survives without Prometheus evaluating its rules (a restart, an outage).
LATCH_WINDOW = "1d"

# Labels the resource records keep. GPUs: the index, the UUID and the model name. The DCGM
# exporter's Hostname is left out: in a container without NODE_NAME it is the container's id, which
# changes with every replacement (and later exporter releases rename the label to hostname).
# Containers: the stack component.
GPU_BY = "env, gpu, UUID, modelName"
CONTAINER_BY = "env, container"

MIB = 1048576  # DCGM reports framebuffer memory in MiB

# Series this module records beyond schema.py's names: helpers for the model load time, the last XID
# and the TSDB's share of its retention size.
LOAD_START = Signal(
    "llm:mistral_load_start_timestamp_seconds",
    "dateTimeAsIso",
    "Creation time of the current mistral container, recorded only when Prometheus saw the container "
    "soon enough after its creation to time its model load.",
)
READY = Signal(
    "llm:mistral_ready_timestamp_seconds",
    "dateTimeAsIso",
    "When the current mistral container first answered a scrape: its model was loaded.",
)
GPU_LAST_XID = Signal(
    "llm:gpu_last_xid",
    "none",
    "The last XID error the GPU driver reported, per GPU (0: none). The DCGM exporter keeps it until it restarts.",
)
TSDB_RETENTION_USED = Signal(
    "llm:prometheus_tsdb_retention_used:ratio",
    "percentunit",
    "Prometheus's TSDB on disk (blocks, WAL, head chunks) against its retention size.",
)

# Selectors (see the module doc: every raw selector names its job).
_SELECTOR_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_JOB_RE = re.compile(r'\bjob="([^"]*)"')


def _sel(metric: str, job: str, *matchers: str) -> str:
    return metric + "{" + ", ".join((f'job="{job}"',) + matchers) + "}"


def _gpu(metric: str) -> str:
    return _sel(metric, DCGM_JOB)


def _container(metric: str) -> str:
    return _sel(metric, CADVISOR_JOB)


@dataclass(frozen=True)
class Record:
    signal: Signal
    expr: str
    labels: str  # the labels the record keeps, for the README
    source: str  # where the raw series come from, for the README

    def prometheus_rule(self) -> dict:
        return {"record": self.signal.name, "expr": self.expr}


def _gpu_records() -> list[Record]:
    def by(expr: str) -> str:
        # One series per GPU; max rather than sum, so a duplicate never doubles a value.
        return f"max by ({GPU_BY}) ({expr})"

    used = _gpu("DCGM_FI_DEV_FB_USED")
    free = _gpu("DCGM_FI_DEV_FB_FREE")
    src = "DCGM exporter"
    return [
        Record(schema.GPU_UTILISATION, f"{by(_gpu('DCGM_FI_DEV_GPU_UTIL'))} / 100", GPU_BY, f"{src}: `DCGM_FI_DEV_GPU_UTIL` (%) / 100"),
        Record(schema.GPU_MEMORY_USED, f"{by(used)} * {MIB}", GPU_BY, f"{src}: `DCGM_FI_DEV_FB_USED` (MiB) x 1048576"),
        # Used plus free: the framebuffer applications can use. The driver's reserved part
        # (DCGM_FI_DEV_FB_RESERVED) is never available to them, so it is left out, and "used = total"
        # means full.
        Record(schema.GPU_MEMORY_TOTAL, f"{by(f'{used} + {free}')} * {MIB}", GPU_BY, f"{src}: (`DCGM_FI_DEV_FB_USED` + `DCGM_FI_DEV_FB_FREE`) x 1048576"),
        Record(schema.GPU_TEMPERATURE, by(_gpu("DCGM_FI_DEV_GPU_TEMP")), GPU_BY, f"{src}: `DCGM_FI_DEV_GPU_TEMP`"),
        Record(schema.GPU_POWER, by(_gpu("DCGM_FI_DEV_POWER_USAGE")), GPU_BY, f"{src}: `DCGM_FI_DEV_POWER_USAGE`"),
        # err_msg is kept for the alert's text; the value is the XID itself.
        Record(
            GPU_LAST_XID,
            f"max by ({GPU_BY}, err_msg) ({_gpu('DCGM_FI_DEV_XID_ERRORS')})",
            f"{GPU_BY}, err_msg",
            f"{src}: `DCGM_FI_DEV_XID_ERRORS` (the last XID; its `err_msg` label is kept)",
        ),
    ]


def _container_records() -> list[Record]:
    src = "cAdvisor"
    return [
        # Summed over `cpu`: cAdvisor reports cpu="total", or per-CPU series when the per-CPU metrics
        # are on. Summed over containers too: a replaced container's last 5 minutes still count.
        Record(
            schema.CONTAINER_CPU,
            f"sum by ({CONTAINER_BY}) (rate({_container('container_cpu_usage_seconds_total')}[5m]))",
            CONTAINER_BY,
            f"{src}: `rate(container_cpu_usage_seconds_total[5m])`",
        ),
        Record(
            schema.CONTAINER_MEMORY,
            f"sum by ({CONTAINER_BY}) ({_container('container_memory_working_set_bytes')})",
            CONTAINER_BY,
            f"{src}: `container_memory_working_set_bytes`",
        ),
        # cAdvisor reports 0 for a container without a limit (any limit above 2^62 counts as none,
        # cadvisor metrics/prometheus.go specMemoryValue), so there is no limit series for it.
        Record(
            schema.CONTAINER_MEMORY_LIMIT,
            f"max by ({CONTAINER_BY}) ({_container('container_spec_memory_limit_bytes')} > 0)",
            CONTAINER_BY,
            f"{src}: `container_spec_memory_limit_bytes`, absent when it is 0 (no limit)",
        ),
    ]


def _model_load_records() -> list[Record]:
    model_container = f'container="{MODEL_CONTAINER}"'
    created = f"max by (env) ({_sel('container_start_time_seconds', CADVISOR_JOB, model_container)})"
    up = _sel("up", MISTRAL_JOB)
    on_env = "on (env) group_left ()"
    # Latch 1: the creation time, if Prometheus saw the container soon after it (see the module doc).
    load_start = (
        f"(last_over_time({LOAD_START.name}[{LATCH_WINDOW}]) == {created})"
        f" or ({created} and (time() - {created} <= {LOAD_START_SEEN_WITHIN_SECONDS}))"
    )
    # Latch 2: the first answer after that creation time. timestamp() of a bare selector is the
    # scrape's own time (of anything else it would be the evaluation time), hence the `and`.
    answered_at = f"max by ({SCHEMA_BY}) (timestamp({up}) and {up} == 1)"
    ready = (
        f"(last_over_time({READY.name}[{LATCH_WINDOW}]) >= {on_env} {LOAD_START.name})"
        f" or ({answered_at} > {on_env} {LOAD_START.name})"
    )
    return [
        Record(LOAD_START, load_start, "env", "cAdvisor: `container_start_time_seconds` of the mistral container (its creation time)"),
        Record(READY, ready, SCHEMA_BY, "the first successful scrape of the `mistral` job (`timestamp(up)`) after that"),
        Record(schema.MODEL_LOAD_SECONDS, f"{READY.name} - {on_env} {LOAD_START.name}", SCHEMA_BY, "the two above: ready minus created"),
    ]


def _tsdb_records() -> list[Record]:
    def prom(metric: str) -> str:
        return _sel(metric, PROMETHEUS_JOB)

    # What size-based retention counts (tsdb/db.go BeyondSizeRetention: Head().Size(), i.e. WAL plus
    # head chunks, plus every block). The out-of-order WBL counts too, but this stack does not enable
    # out-of-order ingestion. The WAL and head-chunk gauges exist since Prometheus 2.43.
    on_disk = " + ".join(
        prom(m)
        for m in (
            "prometheus_tsdb_storage_blocks_bytes",
            "prometheus_tsdb_wal_storage_size_bytes",
            "prometheus_tsdb_head_chunks_storage_size_bytes",
        )
    )
    # retention_limit_bytes is --storage.tsdb.retention.size as Prometheus parsed it; 0 means none.
    limit = prom("prometheus_tsdb_retention_limit_bytes")
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
    return [*_gpu_records(), *_container_records(), *_model_load_records(), *_tsdb_records()]


def recording_groups(cfg: StackConfig) -> list[dict]:
    return [{"name": GROUP, "rules": [r.prometheus_rule() for r in records(cfg)]}]


def raw_metrics(cfg: StackConfig, job: str) -> frozenset[str]:
    """The metric names the records read from `job`: what its scrape must keep."""
    found = set()
    for record in records(cfg):
        for name, matchers in _SELECTOR_RE.findall(record.expr):
            job_match = _JOB_RE.search(matchers)
            if job_match and job_match.group(1) == job:
                found.add(name)
    return frozenset(found)


def container_name_regex(cfg: StackConfig) -> str:
    """cAdvisor's `name` of the stack's own containers, the component name captured as $1."""
    prefix = cfg.container_name("").replace(".", r"\.")  # env names may hold a dot
    return f"{prefix}({'|'.join(schema.STACK_CONTAINERS)})"


# ---------------------------------------------------------------------------------------------
# Alerts. The KV-cache alerts (rules._kv_cache_alerts) are resource exhaustion alerts too; they are
# reused, not repeated here.
# ---------------------------------------------------------------------------------------------

_GPU_WHERE = "GPU {{ $labels.gpu }} ({{ $labels.modelName }}, {{ $labels.UUID }}) in {{ $labels.env }}"


def _pct(percent: int) -> str:
    return f"{percent / 100:g}"


def _gpu_memory_alerts(cfg: StackConfig) -> list[rules.AlertRule]:
    t = cfg.thresholds
    return [
        rules._alert(
            f"LLMGpuMemoryNearFull{severity.capitalize()}",
            f"{schema.GPU_MEMORY_USED.name} / {schema.GPU_MEMORY_TOTAL.name} > {_pct(percent)}",
            for_,
            severity,
            f"GPU {{{{ $labels.gpu }}}} framebuffer more than {percent}% used",
            f"{{{{ $value | humanizePercentage }}}} of the framebuffer of {_GPU_WHERE} is in use, above the "
            f"{severity} threshold of {percent}%. mistral.rs sizes its paged-attention KV cache to fill up "
            "to 90% of GPU memory by default; more than that means other allocations (another process, "
            "activations of long sequences) and out-of-memory errors are close.",
        )
        for severity, percent, for_ in (
            ("warning", t.gpu_memory_warning_percent, "5m"),
            ("critical", t.gpu_memory_critical_percent, "2m"),
        )
    ]


def _container_memory_alerts(cfg: StackConfig) -> list[rules.AlertRule]:
    t = cfg.thresholds
    return [
        rules._alert(
            f"LLMContainerMemoryNearLimit{severity.capitalize()}",
            # Only containers with a limit have a limit series, so unlimited ones never match.
            f"{schema.CONTAINER_MEMORY.name} / {schema.CONTAINER_MEMORY_LIMIT.name} > {_pct(percent)}",
            for_,
            severity,
            f"Container {{{{ $labels.container }}}} uses more than {percent}% of its memory limit",
            f"The {{{{ $labels.container }}}} container in {{{{ $labels.env }}}} has a working set of "
            f"{{{{ $value | humanizePercentage }}}} of its memory limit, above the {severity} threshold of "
            f"{percent}%. At the limit the kernel kills it (OOM) and Docker restarts it.",
        )
        for severity, percent, for_ in (
            ("warning", t.container_memory_warning_percent, "5m"),
            ("critical", t.container_memory_critical_percent, "2m"),
        )
    ]


def _tsdb_alerts(cfg: StackConfig) -> list[rules.AlertRule]:
    t = cfg.thresholds
    return [
        rules._alert(
            f"LLMPrometheusTsdbNearRetentionSize{severity.capitalize()}",
            f"{TSDB_RETENTION_USED.name} > {_pct(percent)}",
            for_,
            severity,
            f"Prometheus TSDB more than {percent}% of its retention size in {{{{ $labels.env }}}}",
            f"Prometheus's TSDB in {{{{ $labels.env }}}} (blocks, WAL and head chunks) takes "
            f"{{{{ $value | humanizePercentage }}}} of its retention size ({cfg.prometheus.retention_size}), above the "
            f"{severity} threshold of {percent}%. Past the retention size Prometheus deletes its oldest "
            f"blocks, so it keeps less history than the retention time ({cfg.prometheus.retention_time}).",
        )
        # The warning waits out compactions, which briefly hold a new block next to its sources.
        for severity, percent, for_ in (
            ("warning", t.tsdb_disk_warning_percent, "15m"),
            ("critical", t.tsdb_disk_critical_percent, "2m"),
        )
    ]


def _xid_alert(cfg: StackConfig) -> rules.AlertRule:
    return rules._alert(
        "LLMGpuXidError",
        f"{GPU_LAST_XID.name} > 0",
        # The value is the last XID and stays until the exporter restarts: there is no spike to wait out.
        "0s",
        "critical",
        "GPU {{ $labels.gpu }} reported XID {{ $value }}",
        f"The driver of {_GPU_WHERE} reported XID error {{{{ $value }}}} ({{{{ $labels.err_msg }}}}). "
        "Some XIDs are application faults, others mean the GPU needs a reset or replacement. The DCGM "
        "exporter keeps reporting the last XID until it restarts.",
    )


def alert_rules(cfg: StackConfig) -> list[rules.AlertRule]:
    """The resource alerts, in a stable order (rules.alert_rules places them)."""
    return [
        *_gpu_memory_alerts(cfg),
        _xid_alert(cfg),
        *_container_memory_alerts(cfg),
        *_tsdb_alerts(cfg),
    ]


def exhaustion_alerts(cfg: StackConfig) -> list[rules.AlertRule]:
    """Every resource-exhaustion alert, the reused KV-cache ones included (for the README)."""
    return [*_gpu_memory_alerts(cfg), *rules._kv_cache_alerts(cfg), *_container_memory_alerts(cfg), *_tsdb_alerts(cfg)]


# ---------------------------------------------------------------------------------------------
# The README's resources section (scripts/render writes it between the `resources` markers)
# ---------------------------------------------------------------------------------------------


def _names(names) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))


def readme_section(cfg: StackConfig) -> str:
    t = cfg.thresholds
    containers = r"\|".join(schema.STACK_CONTAINERS)  # a bare | would end the table cell
    record_rows = ["| record | unit | labels | from |", "|---|---|---|---|"]
    for r in records(cfg):
        record_rows.append(f"| `{r.signal.name}` | {r.signal.unit} | {r.labels} | {r.source} |")
    reused = {a.name for a in rules._kv_cache_alerts(cfg)}
    alert_rows = ["| alert | severity | fires when | for |", "|---|---|---|---|"]
    for a in exhaustion_alerts(cfg) + [_xid_alert(cfg)]:
        name = f"[`{a.name}`](docs/runbooks.md#{a.name.lower()})" + (" (the Prometheus section's)" if a.name in reused else "")
        alert_rows.append(f"| {name} | {a.severity} | `{a.expr}` | {a.for_} |")
    return f"""\
## Resources: GPU, containers, model load time and the TSDB

Mistral.rs exports no resource metrics, so they come from the exporters beside it: cAdvisor on
every stack and, on GPU hosts, NVIDIA's DCGM exporter (`components/exporters.py`), plus Prometheus's
own TSDB metrics. `llmstack/resource_rules.py` records them under the shared `llm:*` names the
dashboards query and writes the resource alerts over those names; `llmstack/rules.py` puts both in
the stack's rule files, next to the inference rules.

### Scrape jobs

| job | target | on | keeps |
|---|---|---|---|
| `{CADVISOR_JOB}` | `{schema.TARGETS['cadvisor'][0]}:{schema.TARGETS['cadvisor'][1]}` | every stack | {_names(raw_metrics(cfg, CADVISOR_JOB))}, and only the containers `llmstack-<env>-({containers})` |
| `{DCGM_JOB}` | `{schema.TARGETS['dcgm'][0]}:{schema.TARGETS['dcgm'][1]}` | stacks with `dcgmExporterEnabled` (by default: the cuda image, so prod) | {_names(raw_metrics(cfg, DCGM_JOB))} |

Both keep-lists are read from the recording rules' expressions, so a rule and its inputs cannot
drift apart. cAdvisor's `name` label is the Docker container name; the `cadvisor` job copies the
component part of it into a `container` label (`mistral`, `prometheus`, `grafana`), which the records
group by. Every series of both jobs gets the stack's `env`.

### Recording rules (group `{GROUP}`, file `rules/llm-recording.yml`)

{chr(10).join(record_rows)}

The GPU rules are in every stack's rule files. Without a DCGM job (the dev stack) they record
nothing: the dashboard's GPU panels show "No data" and no GPU alert can fire.
`llm:gpu_memory_total_bytes` is used plus free, the memory applications can use; the driver's
reserved part is not counted, so "used = total" means full.

### Model load time

`llm:model_load_seconds` is measured, not configured. mistral.rs loads the model before it binds its
port (v0.9.2 `mistralrs-cli/src/commands/serve.rs`), so the first scrape the server answers marks the
end of the load; the start is the container's creation time, which cAdvisor reports as
`container_start_time_seconds` (for Docker it reads the container's `Created`). Three records latch
the measurement:

1. `{LOAD_START.name}`: the creation time of the current mistral container, recorded only when
   Prometheus sees the container within {LOAD_START_SEEN_WITHIN_SECONDS // 60} minutes of its creation, so it was watching while
   the model loaded;
2. `{READY.name}`: the time of the first successful scrape after that;
3. `llm:model_load_seconds`: the difference, labelled like the other inference series (`engine`,
   `env`, `instance`, `model`).

Each latch keeps its value (`last_over_time` over {LATCH_WINDOW}, so a Prometheus restart keeps it too) for as
long as it belongs to the current container. What follows from that:

- Every new container is measured: the first deploy (model download plus load) and every `pulumi up`
  that replaces the container (a new image, model or flag). While it loads, there is no value.
- An in-place restart (a crash and the `unless-stopped` restart policy, or `docker restart`) keeps the
  container's creation time, so it is not measured again; the value stays the container's first load.
- The resolution is one scrape interval. A model that loads before cAdvisor reports the new container
  (its next scrape) reads up to that much too long.
- A container that Prometheus first sees more than {LOAD_START_SEEN_WITHIN_SECONDS // 60} minutes after its creation (monitoring
  added to a running server, a lost TSDB) gets no value rather than its age.

`tests/promtool/resources_test.yaml` checks a first deploy, a fast load, a replacement followed by an
in-place restart and a failed scrape, and a container first seen long after its creation.

### Resource exhaustion alerts

Thresholds come from config (defaults: GPU memory {t.gpu_memory_warning_percent}%/{t.gpu_memory_critical_percent}%, container memory
{t.container_memory_warning_percent}%/{t.container_memory_critical_percent}%, TSDB {t.tsdb_disk_warning_percent}%/{t.tsdb_disk_critical_percent}% of `prometheusRetentionSize`). The KV-cache alerts are the
Prometheus section's, listed here because a full KV cache is GPU memory running out too. A GPU XID
error pages at once, whatever the code.

{chr(10).join(alert_rows)}

- GPU memory: with paged attention, mistral.rs sizes its KV cache to fill 90% of the GPU's memory
  by default (`--pa-gpu-mem-usage`), so a loaded server already sits near the 90% warning. Where
  that is the normal state, raise `alertGpuMemoryWarningPercent` on that stack.
- Container memory: only containers with a memory limit can fire (cAdvisor reports 0 for none; the
  record then has no series): mistral when `mistralMemoryLimitMb` is set.
- TSDB: the size is what size-based retention counts (blocks, WAL and head chunks); the limit is
  `prometheus_tsdb_retention_limit_bytes`, the size Prometheus runs with. Past it Prometheus deletes
  its oldest blocks, so it keeps less history than `prometheusRetentionTime`. Give the volume room
  beyond the retention size: the stack does not watch the volume's free space. The WAL and
  head-chunk gauges exist since Prometheus 2.43 (the pinned image is v3.5.0).
- XID: the DCGM exporter reports the *last* XID and keeps it until the exporter restarts
  (NVIDIA/dcgm-exporter#500), so the alert stays on after the event; the runbook says how to clear it.

Every alert has a firing case, a spike that stays quiet and a healthy case in
`tests/promtool/resources_test.yaml`; its detection time is in the Prometheus section's table.
"""


def _register_readme() -> None:
    from .artifacts import README_SECTIONS, stack_config

    README_SECTIONS["resources"] = lambda: readme_section(stack_config("dev"))


_register_readme()
