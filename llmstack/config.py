"""Typed, validated stack configuration.

Everything the program needs from `pulumi config` is read here, once, and turned into frozen
dataclasses. Validation collects *every* problem before raising, so a user fixes a bad stack file in
one round trip, and `__main__` raises before the first resource is registered: an invalid config can
never leave a half-built stack behind.

This module does not import Pulumi. It reads through a small `ConfigSource` protocol so the same
code is exercised by the unit tests (a dict) and by the real program (`pulumi.Config`). Secret values
are opaque handles (a `pulumi.Output` in the real program): this module only checks that they are
present and that they were stored encrypted, never what they contain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

# Keys whose values must be stored with `pulumi config set --secret`.
SECRET_KEYS = (
    "hfToken",
    "grafanaAuth",
    "alertSlackUrl",
    "alertWebhookUrl",
    "alertWebhookPassword",
    "alertPagerdutyKey",
)

MISTRAL_IMAGE_REPO = "ghcr.io/ericlbuehler/mistral.rs"
# The first release with engine metrics and TTFT/ITL histograms (see docs/upstream.md).
MISTRAL_MIN_VERSION = (0, 9, 2)

IMAGE_FLAVOURS = ("cpu", "cuda")
# The CUDA images are built per CUDA toolkit and compute capability: cudaNNN-smCC.
CUDA_VARIANT_RE = re.compile(r"^cuda\d{3}-sm(80|86|89|90|100|120)$")
# `mistralrs serve --isq` accepts numeric levels or raw quant names (mistralrs-cli/src/args/model.rs);
# "none" means no --isq flag.
ISQ_LEVELS = (
    "none",
    "2", "3", "4", "5", "6", "8",
    "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q8_1",
    "q2k", "q3k", "q4k", "q5k", "q6k", "q8k",
    "hqq4", "hqq8",
    "fp8",
    "afq2", "afq3", "afq4", "afq6", "afq8",
)
PAGED_ATTN_MODES = ("auto", "on", "off")
OLLAMA_EXPORTERS = ("norskhelsenett", "seed")

_DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
_SIZE_RE = re.compile(r"^[0-9]+(B|KB|MB|GB|TB|PB|EB)$")
_VERSION_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")
_HOSTPORT_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?:(\d{1,5})$")
_LABEL_VALUE_RE = re.compile(r"^[A-Za-z0-9_.\-]+$")


class ConfigError(Exception):
    """One or more config keys are invalid; the message lists every one of them."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__(
            "invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in self.problems)
        )


class ConfigSource(Protocol):
    def get(self, key: str) -> Optional[str]: ...

    def get_secret(self, key: str) -> Any: ...

    def is_secret(self, key: str) -> bool: ...


@dataclass(frozen=True)
class DictSource:
    """A plain-dict config source, for renderers and tests that run without Pulumi."""

    values: dict = field(default_factory=dict)
    secret_keys: frozenset = frozenset()

    def get(self, key: str) -> Optional[str]:
        value = self.values.get(key)
        return None if value is None else str(value)

    def get_secret(self, key: str) -> Any:
        return self.values.get(key)

    def is_secret(self, key: str) -> bool:
        return key in self.secret_keys


# ---------------------------------------------------------------------------------------------
# The typed configuration
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MistralConfig:
    image_flavour: str
    version: str
    cuda_variant: str
    model_id: str
    port: int
    host: str
    max_seqs: int
    isq: str
    paged_attn: str
    gpu_device_ids: tuple[str, ...]
    publish_address: str
    publish_port: int
    memory_limit_mb: int
    hf_token: Any = None  # opaque secret handle, or None

    @property
    def image(self) -> str:
        prefix = "cpu" if self.image_flavour == "cpu" else self.cuda_variant
        return f"{MISTRAL_IMAGE_REPO}:{prefix}-{self.version}"

    @property
    def uses_gpu(self) -> bool:
        return self.image_flavour == "cuda"


@dataclass(frozen=True)
class OllamaTarget:
    exporter: str
    address: str  # host:port
    metrics_path: str


@dataclass(frozen=True)
class PrometheusConfig:
    image: str
    scrape_interval: str
    evaluation_interval: str
    scrape_timeout: str
    retention_time: str
    retention_size: str
    publish_address: str
    publish_port: int
    ollama_targets: tuple[OllamaTarget, ...]


