"""Fakes for the resource exporters beside the model server: cAdvisor and NVIDIA's DCGM exporter.

FakeCadvisor -- **google/cadvisor v0.60.5** (commit 44b8e3062d678022939d40b2a2e9b259b07ebab0,
    2026-07-11; newest release stored; in v0.52.x the same collector lived in
    ``metrics/prometheus.go``), files ``lib/metrics/prometheus.go`` (collector, HELP strings, label
    functions, timestamps), ``cmd/cadvisor.go`` (default ``--disable_metrics`` set,
    ``--store_container_labels=true``), ``cmd/internal/http/handlers.go`` (own registry with the Go
    and process collectors, no promhttp_* metrics), ``lib/container/libcontainer/handler.go``
    (per-CPU usage only when the cgroup reports it) and ``lib/metrics/testdata/prometheus_metrics``.
    Upstream renders with client_golang, this fake with prometheus_client: same names, types, labels
    and timestamps; formatting such as ``40.0`` for client_golang's ``40`` parses the same.

    * Labels: ``DefaultContainerLabels`` gives ``id`` (cgroup path), ``name`` (first alias: the Docker
      container name), ``image``, ``container_label_<docker label>`` for every Docker label and
      ``container_env_<VAR>`` for whitelisted env vars (none by default). The label *names* are the
      union over all containers, so a container without some Docker label gets it as ``""``.
      Docker labels are passed in with ``docker_labels``; none by default.
    * ``container_cpu_usage_seconds_total`` has an extra ``cpu`` label: ``cpu="total"`` when the
      cgroup has no per-CPU breakdown (cgroup v2, today's Docker default, modelled here), else
      ``cpu00``, ``cpu01``... (cgroup v1).
    * Per-container stats carry a millisecond timestamp (``NewMetricWithTimestamp``);
      ``container_start_time_seconds`` and ``container_spec_*`` do not. ``container_last_seen`` is the
      scrape time in whole seconds.
    * ``id`` is the systemd-driver cgroup path ``/system.slice/docker-<64 hex>.scope``.
    * ``machine_memory_bytes`` (gauge, "Amount of memory installed on the machine.") is the host's
      memory, MemTotal of /proc/meminfo, from the machine collector: ``metrics/prometheus_machine.go``
      in **v0.53.0**, the release the stack pins (``lib/metrics/prometheus_machine.go`` in v0.60.5,
      unchanged for this family), ``machine/info.go`` and ``manager/manager.go``. Its labels are
      ``boot_id, machine_id, system_uuid`` only (no ``id``/``name``/``image``: it is no container's),
      and it carries the timestamp of cAdvisor's last read of the machine's info: the process start,
      then every ``--update_machine_info_interval`` (5m) on a ticker, so up to 5 minutes old.
      Always emitted, whatever ``--enable_metrics`` says.
    * Only these families are emitted: container_cpu_usage_seconds_total, container_last_seen,
      container_memory_usage_bytes, container_memory_working_set_bytes, container_scrape_error,
      container_spec_memory_limit_bytes, container_start_time_seconds, machine_memory_bytes and the
      runtime subset go_goroutines, go_threads, process_cpu_seconds_total,
      process_resident_memory_bytes, process_start_time_seconds. The real one emits ~100 families
      (the other ``machine_*`` ones too), and also series for the root cgroup ``/`` and system slices
      (``name=""``, ``image=""``), which this fake leaves out.

FakeDcgm -- **NVIDIA/dcgm-exporter 4.5.3-4.8.2** (commit 691c92762eb551313c825f6efe4ceeee20982801,
    2026-05-06), files ``etc/default-counters.csv`` (names, types, HELP texts),
    ``internal/pkg/rendermetrics/render_metrics.go`` (the text template that prints each line),
    ``internal/pkg/collector/gpu_collector.go`` (labels, ``%d``/``%f`` value formatting, XID
    ``err_code``/``err_msg`` attributes), ``internal/pkg/collector/xid_errors.go`` (XID texts) and
    ``internal/pkg/counters/types.go`` (counters are ordered by DCGM field id; ids read from
    NVIDIA/go-dcgm ``pkg/dcgm/dcgm_fields.h``). The exporter prints these with its own template,
    not client_golang:

    * labels ``gpu, UUID, pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION`` on every
      series (``label``-type CSV rows such as ``DCGM_FI_DRIVER_VERSION`` become labels; ``Hostname``
      is omitted with ``--no-hostname``; ``uuid`` lower-case only with ``--use-old-namespace``), and
      ``err_code, err_msg`` on XID series.
    * Upstream prints INT64 fields with ``%d`` (GPU_TEMP, GPU_UTIL, XID_ERRORS, FB_USED, FB_FREE) and
      DOUBLE fields with ``%f`` (POWER_USAGE ``350.250000``); prometheus_client prints ``62.0`` and
      ``350.25``, which Prometheus parses to the same values. Label order follows prometheus_client
      (sorted) rather than the template's.
    * Families emitted (a subset of the default CSV): DCGM_FI_DEV_GPU_TEMP (150),
      DCGM_FI_DEV_POWER_USAGE (155), DCGM_FI_DEV_GPU_UTIL (203), DCGM_FI_DEV_XID_ERRORS (230),
      DCGM_FI_DEV_FB_FREE (251), DCGM_FI_DEV_FB_USED (252), DCGM_FI_PROF_PIPE_TENSOR_ACTIVE (1004;
      profiling metrics exist only on datacenter GPUs, ``profiling=False`` drops it).

Default GPU model, driver version, host name and images are placeholders; pass real ones.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from .base import FakeExporterBase, Registry

CADVISOR_VERSION = "v0.60.5"
CADVISOR_COMMIT = "44b8e3062d678022939d40b2a2e9b259b07ebab0"
DCGM_EXPORTER_VERSION = "4.5.3-4.8.2"
DCGM_EXPORTER_COMMIT = "691c92762eb551313c825f6efe4ceeee20982801"

GIB = 1024 ** 3


def _sanitize_label_name(name: str) -> str:
    """cAdvisor sanitizeLabelName: anything outside [a-zA-Z0-9_] becomes '_'."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


