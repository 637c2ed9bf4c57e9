"""Resource alerts: GPU memory, container memory against its limit, the TSDB against its retention
size, and GPU XID errors. The KV-cache alerts are resource exhaustion too; they live with the
inference alerts (inference.kv_cache_alerts) and are not repeated here."""

from __future__ import annotations

from .. import signals as s
from ..config import StackConfig
from .base import AlertRule, alert, ratio, tiered
from .inference import kv_cache_alerts

_GPU_WHERE = "GPU {{ $labels.gpu }} ({{ $labels.modelName }}, {{ $labels.UUID }}) in {{ $labels.env }}"


def _gpu_memory_alerts(cfg: StackConfig) -> list[AlertRule]:
    t = cfg.thresholds

    def build(severity: str, percent: int) -> tuple[str, str, str]:
        return (
            f"{s.GPU_MEMORY_USED.name} / {s.GPU_MEMORY_TOTAL.name} > {ratio(percent)}",
            f"GPU {{{{ $labels.gpu }}}} framebuffer more than {percent}% used",
            f"{{{{ $value | humanizePercentage }}}} of the framebuffer of {_GPU_WHERE} is in use, above the "
            f"{severity} threshold of {percent}%. mistral.rs sizes its paged-attention KV cache to fill up "
            "to 90% of GPU memory by default; more than that means other allocations (another process, "
            "activations of long sequences) and out-of-memory errors are close.",
        )

    levels = [("warning", t.gpu_memory_warning_percent, "5m"), ("critical", t.gpu_memory_critical_percent, "2m")]
    return tiered(cfg, "LLMGpuMemoryNearFull", levels, build, identity=("env", "gpu", "UUID"))


def _container_memory_alerts(cfg: StackConfig) -> list[AlertRule]:
    t = cfg.thresholds

    def build(severity: str, percent: int) -> tuple[str, str, str]:
        return (
            # A container without a limit is measured against the host's memory (the limit record).
            f"{s.CONTAINER_MEMORY.name} / {s.CONTAINER_MEMORY_LIMIT.name} > {ratio(percent)}",
            f"Container {{{{ $labels.container }}}} uses more than {percent}% of its memory limit",
            f"The {{{{ $labels.container }}}} container in {{{{ $labels.env }}}} has a working set of "
            f"{{{{ $value | humanizePercentage }}}} of its memory limit (the host's memory when it has none), above the "
            f"{severity} threshold of {percent}%. At the limit the kernel kills it (OOM) and Docker restarts it.",
        )

    levels = [("warning", t.container_memory_warning_percent, "5m"), ("critical", t.container_memory_critical_percent, "2m")]
    return tiered(cfg, "LLMContainerMemoryNearLimit", levels, build, identity=("env", "container"))


def _tsdb_alerts(cfg: StackConfig) -> list[AlertRule]:
    t, p = cfg.thresholds, cfg.prometheus

    def build(severity: str, percent: int) -> tuple[str, str, str]:
        return (
            f"{s.TSDB_RETENTION_USED.name} > {ratio(percent)}",
            f"Prometheus TSDB more than {percent}% of its retention size in {{{{ $labels.env }}}}",
            f"Prometheus's TSDB in {{{{ $labels.env }}}} (blocks, WAL and head chunks) takes "
            f"{{{{ $value | humanizePercentage }}}} of its retention size ({p.retention_size}), above the "
            f"{severity} threshold of {percent}%. Past the retention size Prometheus deletes its oldest "
            f"blocks, so it keeps less history than the retention time ({p.retention_time}).",
        )

    # The warning waits out compactions, which briefly hold a new block next to its sources.
    levels = [("warning", t.tsdb_disk_warning_percent, "15m"), ("critical", t.tsdb_disk_critical_percent, "2m")]
    return tiered(cfg, "LLMPrometheusTsdbNearRetentionSize", levels, build, identity=("env",))


def xid_alert(cfg: StackConfig) -> AlertRule:
    return alert(
        cfg,
        "LLMGpuXidError",
        f"{s.GPU_LAST_XID.name} > 0",
        # The value is the last XID and stays until the exporter restarts: there is no spike to wait out.
        "0s",
        "critical",
        "GPU {{ $labels.gpu }} reported XID {{ $value }}",
        f"The driver of {_GPU_WHERE} reported XID error {{{{ $value }}}} ({{{{ $labels.err_msg }}}}). "
        "Some XIDs are application faults, others mean the GPU needs a reset or replacement. The DCGM "
        "exporter keeps reporting the last XID until it restarts.",
    )


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    """The resource alerts, in a stable order."""
    return [
        *_gpu_memory_alerts(cfg),
        xid_alert(cfg),
        *_container_memory_alerts(cfg),
        *_tsdb_alerts(cfg),
    ]




def exhaustion_alerts(cfg: StackConfig) -> list[AlertRule]:
    """Every resource-exhaustion alert, the KV-cache ones included (for the docs)."""
    return [*_gpu_memory_alerts(cfg), *kv_cache_alerts(cfg), *_container_memory_alerts(cfg), *_tsdb_alerts(cfg)]