@dataclass(frozen=True)
class AlertThresholds:
    latency_p95_warning_seconds: int
    latency_p95_critical_seconds: int
    ttft_p95_warning_seconds: int
    error_ratio_warning_percent: int
    error_ratio_critical_percent: int
    kv_cache_warning_percent: int
    kv_cache_critical_percent: int
    queue_saturation_for: str
    gpu_memory_warning_percent: int
    gpu_memory_critical_percent: int
    container_memory_warning_percent: int
    container_memory_critical_percent: int
    tsdb_disk_warning_percent: int
    tsdb_disk_critical_percent: int


@dataclass(frozen=True)
class GrafanaConfig:
    url: Optional[str]  # None: provision Grafana in the stack
    auth: Any  # secret API token for an existing Grafana
    image: str
    admin_user: str
    publish_address: str
    publish_port: int

    @property
    def provisioned(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class AlertingConfig:
    slack_url: Any
    slack_channel: Optional[str]
    email_addresses: tuple[str, ...]
    webhook_url: Any
    webhook_user: Optional[str]
    webhook_password: Any
    pagerduty_key: Any
    group_wait: str
    group_interval: str
    repeat_interval: str


@dataclass(frozen=True)
class ExportersConfig:
    cadvisor_image: str
    dcgm_enabled: bool
    dcgm_image: str


@dataclass(frozen=True)
class StackConfig:
    env: str
    mistral: MistralConfig
    prometheus: PrometheusConfig
    thresholds: AlertThresholds
    grafana: GrafanaConfig
    alerting: AlertingConfig
    exporters: ExportersConfig
    retain_data_on_delete: bool

    @property
    def network_name(self) -> str:
        return f"llmstack-{self.env}"

    def container_name(self, component: str) -> str:
        return f"llmstack-{self.env}-{component}"


# ---------------------------------------------------------------------------------------------
# Defaults: the single place they live. Pulumi.yaml's schema repeats them for `pulumi config`
# users; tests/test_config.py checks that both agree.
# ---------------------------------------------------------------------------------------------

DEFAULTS: dict[str, Any] = {
    "mistralImageFlavour": "cpu",
    "mistralVersion": "0.9.2",
    "mistralCudaVariant": "cuda128-sm90",
    "mistralPort": 1234,
    "mistralHost": "0.0.0.0",
    "mistralMaxSeqs": 16,
    "mistralIsq": "none",
    "mistralPagedAttn": "auto",
    "mistralGpuDeviceIds": [],
    "mistralPublishAddress": "127.0.0.1",
    "mistralPublishPort": 1234,
    "mistralMemoryLimitMb": 0,
    "prometheusImage": "prom/prometheus:v3.5.0",
    "scrapeInterval": "15s",
    "evaluationInterval": "15s",
    "scrapeTimeout": "10s",
    "prometheusRetentionTime": "15d",
    "prometheusRetentionSize": "10GB",
    "prometheusPublishAddress": "127.0.0.1",
    "prometheusPublishPort": 9090,
    "ollamaTargets": [],
    "alertLatencyP95WarningSeconds": 10,
    "alertLatencyP95CriticalSeconds": 30,
    "alertTtftP95WarningSeconds": 5,
    "alertErrorRatioWarningPercent": 5,
    "alertErrorRatioCriticalPercent": 20,
    "alertKvCacheWarningPercent": 90,
    "alertKvCacheCriticalPercent": 98,
    "alertQueueSaturationFor": "5m",
    "alertGpuMemoryWarningPercent": 90,
    "alertGpuMemoryCriticalPercent": 97,
    "alertContainerMemoryWarningPercent": 90,
    "alertContainerMemoryCriticalPercent": 97,
    "alertTsdbDiskWarningPercent": 80,
    "alertTsdbDiskCriticalPercent": 95,
    "grafanaUrl": "",
    "grafanaImage": "grafana/grafana:12.2.1",
    "grafanaAdminUser": "admin",
    "grafanaPublishAddress": "127.0.0.1",
    "grafanaPublishPort": 3000,
    "alertSlackChannel": "",
    "alertEmailAddresses": [],
    "alertWebhookUser": "",
    "alertGroupWait": "30s",
    "alertGroupInterval": "5m",
    "alertRepeatInterval": "4h",
    "hfToken": "",
    "grafanaAuth": "",
    "alertSlackUrl": "",
    "alertWebhookUrl": "",
    "alertWebhookPassword": "",
    "alertPagerdutyKey": "",
    "cadvisorImage": "ghcr.io/google/cadvisor:v0.53.0",
    "dcgmExporterEnabled": "auto",  # auto: on exactly when the mistral image is the CUDA one
    "dcgmExporterImage": "nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04",
    "retainDataOnDelete": "auto",  # auto: true on prod, false elsewhere
}


# What each key means, for Pulumi.yaml's config schema and the README's config reference (both
# generated by scripts/render.py from this table and DEFAULTS).
DESCRIPTIONS: dict[str, str] = {
    "mistralModelId": "Hugging Face model id (or a local directory inside the cache volume) that `mistralrs serve -m` loads. Required.",
    "mistralImageFlavour": "Image build: cpu or cuda (cuda also requests the GPU).",
    "mistralVersion": "Mistral.rs release, X.Y.Z, 0.9.2 or newer.",
    "mistralCudaVariant": "CUDA image variant cudaNNN-smCC (sm80, 86, 89, 90, 100, 120) used when the flavour is cuda.",
    "mistralPort": "Port the server listens on inside the container; /metrics is served on it too.",
    "mistralHost": "Bind address inside the container.",
    "mistralMaxSeqs": "--max-seqs: the most sequences the engine runs at once (the queue capacity).",
    "mistralIsq": "In-situ quantization level (--isq), or none.",
    "mistralPagedAttn": "PagedAttention mode: auto, on or off.",
    "mistralGpuDeviceIds": "GPU indexes or UUIDs for the container; empty means all GPUs (cuda only).",
    "mistralPublishAddress": "Host address the API port is published on.",
    "mistralPublishPort": "Host port the API is published on.",
    "mistralMemoryLimitMb": "Container memory limit in MiB; 0 means no limit.",
    "hfToken": "Hugging Face token for gated models. Secret: set with --secret.",
    "prometheusImage": "Prometheus image, pinned by tag or digest.",
    "scrapeInterval": "Global scrape interval.",
    "evaluationInterval": "Global rule evaluation interval.",
    "scrapeTimeout": "Global scrape timeout; at most the scrape interval.",
    "prometheusRetentionTime": "TSDB retention time (--storage.tsdb.retention.time).",
    "prometheusRetentionSize": "TSDB retention size (--storage.tsdb.retention.size).",
    "prometheusPublishAddress": "Host address the Prometheus UI/API is published on.",
    "prometheusPublishPort": "Host port of the Prometheus UI/API.",
    "ollamaTargets": "Existing Ollama metrics endpoints to scrape, each EXPORTER@HOST:PORT[/PATH] with EXPORTER one of: " + ", ".join(OLLAMA_EXPORTERS) + ".",
    "alertLatencyP95WarningSeconds": "p95 request latency that raises a warning.",
    "alertLatencyP95CriticalSeconds": "p95 request latency that pages.",
    "alertTtftP95WarningSeconds": "p95 time to first token that raises a warning.",
    "alertErrorRatioWarningPercent": "Share of 5xx responses (percent) that raises a warning.",
    "alertErrorRatioCriticalPercent": "Share of 5xx responses (percent) that pages.",
    "alertKvCacheWarningPercent": "KV-cache block utilisation (percent) that raises a warning.",
    "alertKvCacheCriticalPercent": "KV-cache block utilisation (percent) that pages.",
    "alertQueueSaturationFor": "How long requests must wait while every sequence slot is busy before the saturation alert fires.",
    "alertGpuMemoryWarningPercent": "GPU framebuffer use (percent) that raises a warning.",
    "alertGpuMemoryCriticalPercent": "GPU framebuffer use (percent) that pages.",
    "alertContainerMemoryWarningPercent": "Container memory use against its limit (percent) that raises a warning.",
    "alertContainerMemoryCriticalPercent": "Container memory use against its limit (percent) that pages.",
    "alertTsdbDiskWarningPercent": "Prometheus TSDB size against its retention size (percent) that raises a warning.",
    "alertTsdbDiskCriticalPercent": "Prometheus TSDB size against its retention size (percent) that pages.",
    "grafanaUrl": "URL of an existing Grafana to manage; empty provisions Grafana in the stack.",
    "grafanaAuth": "Service-account token for grafanaUrl. Secret: set with --secret.",
    "grafanaImage": "Grafana image, pinned by tag or digest.",
    "grafanaAdminUser": "Admin user of the provisioned Grafana (its password is generated and kept secret).",
    "grafanaPublishAddress": "Host address the provisioned Grafana is published on.",
    "grafanaPublishPort": "Host port of the provisioned Grafana.",
    "alertSlackUrl": "Slack incoming-webhook URL for the work channel. Secret: set with --secret.",
    "alertSlackChannel": "Slack channel override for alertSlackUrl.",
    "alertEmailAddresses": "E-mail addresses that receive warnings (and critical alerts when nothing pages).",
    "alertWebhookUrl": "Generic webhook URL that receives every alert. Secret: set with --secret.",
    "alertWebhookUser": "Basic-auth user for alertWebhookUrl.",
    "alertWebhookPassword": "Basic-auth password for alertWebhookUrl. Secret: set with --secret.",
    "alertPagerdutyKey": "PagerDuty Events v2 integration key; critical alerts page it. Secret: set with --secret.",
    "alertGroupWait": "Notification policy group_wait.",
    "alertGroupInterval": "Notification policy group_interval.",
    "alertRepeatInterval": "Notification policy repeat_interval.",
    "cadvisorImage": "cAdvisor image, pinned by tag or digest.",
    "dcgmExporterEnabled": "Run the NVIDIA DCGM exporter: auto (with the cuda flavour), true or false.",
    "dcgmExporterImage": "DCGM exporter image, pinned by tag or digest.",
    "retainDataOnDelete": "Keep the data volumes when the stack is destroyed: auto (true on prod), true or false.",
}


def schema_type(key: str) -> str:
    """The Pulumi project config type of a key."""
    default = DEFAULTS.get(key)
    if isinstance(default, bool):
        return "boolean"
    if isinstance(default, int):
        return "integer"
    if isinstance(default, list):
        return "array"
    return "string"


class _Reader:
    """Reads and checks keys one at a time, collecting problems instead of raising."""

    def __init__(self, source: ConfigSource):
        self.source = source
        self.problems: list[str] = []

    def _raw(self, key: str) -> Optional[str]:
        value = self.source.get(key)
        if value is None or value == "":
            return None
        return value

    def _fail(self, key: str, message: str) -> None:
        self.problems.append(f"{key}: {message}")

    def string(self, key: str, required: bool = False) -> str:
        value = self._raw(key)
        if value is None:
            if required:
                self._fail(key, "is required; set it with `pulumi config set " + key + " <value>`")
                return ""
            default = DEFAULTS.get(key)
            return "" if default is None else str(default)
        return value

    def choice(self, key: str, allowed: Sequence[str]) -> str:
        value = self.string(key)
        if value not in allowed:
            self._fail(key, f"got {value!r}; allowed values: {', '.join(allowed)}")
            return allowed[0]
        return value

    def integer(self, key: str, minimum: int = 1, maximum: Optional[int] = None) -> int:
        raw = self._raw(key)
        default = DEFAULTS[key]
        if raw is None:
            return int(default)
        try:
            value = int(raw)
        except ValueError:
            self._fail(key, f"got {raw!r}; expected a whole number" + _range(minimum, maximum))
            return int(default)
        if value < minimum or (maximum is not None and value > maximum):
            self._fail(key, f"got {value}; expected a whole number" + _range(minimum, maximum))
            return int(default)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        raw = self._raw(key)
        if raw is None or raw == "auto":
            return default
        lowered = raw.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        self._fail(key, f"got {raw!r}; allowed values: auto, true, false")
        return default

    def duration(self, key: str) -> str:
        value = self.string(key)
        if not _DURATION_RE.match(value) or duration_seconds(value) <= 0:
            self._fail(
                key,
                f"got {value!r}; expected a positive Prometheus duration such as 15s, 5m, 1h30m "
                "(units: ms, s, m, h, d, w, y)",
            )
            return str(DEFAULTS[key])
        return value

    def size(self, key: str) -> str:
        value = self.string(key)
        if not _SIZE_RE.match(value) or int(re.match(r"\d+", value).group()) <= 0:
            self._fail(key, f"got {value!r}; expected a positive size such as 512MB or 10GB (B, KB, MB, GB, TB, PB, EB)")
            return str(DEFAULTS[key])
        return value

    def string_list(self, key: str) -> tuple[str, ...]:
        raw = self._raw(key)
        if raw is None:
            return tuple(DEFAULTS.get(key) or ())
        import json

        try:
            value = json.loads(raw)
        except ValueError:
            self._fail(key, f"got {raw!r}; expected a list of strings, e.g. [\"a\", \"b\"]")
            return ()
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            self._fail(key, f"got {raw!r}; expected a list of strings, e.g. [\"a\", \"b\"]")
            return ()
        return tuple(str(v) for v in value)

    def secret(self, key: str) -> Any:
        if self._raw(key) is None:
            return None
        if not self.source.is_secret(key):
            self._fail(
                key,
                "is stored in plaintext; it holds a credential, so store it encrypted with "
                f"`pulumi config set --secret {key} <value>`",
            )
            return None
        return self.source.get_secret(key)

    def address(self, key: str) -> str:
        value = self.string(key)
        if not re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", value) or any(int(p) > 255 for p in value.split(".")):
            self._fail(key, f"got {value!r}; expected an IPv4 address such as 127.0.0.1 (or 0.0.0.0 for all interfaces)")
            return str(DEFAULTS[key])
        return value

    def image(self, key: str) -> str:
        value = self.string(key)
        problem = image_pin_problem(value)
        if problem:
            self._fail(key, f"got {value!r}; {problem}")
            return str(DEFAULTS[key])
        return value


def _range(minimum: int, maximum: Optional[int]) -> str:
    if maximum is None:
        return f" >= {minimum}"
    return f" from {minimum} to {maximum}"


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus duration ("5m", "1h30m"), or a Go one as promtool prints it ("1.5s").

    The one duration parser of the project; config values are validated against _DURATION_RE first.
    """
    return sum(float(n) * _DURATION_UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", value))


def image_pin_problem(ref: str) -> Optional[str]:
    """Why an image reference is not pinned, or None when it is."""
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return "expected an image pinned to a release tag or digest (repo:tag or repo@sha256:...), not an untagged image"
    tag = last.split(":", 1)[1]
    if not tag or tag.endswith("latest"):
        return "expected an image pinned to a release tag or digest, not a moving 'latest' tag"
    return None


def _parse_ollama_target(reader: _Reader, item: str) -> Optional[OllamaTarget]:
    key = "ollamaTargets"
    exporter, sep, rest = item.partition("@")
    if not sep or exporter not in OLLAMA_EXPORTERS:
        reader._fail(
            key,
            f"item {item!r}: expected EXPORTER@HOST:PORT[/PATH] with EXPORTER one of: {', '.join(OLLAMA_EXPORTERS)}",
        )
        return None
    address, slash, path = rest.partition("/")
    match = _HOSTPORT_RE.match(address)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        reader._fail(key, f"item {item!r}: expected HOST:PORT with a port from 1 to 65535 after the '@'")
        return None
    return OllamaTarget(exporter=exporter, address=address, metrics_path="/" + path if slash else "/metrics")


def load(source: ConfigSource, env: str) -> StackConfig:
    """Read and validate the whole stack config, or raise ConfigError listing every problem."""
    r = _Reader(source)
    if not _LABEL_VALUE_RE.match(env or ""):
        r.problems.append(f"stack name {env!r}: must be letters, digits, '.', '_' or '-' (it becomes the env label)")

    flavour = r.choice("mistralImageFlavour", IMAGE_FLAVOURS)
    version = r.string("mistralVersion")
    vmatch = _VERSION_RE.match(version)
    if not vmatch:
        r._fail("mistralVersion", f"got {version!r}; expected a release version X.Y.Z, 0.9.2 or newer (never 'latest')")
    elif tuple(int(x) for x in vmatch.groups()) < MISTRAL_MIN_VERSION:
        r._fail("mistralVersion", f"got {version!r}; expected 0.9.2 or newer (older releases lack the engine metrics this stack monitors)")
    cuda_variant = r.string("mistralCudaVariant")
    if not CUDA_VARIANT_RE.match(cuda_variant):
        r._fail(
            "mistralCudaVariant",
            f"got {cuda_variant!r}; expected cudaNNN-smCC with CC one of 80, 86, 89, 90, 100, 120 (e.g. cuda128-sm90)",
        )
    gpu_ids = r.string_list("mistralGpuDeviceIds")
    if gpu_ids and flavour != "cuda":
        r._fail("mistralGpuDeviceIds", "is only valid with mistralImageFlavour=cuda")
    for device in gpu_ids:
        if not re.fullmatch(r"\d+|GPU-[0-9a-fA-F-]+", device):
            r._fail("mistralGpuDeviceIds", f"item {device!r}: expected a GPU index such as 0 or a UUID such as GPU-8f3c...")

    mistral = MistralConfig(
        image_flavour=flavour,
        version=version,
        cuda_variant=cuda_variant,
        model_id=r.string("mistralModelId", required=True),
        port=r.integer("mistralPort", 1, 65535),
        host=r.address("mistralHost"),
        max_seqs=r.integer("mistralMaxSeqs", 1, 4096),
        isq=r.choice("mistralIsq", ISQ_LEVELS),
        paged_attn=r.choice("mistralPagedAttn", PAGED_ATTN_MODES),
        gpu_device_ids=gpu_ids,
        publish_address=r.address("mistralPublishAddress"),
        publish_port=r.integer("mistralPublishPort", 1, 65535),
        memory_limit_mb=r.integer("mistralMemoryLimitMb", 0),
        hf_token=r.secret("hfToken"),
    )

    targets = []
    for item in r.string_list("ollamaTargets"):
        parsed = _parse_ollama_target(r, item)
        if parsed:
            targets.append(parsed)

    prometheus = PrometheusConfig(
        image=r.image("prometheusImage"),
        scrape_interval=r.duration("scrapeInterval"),
        evaluation_interval=r.duration("evaluationInterval"),
        scrape_timeout=r.duration("scrapeTimeout"),
        retention_time=r.duration("prometheusRetentionTime"),
        retention_size=r.size("prometheusRetentionSize"),
        publish_address=r.address("prometheusPublishAddress"),
        publish_port=r.integer("prometheusPublishPort", 1, 65535),
        ollama_targets=tuple(targets),
    )
    if (
        "scrapeTimeout" not in {p.split(":")[0] for p in r.problems}
        and duration_seconds(prometheus.scrape_timeout) > duration_seconds(prometheus.scrape_interval)
    ):
        r._fail("scrapeTimeout", f"got {prometheus.scrape_timeout!r}; must not exceed scrapeInterval ({prometheus.scrape_interval})")

    thresholds = AlertThresholds(
        latency_p95_warning_seconds=r.integer("alertLatencyP95WarningSeconds", 1),
        latency_p95_critical_seconds=r.integer("alertLatencyP95CriticalSeconds", 1),
        ttft_p95_warning_seconds=r.integer("alertTtftP95WarningSeconds", 1),
        error_ratio_warning_percent=r.integer("alertErrorRatioWarningPercent", 1, 100),
        error_ratio_critical_percent=r.integer("alertErrorRatioCriticalPercent", 1, 100),
        kv_cache_warning_percent=r.integer("alertKvCacheWarningPercent", 1, 100),
        kv_cache_critical_percent=r.integer("alertKvCacheCriticalPercent", 1, 100),
        queue_saturation_for=r.duration("alertQueueSaturationFor"),
        gpu_memory_warning_percent=r.integer("alertGpuMemoryWarningPercent", 1, 100),
        gpu_memory_critical_percent=r.integer("alertGpuMemoryCriticalPercent", 1, 100),
        container_memory_warning_percent=r.integer("alertContainerMemoryWarningPercent", 1, 100),
        container_memory_critical_percent=r.integer("alertContainerMemoryCriticalPercent", 1, 100),
        tsdb_disk_warning_percent=r.integer("alertTsdbDiskWarningPercent", 1, 100),
        tsdb_disk_critical_percent=r.integer("alertTsdbDiskCriticalPercent", 1, 100),
    )
    for warn_key, crit_key, warn, crit in (
        ("alertLatencyP95WarningSeconds", "alertLatencyP95CriticalSeconds",
         thresholds.latency_p95_warning_seconds, thresholds.latency_p95_critical_seconds),
        ("alertErrorRatioWarningPercent", "alertErrorRatioCriticalPercent",
         thresholds.error_ratio_warning_percent, thresholds.error_ratio_critical_percent),
        ("alertKvCacheWarningPercent", "alertKvCacheCriticalPercent",
         thresholds.kv_cache_warning_percent, thresholds.kv_cache_critical_percent),
        ("alertGpuMemoryWarningPercent", "alertGpuMemoryCriticalPercent",
         thresholds.gpu_memory_warning_percent, thresholds.gpu_memory_critical_percent),
        ("alertContainerMemoryWarningPercent", "alertContainerMemoryCriticalPercent",
         thresholds.container_memory_warning_percent, thresholds.container_memory_critical_percent),
        ("alertTsdbDiskWarningPercent", "alertTsdbDiskCriticalPercent",
         thresholds.tsdb_disk_warning_percent, thresholds.tsdb_disk_critical_percent),
    ):
        if warn >= crit:
            r._fail(warn_key, f"got {warn}; must be lower than {crit_key} ({crit})")

    grafana_url = r.string("grafanaUrl") or None
    if grafana_url and not re.match(r"^https?://[^\s/]+", grafana_url):
        r._fail("grafanaUrl", f"got {grafana_url!r}; expected an http:// or https:// URL, or leave it empty to provision Grafana")
    grafana_auth = r.secret("grafanaAuth")
    if grafana_url and grafana_auth is None and "grafanaAuth" not in {p.split(":")[0] for p in r.problems}:
        r._fail("grafanaAuth", "is required when grafanaUrl is set: a Grafana service-account token, stored with --secret")
    grafana = GrafanaConfig(
        url=grafana_url,
        auth=grafana_auth,
        image=r.image("grafanaImage"),
        admin_user=r.string("grafanaAdminUser"),
        publish_address=r.address("grafanaPublishAddress"),
        publish_port=r.integer("grafanaPublishPort", 1, 65535),
    )

    emails = r.string_list("alertEmailAddresses")
    for email in emails:
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
            r._fail("alertEmailAddresses", f"item {email!r}: expected an e-mail address")
    alerting = AlertingConfig(
        slack_url=r.secret("alertSlackUrl"),
        slack_channel=r.string("alertSlackChannel") or None,
        email_addresses=emails,
        webhook_url=r.secret("alertWebhookUrl"),
        webhook_user=r.string("alertWebhookUser") or None,
        webhook_password=r.secret("alertWebhookPassword"),
        pagerduty_key=r.secret("alertPagerdutyKey"),
        group_wait=r.duration("alertGroupWait"),
        group_interval=r.duration("alertGroupInterval"),
        repeat_interval=r.duration("alertRepeatInterval"),
    )
    contact_keys = ("alertSlackUrl", "alertEmailAddresses", "alertWebhookUrl", "alertPagerdutyKey")
    if not any((alerting.slack_url, alerting.email_addresses, alerting.webhook_url, alerting.pagerduty_key)) and not any(
        p.split(":")[0] in contact_keys for p in r.problems
    ):
        r.problems.append(
            "alertSlackUrl, alertEmailAddresses, alertWebhookUrl, alertPagerdutyKey: set at least one "
            "contact point so alerts reach the team's existing channels"
        )

    exporters = ExportersConfig(
        cadvisor_image=r.image("cadvisorImage"),
        dcgm_enabled=r.boolean("dcgmExporterEnabled", default=mistral.uses_gpu),
        dcgm_image=r.image("dcgmExporterImage"),
    )
    if exporters.dcgm_enabled and not mistral.uses_gpu:
        r._fail("dcgmExporterEnabled", "is true but mistralImageFlavour is cpu; the DCGM exporter needs an NVIDIA GPU")

    config = StackConfig(
        env=env,
        mistral=mistral,
        prometheus=prometheus,
        thresholds=thresholds,
        grafana=grafana,
        alerting=alerting,
        exporters=exporters,
        retain_data_on_delete=r.boolean("retainDataOnDelete", default=(env == "prod")),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return config


def load_defaults(env: str = "dev", **overrides: Any) -> StackConfig:
    """A valid config for renderers and tests: defaults plus the required keys."""
    values: dict[str, Any] = {"mistralModelId": "Qwen/Qwen3-0.6B", "alertEmailAddresses": '["oncall@example.com"]'}
    values.update(overrides)
    return load(DictSource(values), env)