# ==================================================================================================
# cAdvisor


@dataclass(frozen=True)
class ContainerShape:
    working_set_ratio: float  # of the memory limit
    cache_ratio: float  # page cache counted in usage but not in the working set
    cpu_cores: float  # cpu-seconds per second


class FakeCadvisor(FakeExporterBase):
    SCENARIOS = ("healthy", "memory_pressure")

    # The images the stack pins by default (llmstack/config.py), as cAdvisor's `image` label shows them.
    DEFAULT_IMAGES = {
        "mistral": "ghcr.io/ericlbuehler/mistral.rs:cuda128-sm90-0.9.2",
        "prometheus": "prom/prometheus:v3.5.0",
        "grafana": "grafana/grafana:12.2.1",
    }
    MEMORY_PRESSURE_RATIO = 0.97
    # families whose samples carry cAdvisor's collection timestamp (the others carry none)
    STAMPED = ("container_cpu_usage_seconds_total", "container_last_seen", "container_memory_usage_bytes",
               "container_memory_working_set_bytes")
    # per-container healthy shapes; unknown names use "default"
    HEALTHY = {
        "mistral": ContainerShape(0.40, 0.05, 1.5),
        "prometheus": ContainerShape(0.05, 0.02, 0.10),
        "grafana": ContainerShape(0.03, 0.01, 0.05),
        "default": ContainerShape(0.05, 0.01, 0.05),
    }
    DEFAULT_MACHINE_MEMORY = 64 * GIB  # ratios apply to the machine's memory when a container has no limit (0)
    # manager/manager.go --update_machine_info_interval: how often cAdvisor reads the machine's info again
    MACHINE_INFO_INTERVAL_S = 300.0
    MACHINE_MEMORY = "machine_memory_bytes"
    MACHINE_LABELS = ("boot_id", "machine_id", "system_uuid")  # as client_golang prints them (sorted)

    HELP = {
        "container_cpu_usage_seconds_total": "Cumulative cpu time consumed in seconds.",
        "container_last_seen": "Last time a container was seen by the exporter",
        "container_memory_usage_bytes": "Current memory usage in bytes, including all memory regardless of when it was accessed",
        "container_memory_working_set_bytes": "Current working set in bytes.",
        "container_scrape_error": "1 if there was an error while getting container metrics, 0 otherwise",
        "container_spec_memory_limit_bytes": "Memory limit for the container.",
        "container_start_time_seconds": "Start time of the container since unix epoch in seconds.",
        "machine_memory_bytes": "Amount of memory installed on the machine.",
    }

    def __init__(
        self,
        containers: Sequence[str] = ("mistral", "prometheus", "grafana"),
        memory_limit_bytes: Union[int, Mapping[str, int]] = 16 * GIB,
        host: str = "127.0.0.1",
        port: int = 0,
        images: Optional[Mapping[str, str]] = None,
        docker_labels: Optional[Mapping[str, Mapping[str, str]]] = None,
        start_time: Optional[float] = None,
        model_container: str = "mistral",
        clock: Callable[[], float] = time.time,
        timestamps: bool = True,
        machine_memory_bytes: int = DEFAULT_MACHINE_MEMORY,
        machine_id: Optional[str] = None,
        system_uuid: Optional[str] = None,
        boot_id: Optional[str] = None,
    ):
        super().__init__(host, port)
        self.containers = tuple(containers)
        if not self.containers:
            raise ValueError("need at least one container")
        self._clock = clock
        self.timestamps = timestamps
        self.model_container = model_container if model_container in self.containers else self.containers[0]
        if isinstance(memory_limit_bytes, Mapping):
            self.memory_limits = {c: int(memory_limit_bytes.get(c, 0)) for c in self.containers}
        else:
            self.memory_limits = {c: int(memory_limit_bytes) for c in self.containers}
        imgs = dict(self.DEFAULT_IMAGES)
        imgs.update(images or {})
        self.images = {c: imgs.get(c, f"{c}:latest") for c in self.containers}
        self.docker_labels = {c: dict((docker_labels or {}).get(c, {})) for c in self.containers}
        self.machine_memory_bytes = int(machine_memory_bytes)
        # /etc/machine-id (32 hex), /sys/class/dmi/id/product_uuid, /proc/sys/kernel/random/boot_id
        digest = hashlib.sha256(b"fake-cadvisor/machine").hexdigest()
        uuid = lambda h: f"{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"  # noqa: E731
        self.machine_labels = {
            "boot_id": boot_id if boot_id is not None else uuid(digest[32:64]),
            "machine_id": machine_id if machine_id is not None else digest[0:32],
            "system_uuid": system_uuid if system_uuid is not None else uuid(hashlib.sha256(b"fake-cadvisor/dmi").hexdigest()),
        }
        now = clock()
        self.start_times = {c: float(int(start_time if start_time is not None else now - 3600)) for c in self.containers}
        # cgroup cpu usage (seconds); lives in the kernel, so it survives cAdvisor restarts
        self._cpu = {c: 10.0 * self.HEALTHY.get(c, self.HEALTHY["default"]).cpu_cores for c in self.containers}
        self.ids = {
            c: "/system.slice/docker-" + hashlib.sha256(("fake-cadvisor/" + c).encode()).hexdigest() + ".scope"
            for c in self.containers
        }
        # label names: union over all containers (collectContainersInfo rawLabels)
        extra = sorted({"container_label_" + k for c in self.containers for k in self.docker_labels[c]})
        self._raw_label_keys = ["id", "name", "image"] + extra
        self.label_names = tuple(_sanitize_label_name(k) for k in self._raw_label_keys)
        r = self.registry = Registry()
        h = self.HELP
        ln = self.label_names
        r.counter("container_cpu_usage_seconds_total", h["container_cpu_usage_seconds_total"], ln + ("cpu",))
        r.gauge("container_last_seen", h["container_last_seen"], ln)
        r.gauge("container_memory_usage_bytes", h["container_memory_usage_bytes"], ln)
        r.gauge("container_memory_working_set_bytes", h["container_memory_working_set_bytes"], ln)
        r.gauge("container_scrape_error", h["container_scrape_error"])
        r.gauge("container_spec_memory_limit_bytes", h["container_spec_memory_limit_bytes"], ln)
        r.gauge("container_start_time_seconds", h["container_start_time_seconds"], ln)
        r.gauge("go_goroutines", "Number of goroutines that currently exist.")
        r.gauge("go_threads", "Number of OS threads created.")
        r.gauge(self.MACHINE_MEMORY, h[self.MACHINE_MEMORY], self.MACHINE_LABELS)
        r.counter("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.")
        r.gauge("process_resident_memory_bytes", "Resident memory size in bytes.")
        r.gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.")
        self._reset_process_locked()

    # -- labels -------------------------------------------------------------------------------
    def labels_for(self, container: str) -> Tuple[str, ...]:
        values = {"id": self.ids[container], "name": container, "image": self.images[container]}
        for k, v in self.docker_labels[container].items():
            values["container_label_" + k] = v
        return tuple(values.get(k, "") for k in self._raw_label_keys)

    # -- state --------------------------------------------------------------------------------
    def _reset_process_locked(self) -> None:
        # A restart of cAdvisor itself: cgroup counters live in the kernel, so they do NOT reset.
        r = self.registry
        r.clear()
        self.process_start_time = self._clock()
        self.machine_info_time = self.process_start_time  # read once at start (manager.New)
        r["container_scrape_error"].set((), 0)
        r["go_goroutines"].set((), 40)
        r["go_threads"].set((), 12)
        r["process_cpu_seconds_total"].ensure()
        r["process_resident_memory_bytes"].set((), 62_914_560)
        r["process_start_time_seconds"].set((), round(self.process_start_time, 2))
        r[self.MACHINE_MEMORY].set(tuple(self.machine_labels[k] for k in self.MACHINE_LABELS), self.machine_memory_bytes)
        for c in self.containers:
            key = self.labels_for(c)
            r["container_start_time_seconds"].set(key, self.start_times[c])
            r["container_spec_memory_limit_bytes"].set(key, self.memory_limits[c])
        self._apply_gauges_locked()

    def set_start_time(self, container: str, unix_seconds: float, reset_counters: bool = True) -> None:
        """Set a container's start time, e.g. to simulate a container restart. With reset_counters
        the container's cgroup counters start again (a restarted container gets a fresh cgroup)."""
        with self._lock:
            self.start_times[container] = float(int(unix_seconds))
            if reset_counters:
                self._cpu[container] = 0.0
            self._apply_gauges_locked()

    def shape_for(self, container: str) -> ContainerShape:
        base = self.HEALTHY.get(container, self.HEALTHY["default"])
        if self._scenario == "memory_pressure" and container == self.model_container:
            return ContainerShape(self.MEMORY_PRESSURE_RATIO, 0.02, base.cpu_cores)
        return base

    def _apply_gauges_locked(self) -> None:
        r = self.registry
        for c in self.containers:
            s = self.shape_for(c)
            limit = self.memory_limits[c]
            basis = limit if limit > 0 else self.machine_memory_bytes
            ws = int(s.working_set_ratio * basis)
            usage = min(basis, ws + int(s.cache_ratio * basis))
            key = self.labels_for(c)
            r["container_memory_working_set_bytes"].set(key, ws)
            r["container_memory_usage_bytes"].set(key, usage)
            r["container_start_time_seconds"].set(key, self.start_times[c])
            if self._cpu[c] > 0:  # cAdvisor emits cpu="total" only when Usage.Total > 0
                r["container_cpu_usage_seconds_total"].set(key + ("total",), self._cpu[c])
            else:
                r["container_cpu_usage_seconds_total"].remove(key + ("total",))

    def _advance_locked(self, seconds: float) -> None:
        r = self.registry
        for c in self.containers:
            self._cpu[c] += self.shape_for(c).cpu_cores * seconds
        r["process_cpu_seconds_total"].inc((), 0.02 * seconds)

    def collect(self) -> Iterator[Metric]:
        # cAdvisor reads container stats when it is scraped and stamps them with the time it read them.
        now = self._clock()
        r = self.registry
        for c in self.containers:
            r["container_last_seen"].set(self.labels_for(c), float(int(now)))
        for name in self.STAMPED:
            r[name].timestamp = now if self.timestamps else None
        # The machine's info is read again on a ticker, not when scraped: its time is the last tick.
        ticks = max(0, int((now - self.machine_info_time) // self.MACHINE_INFO_INTERVAL_S))
        self.machine_info_time += ticks * self.MACHINE_INFO_INTERVAL_S
        r[self.MACHINE_MEMORY].timestamp = self.machine_info_time if self.timestamps else None
        return r.collect()


# ==================================================================================================
# DCGM exporter


@dataclass(frozen=True)
class DcgmField:
    field_id: int
    name: str
    help: str


# from etc/default-counters.csv (4.5.3-4.8.2), where all of these are gauges; ids from go-dcgm dcgm_fields.h
DCGM_FIELDS: Tuple[DcgmField, ...] = (
    DcgmField(150, "DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C)."),
    DcgmField(155, "DCGM_FI_DEV_POWER_USAGE", "Power draw (in W)."),
    DcgmField(203, "DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %)."),
    DcgmField(230, "DCGM_FI_DEV_XID_ERRORS", "Value of the last XID error encountered."),
    DcgmField(251, "DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB)."),
    DcgmField(252, "DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB)."),
    DcgmField(1004, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "Ratio of cycles the tensor (HMMA) pipe is active."),
)
XID_FIELD = "DCGM_FI_DEV_XID_ERRORS"

# internal/pkg/collector/xid_errors.go (only the codes the scenarios use)
XID_TEXT = {0: "No Error", 79: "GPU has fallen off the bus"}
UNKNOWN_XID_TEXT = "Unknown Error"  # gpu_collector.go unknownErr


@dataclass(frozen=True)
class GpuShape:
    temp_c: int
    power_w: float
    util_pct: int
    xid: int
    fb_used_ratio: float
    tensor_active: float


class FakeDcgm(FakeExporterBase):
    SCENARIOS = ("healthy", "gpu_memory_full", "xid_errors")
    FIELDS = DCGM_FIELDS
    GPU_MEMORY_FULL_RATIO = 0.97
    XID_SCENARIO_CODE = 79
    SHAPES = {
        "healthy": GpuShape(62, 350.25, 65, 0, 0.60, 0.35),
        "gpu_memory_full": GpuShape(71, 610.5, 95, 0, 0.97, 0.55),
        "xid_errors": GpuShape(62, 350.25, 65, 79, 0.60, 0.35),
    }

    def __init__(
        self,
        gpus: int = 1,
        fb_total_mib: int = 81920,
        host: str = "127.0.0.1",
        port: int = 0,
        model_name: str = "NVIDIA H100 80GB HBM3",
        driver_version: str = "570.133.20",
        hostname: str = "gpu-host",
        profiling: bool = True,
    ):
        super().__init__(host, port)
        self.gpus = int(gpus)
        self.fb_total_mib = int(fb_total_mib)
        self.model_name = model_name
        self.driver_version = driver_version
        self.hostname = hostname
        self.profiling = profiling
        self._values: Dict[Tuple[str, int], Union[int, float]] = {}
        self._apply_gauges_locked()

    def uuid(self, gpu: int) -> str:
        h = hashlib.sha256(f"fake-dcgm/{gpu}".encode()).hexdigest()
        return f"GPU-{h[0:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"

    @staticmethod
    def pci_bus_id(gpu: int) -> str:
        return f"00000000:{0x18 + 0x10 * gpu:02X}:00.0"

    def fields(self) -> List[DcgmField]:
        return [f for f in self.FIELDS if self.profiling or not f.name.startswith("DCGM_FI_PROF_")]

    def value(self, field: str, gpu: int = 0) -> Union[int, float]:
        return self._values[(field, gpu)]

    def _apply_gauges_locked(self) -> None:
        s = self.SHAPES[self._scenario]
        for g in range(self.gpus):
            used = round(s.fb_used_ratio * self.fb_total_mib)
            self._values.update({
                ("DCGM_FI_DEV_GPU_TEMP", g): s.temp_c,
                ("DCGM_FI_DEV_POWER_USAGE", g): s.power_w,
                ("DCGM_FI_DEV_GPU_UTIL", g): s.util_pct,
                ("DCGM_FI_DEV_XID_ERRORS", g): s.xid,
                ("DCGM_FI_DEV_FB_FREE", g): self.fb_total_mib - used,
                ("DCGM_FI_DEV_FB_USED", g): used,
                ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", g): s.tensor_active,
            })

    def _advance_locked(self, seconds: float) -> None:
        pass  # every emitted field is a gauge; scenarios set them

    def _reset_process_locked(self) -> None:
        self._apply_gauges_locked()

    def _gpu_labels(self, gpu: int) -> Dict[str, str]:
        labels = {"gpu": str(gpu), "UUID": self.uuid(gpu), "pci_bus_id": self.pci_bus_id(gpu),
                  "device": f"nvidia{gpu}", "modelName": self.model_name}
        if self.hostname:  # an empty host name stands for --no-hostname
            labels["Hostname"] = self.hostname
        labels["DCGM_FI_DRIVER_VERSION"] = self.driver_version
        return labels

    def collect(self) -> Iterator[Metric]:
        # dcgm-exporter prints every field of every GPU from its latest reading, so no series waits
        # for a first touch, and the XID series changes labels when the error code does.
        for f in self.fields():
            xid = f.name == XID_FIELD
            names = [*self._gpu_labels(0), *(["err_code", "err_msg"] if xid else [])]
            family = GaugeMetricFamily(f.name, f.help, labels=names)
            for g in range(self.gpus):
                v = self._values[(f.name, g)]
                extra = [str(v), XID_TEXT.get(v, UNKNOWN_XID_TEXT)] if xid else []
                family.add_metric([*self._gpu_labels(g).values(), *extra], v)
            yield family
