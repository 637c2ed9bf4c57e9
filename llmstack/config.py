"""The stack's configuration: every knob declared once, typed, validated before any resource exists.

Each knob is one field of a frozen dataclass below, declared with `knob(key, kind, default,
description)`. That single declaration is all there is: the loader reads and checks the knob from
it, `Pulumi.yaml`'s config schema and the README's config table are generated from it
(tools/render.py), and the rest of the program reads the typed field.

Why hand-written kinds and not a validation library: every message must name the Pulumi config
key (not a Python field path), say what is wrong and what is allowed, and every problem must be
listed in one round trip. A library's errors would have to be caught and re-worded field by field,
which is as much code as the kinds themselves, and the deploy path would carry one more dependency.

This module imports nothing else of the project, and not Pulumi: it reads through a small
`ConfigSource` protocol, a dict in tests and renders, `pulumi.Config` in the program. Secret
values stay opaque handles (a `pulumi.Output` in the program); only their presence and their
encryption are checked here.
"""

from __future__ import annotations

import dataclasses
import json
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

# --- durations: the project's one grammar, parser and formatter ---------------------------------

_UNITS = (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001))
_UNIT_SECONDS = dict(_UNITS)
DURATION_RE = re.compile(r"(?:[0-9]+(?:ms|s|m|h|d|w|y))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def duration_seconds(value: str) -> float:
    """Seconds in a Prometheus duration ("5m", "1h30m"), or a Go one as promtool prints it ("1.5s")."""
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(value))


def format_duration(seconds: float) -> str:
    """The canonical Prometheus form of a duration: 90 -> "1m30s", 3600 -> "1h", 0.5 -> "500ms"."""
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    out = []
    for unit, size in _UNITS:
        count, millis = divmod(millis, round(size * 1000))
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


# --- sources ------------------------------------------------------------------------------------


class ConfigError(Exception):
    """One or more config keys are invalid; the message lists every one of them."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(problems)
        super().__init__("invalid stack configuration:\n" + "\n".join(f"  - {p}" for p in self.problems))


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


# --- kinds: how one knob is read, checked and described ------------------------------------------


class Problems:
    """Collects problems instead of raising, so one run reports every bad key."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.items.append(f"{key}: {message}")

    def has(self, key: str) -> bool:
        return any(p.split(":")[0] == key for p in self.items)


class Kind:
    """How a knob's raw string becomes a typed value. `parse` reports into `problems` and returns
    the default on failure, so later checks still see a well-typed config."""

    schema_type = "string"

    def parse(self, knob: "Knob", raw: str, problems: Problems) -> Any:
        return raw

    def bounds(self) -> str:
        return ""


class Text(Kind):
    pass


@dataclass(frozen=True)
class Integer(Kind):
    minimum: int = 1
    maximum: Optional[int] = None
    schema_type = "integer"

    def bounds(self) -> str:
        return f">= {self.minimum}" if self.maximum is None else f"{self.minimum} to {self.maximum}"

    def parse(self, knob, raw, problems):
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < self.minimum or (self.maximum is not None and value > self.maximum):
            shown = repr(raw) if value is None else value
            allowed = f">= {self.minimum}" if self.maximum is None else f"from {self.minimum} to {self.maximum}"
            problems.add(knob.key, f"got {shown}; expected a whole number {allowed}")
            return knob.default
        return value


PERCENT = Integer(1, 100)
PORT = Integer(1, 65535)


@dataclass(frozen=True)
class Choice(Kind):
    allowed: tuple[str, ...]

    def bounds(self) -> str:
        return "one of " + ", ".join(self.allowed)

    def parse(self, knob, raw, problems):
        if raw not in self.allowed:
            problems.add(knob.key, f"got {raw!r}; allowed values: {', '.join(self.allowed)}")
            return knob.default
        return raw


class AutoBool(Kind):
    """auto, true or false; `auto` is resolved by the loader (it depends on other keys or the env)."""

    def bounds(self) -> str:
        return "auto, true or false"

    def parse(self, knob, raw, problems):
        lowered = raw.lower()
        if lowered in ("auto", "true", "false"):
            return lowered
        problems.add(knob.key, f"got {raw!r}; allowed values: auto, true, false")
        return knob.default


class Duration(Kind):
    def bounds(self) -> str:
        return "a positive duration"

    def parse(self, knob, raw, problems):
        if not DURATION_RE.fullmatch(raw) or duration_seconds(raw) <= 0:
            problems.add(
                knob.key,
                f"got {raw!r}; expected a positive Prometheus duration such as 15s, 5m, 1h30m (units: ms, s, m, h, d, w, y)",
            )
            return knob.default
        return raw


class Size(Kind):
    def bounds(self) -> str:
        return "a positive size"

    def parse(self, knob, raw, problems):
        match = re.fullmatch(r"([0-9]+)(B|KB|MB|GB|TB|PB|EB)", raw)
        if not match or int(match.group(1)) <= 0:
            problems.add(knob.key, f"got {raw!r}; expected a positive size such as 512MB or 10GB (B, KB, MB, GB, TB, PB, EB)")
            return knob.default
        return raw


class Address(Kind):
    def bounds(self) -> str:
        return "an IPv4 address"

    def parse(self, knob, raw, problems):
        if not re.fullmatch(r"(\d{1,3}\.){3}\d{1,3}", raw) or any(int(p) > 255 for p in raw.split(".")):
            problems.add(knob.key, f"got {raw!r}; expected an IPv4 address such as 127.0.0.1 (or 0.0.0.0 for all interfaces)")
            return knob.default
        return raw


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


class Image(Kind):
    def bounds(self) -> str:
        return "pinned by tag or digest"

    def parse(self, knob, raw, problems):
        problem = image_pin_problem(raw)
        if problem:
            problems.add(knob.key, f"got {raw!r}; {problem}")
            return knob.default
        return raw


@dataclass(frozen=True)
class StringList(Kind):
    """A list of strings (Pulumi hands arrays to the program as JSON); `item` checks one entry."""

    item: Optional[Callable[[str], Optional[str]]] = None  # returns what is wrong with the entry, or None
    schema_type = "array"

    def parse(self, knob, raw, problems):
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
            problems.add(knob.key, f"got {raw!r}; expected a list of strings, e.g. [\"a\", \"b\"]")
            return ()
        items = tuple(str(v) for v in value)
        for entry in items:
            problem = self.item(entry) if self.item else None
            if problem:
                problems.add(knob.key, f"item {entry!r}: {problem}")
        return items


class Secret(Kind):
    """A credential: must be stored encrypted; the value is an opaque handle."""

    def bounds(self) -> str:
        return "stored with --secret"


# --- the knob declaration -----------------------------------------------------------------------


@dataclass(frozen=True)
class Knob:
    key: str
    kind: Kind
    default: Any  # None: required
    description: str

    @property
    def required(self) -> bool:
        return self.default is None

    @property
    def secret(self) -> bool:
        return isinstance(self.kind, Secret)


def knob(key: str, kind: Kind, default: Any, description: str) -> Any:
    """A dataclass field bound to the config key `key` (see the module doc)."""
    return field(metadata={"knob": Knob(key, kind, default, description)})


# --- value grammars that are more than a kind ---------------------------------------------------

MISTRAL_IMAGE_REPO = "ghcr.io/ericlbuehler/mistral.rs"
# The first release with engine metrics and TTFT/ITL histograms (shared/reference upstream facts).
MISTRAL_MIN_VERSION = (0, 9, 2)
CUDA_VARIANT_RE = re.compile(r"cuda\d{3}-sm(80|86|89|90|100|120)")
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
# Kinds of Ollama metrics exporter the stack can map (llmstack/engines/ollama.py has one mapping each).
OLLAMA_EXPORTERS = ("norskhelsenett", "http")
_HOSTPORT_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.\-]*[A-Za-z0-9])?:(\d{1,5})")
_LABEL_VALUE_RE = re.compile(r"[A-Za-z0-9_.\-]+")


class Version(Kind):
    def bounds(self) -> str:
        return "X.Y.Z, 0.9.2 or newer"

    def parse(self, knob, raw, problems):
        match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", raw)
        if not match:
            problems.add(knob.key, f"got {raw!r}; expected a release version X.Y.Z, 0.9.2 or newer (never 'latest')")
        elif tuple(int(x) for x in match.groups()) < MISTRAL_MIN_VERSION:
            problems.add(knob.key, f"got {raw!r}; expected 0.9.2 or newer (older releases lack the engine metrics this stack monitors)")
        return raw


class CudaVariant(Kind):
    def bounds(self) -> str:
        return "cudaNNN-smCC"

    def parse(self, knob, raw, problems):
        if not CUDA_VARIANT_RE.fullmatch(raw):
            problems.add(knob.key, f"got {raw!r}; expected cudaNNN-smCC with CC one of 80, 86, 89, 90, 100, 120 (e.g. cuda128-sm90)")
        return raw


class Url(Kind):
    def bounds(self) -> str:
        return "http(s) URL, or empty"

    def parse(self, knob, raw, problems):
        if not re.match(r"^https?://[^\s/]+", raw):
            problems.add(knob.key, f"got {raw!r}; expected an http:// or https:// URL, or leave it empty")
            return knob.default
        return raw


@dataclass(frozen=True)
class OllamaTarget:
    exporter: str
    address: str  # host:port
    metrics_path: str


def parse_ollama_target(item: str) -> tuple[Optional[OllamaTarget], Optional[str]]:
    """EXPORTER@HOST:PORT[/PATH] as a target, or what is wrong with it."""
    exporter, sep, rest = item.partition("@")
    if not sep or exporter not in OLLAMA_EXPORTERS:
        return None, f"expected EXPORTER@HOST:PORT[/PATH] with EXPORTER one of: {', '.join(OLLAMA_EXPORTERS)}"
    address, slash, path = rest.partition("/")
    match = _HOSTPORT_RE.fullmatch(address)
    if not match or not 1 <= int(match.group(2)) <= 65535:
        return None, "expected HOST:PORT with a port from 1 to 65535 after the '@'"
    return OllamaTarget(exporter=exporter, address=address, metrics_path="/" + path if slash else "/metrics"), None


def _gpu_id_problem(device: str) -> Optional[str]:
    return None if re.fullmatch(r"\d+|GPU-[0-9a-fA-F-]+", device) else "expected a GPU index such as 0 or a UUID such as GPU-8f3c..."


def _email_problem(email: str) -> Optional[str]:
    return None if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email) else "expected an e-mail address"


def _ollama_target_problem(item: str) -> Optional[str]:
    return parse_ollama_target(item)[1]


# --- the typed configuration: one field per knob ---------------------------------------------------

_SECRET_HINT = "Secret: set with --secret."


@dataclass(frozen=True)
class MistralConfig:
    model_id: str = knob("mistralModelId", Text(), None, "Hugging Face model id (or a local directory inside the cache volume) that `mistralrs serve -m` loads. Required.")
    image_flavour: str = knob("mistralImageFlavour", Choice(("cpu", "cuda")), "cpu", "Image build: cpu or cuda (cuda also requests the GPU).")
    version: str = knob("mistralVersion", Version(), "0.9.2", "Mistral.rs release, X.Y.Z, 0.9.2 or newer.")
    cuda_variant: str = knob("mistralCudaVariant", CudaVariant(), "cuda128-sm90", "CUDA image variant cudaNNN-smCC (sm80, 86, 89, 90, 100, 120) used when the flavour is cuda.")
    port: int = knob("mistralPort", PORT, 1234, "Port the server listens on inside the container; /metrics is served on it too.")
    host: str = knob("mistralHost", Address(), "0.0.0.0", "Bind address inside the container.")
    max_seqs: int = knob("mistralMaxSeqs", Integer(1, 4096), 16, "--max-seqs: the most sequences the engine runs at once (the queue capacity).")
    isq: str = knob("mistralIsq", Choice(ISQ_LEVELS), "none", "In-situ quantization level (--isq), or none.")
    paged_attn: str = knob("mistralPagedAttn", Choice(("auto", "on", "off")), "auto", "PagedAttention mode: auto, on or off.")
    gpu_device_ids: tuple[str, ...] = knob("mistralGpuDeviceIds", StringList(_gpu_id_problem), [], "GPU indexes or UUIDs for the container; empty means all GPUs (cuda only).")
    publish_address: str = knob("mistralPublishAddress", Address(), "127.0.0.1", "Host address the API port is published on.")
    publish_port: int = knob("mistralPublishPort", PORT, 1234, "Host port the API is published on.")
    memory_limit_mb: int = knob("mistralMemoryLimitMb", Integer(0), 0, "Container memory limit in MiB; 0 means no limit.")
    hf_token: Any = knob("hfToken", Secret(), "", f"Hugging Face token for gated models. {_SECRET_HINT}")

    @property
    def image(self) -> str:
        prefix = "cpu" if self.image_flavour == "cpu" else self.cuda_variant
        return f"{MISTRAL_IMAGE_REPO}:{prefix}-{self.version}"

    @property
    def uses_gpu(self) -> bool:
        return self.image_flavour == "cuda"


@dataclass(frozen=True)
class PrometheusConfig:
    image: str = knob("prometheusImage", Image(), "prom/prometheus:v3.5.0", "Prometheus image, pinned by tag or digest.")
    scrape_interval: str = knob("scrapeInterval", Duration(), "15s", "Global scrape interval.")
    evaluation_interval: str = knob("evaluationInterval", Duration(), "15s", "Global rule evaluation interval.")
    scrape_timeout: str = knob("scrapeTimeout", Duration(), "10s", "Global scrape timeout; at most the scrape interval.")
    retention_time: str = knob("prometheusRetentionTime", Duration(), "15d", "TSDB retention time (--storage.tsdb.retention.time).")
    retention_size: str = knob("prometheusRetentionSize", Size(), "10GB", "TSDB retention size (--storage.tsdb.retention.size).")
    publish_address: str = knob("prometheusPublishAddress", Address(), "127.0.0.1", "Host address the Prometheus UI/API is published on.")
    publish_port: int = knob("prometheusPublishPort", PORT, 9090, "Host port of the Prometheus UI/API.")
    ollama_targets: tuple[OllamaTarget, ...] = knob(
        "ollamaTargets",
        StringList(_ollama_target_problem),
        [],
        "Existing Ollama metrics endpoints to scrape, each EXPORTER@HOST:PORT[/PATH] with EXPORTER one of: " + ", ".join(OLLAMA_EXPORTERS) + ".",
    )


@dataclass(frozen=True)
class AlertThresholds:
    latency_p95_warning_seconds: int = knob("alertLatencyP95WarningSeconds", Integer(1), 10, "p95 request latency that raises a warning.")
    latency_p95_critical_seconds: int = knob("alertLatencyP95CriticalSeconds", Integer(1), 30, "p95 request latency that pages.")
    ttft_p95_warning_seconds: int = knob("alertTtftP95WarningSeconds", Integer(1), 5, "p95 time to first token that raises a warning.")
    error_ratio_warning_percent: int = knob("alertErrorRatioWarningPercent", PERCENT, 5, "Share of 5xx responses (percent) that raises a warning.")
    error_ratio_critical_percent: int = knob("alertErrorRatioCriticalPercent", PERCENT, 20, "Share of 5xx responses (percent) that pages.")
    error_critical_min_failures: int = knob(
        "alertErrorCriticalMinFailures",
        Integer(1, 10000),
        10,
        "Failed requests over the last 5 minutes the critical error alert also needs, so a couple of failures at low traffic cannot page.",
    )
    kv_cache_warning_percent: int = knob("alertKvCacheWarningPercent", PERCENT, 90, "KV-cache block utilisation (percent) that raises a warning.")
    kv_cache_critical_percent: int = knob("alertKvCacheCriticalPercent", PERCENT, 98, "KV-cache block utilisation (percent) that pages.")
    queue_saturation_for: str = knob("alertQueueSaturationFor", Duration(), "5m", "How long requests must wait while every sequence slot is busy before the saturation alert fires.")
    gpu_memory_warning_percent: int = knob("alertGpuMemoryWarningPercent", PERCENT, 90, "GPU framebuffer use (percent) that raises a warning.")
    gpu_memory_critical_percent: int = knob("alertGpuMemoryCriticalPercent", PERCENT, 97, "GPU framebuffer use (percent) that pages.")
    container_memory_warning_percent: int = knob("alertContainerMemoryWarningPercent", PERCENT, 90, "Container memory use against its limit (percent) that raises a warning.")
    container_memory_critical_percent: int = knob("alertContainerMemoryCriticalPercent", PERCENT, 97, "Container memory use against its limit (percent) that pages.")
    tsdb_disk_warning_percent: int = knob("alertTsdbDiskWarningPercent", PERCENT, 80, "Prometheus TSDB size against its retention size (percent) that raises a warning.")
    tsdb_disk_critical_percent: int = knob("alertTsdbDiskCriticalPercent", PERCENT, 95, "Prometheus TSDB size against its retention size (percent) that pages.")


# Warning and critical thresholds that must stay ordered, by field name.
_ORDERED_PAIRS = (
    ("latency_p95_warning_seconds", "latency_p95_critical_seconds"),
    ("error_ratio_warning_percent", "error_ratio_critical_percent"),
    ("kv_cache_warning_percent", "kv_cache_critical_percent"),
    ("gpu_memory_warning_percent", "gpu_memory_critical_percent"),
    ("container_memory_warning_percent", "container_memory_critical_percent"),
    ("tsdb_disk_warning_percent", "tsdb_disk_critical_percent"),
)


@dataclass(frozen=True)
class GrafanaConfig:
    url: Optional[str] = knob("grafanaUrl", Url(), "", "URL of an existing Grafana to manage; empty provisions Grafana in the stack.")
    auth: Any = knob("grafanaAuth", Secret(), "", f"Service-account token for grafanaUrl. {_SECRET_HINT}")
    image: str = knob("grafanaImage", Image(), "grafana/grafana:12.2.1", "Grafana image, pinned by tag or digest.")
    admin_user: str = knob("grafanaAdminUser", Text(), "admin", "Admin user of the provisioned Grafana (its password is generated and kept secret).")
    publish_address: str = knob("grafanaPublishAddress", Address(), "127.0.0.1", "Host address the provisioned Grafana is published on.")
    publish_port: int = knob("grafanaPublishPort", PORT, 3000, "Host port of the provisioned Grafana.")

    @property
    def provisioned(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class AlertingConfig:
    slack_url: Any = knob("alertSlackUrl", Secret(), "", f"Slack incoming-webhook URL for the work channel. {_SECRET_HINT}")
    slack_channel: Optional[str] = knob("alertSlackChannel", Text(), "", "Slack channel override for alertSlackUrl.")
    email_addresses: tuple[str, ...] = knob("alertEmailAddresses", StringList(_email_problem), [], "E-mail addresses that receive warnings (and critical alerts when nothing pages).")
    webhook_url: Any = knob("alertWebhookUrl", Secret(), "", f"Generic webhook URL that receives every alert. {_SECRET_HINT}")
    webhook_user: Optional[str] = knob("alertWebhookUser", Text(), "", "Basic-auth user for alertWebhookUrl.")
    webhook_password: Any = knob("alertWebhookPassword", Secret(), "", f"Basic-auth password for alertWebhookUrl. {_SECRET_HINT}")
    pagerduty_key: Any = knob("alertPagerdutyKey", Secret(), "", f"PagerDuty Events v2 integration key; critical alerts page it. {_SECRET_HINT}")
    group_wait: str = knob("alertGroupWait", Duration(), "30s", "Notification policy group_wait.")
    group_interval: str = knob("alertGroupInterval", Duration(), "5m", "Notification policy group_interval.")
    repeat_interval: str = knob("alertRepeatInterval", Duration(), "4h", "Notification policy repeat_interval.")
    runbook_base_url: str = knob(
        "runbookBaseUrl",
        Url(),
        "https://github.com/example/llmstack/blob/main/docs/runbooks.md",
        "Where on-call reads this repository's docs/runbooks.md; every alert links to its section there. Set it to your copy.",
    )


@dataclass(frozen=True)
class ExportersConfig:
    cadvisor_image: str = knob("cadvisorImage", Image(), "ghcr.io/google/cadvisor:v0.53.0", "cAdvisor image, pinned by tag or digest.")
    dcgm_enabled: bool = knob("dcgmExporterEnabled", AutoBool(), "auto", "Run the NVIDIA DCGM exporter: auto (with the cuda flavour), true or false.")
    dcgm_image: str = knob("dcgmExporterImage", Image(), "nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04", "DCGM exporter image, pinned by tag or digest.")
    model_load_seen_within: str = knob(
        "modelLoadSeenWithin",
        Duration(),
        "5m",
        "How soon after the mistral container's creation Prometheus must first see it for its model load to be timed "
        "(cAdvisor reports a new container at its next scrape, and on a first deploy Prometheus may start after mistral).",
    )


@dataclass(frozen=True)
class StackConfig:
    env: str  # the stack name: not a knob, it becomes every series' env label
    mistral: MistralConfig
    prometheus: PrometheusConfig
    thresholds: AlertThresholds
    grafana: GrafanaConfig
    alerting: AlertingConfig
    exporters: ExportersConfig
    retain_data_on_delete: bool = knob("retainDataOnDelete", AutoBool(), "auto", "Keep the data volumes when the stack is destroyed: auto (true on prod), true or false.")

    @property
    def network_name(self) -> str:
        return f"llmstack-{self.env}"

    def container_name(self, component: str) -> str:
        return f"llmstack-{self.env}-{component}"


# --- reading the table ---------------------------------------------------------------------------


def _knob_fields(cls: type) -> list[tuple[str, Knob]]:
    return [(f.name, f.metadata["knob"]) for f in dataclasses.fields(cls) if "knob" in f.metadata]


def _sections(cls: type = StackConfig) -> list[type]:
    hints = typing.get_type_hints(cls)
    return [hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints.get(f.name))]


def knobs() -> list[Knob]:
    """Every knob, in declaration order."""
    found = [k for section in _sections() for _, k in _knob_fields(section)]
    return found + [k for _, k in _knob_fields(StackConfig)]


def _read(source: ConfigSource, k: Knob, problems: Problems) -> Any:
    raw = source.get(k.key)
    raw = None if raw in (None, "") else raw
    if isinstance(k.kind, Secret):
        if raw is None:
            return None
        if not source.is_secret(k.key):
            problems.add(
                k.key,
                f"is stored in plaintext; it holds a credential, so store it encrypted with `pulumi config set --secret {k.key} <value>`",
            )
            return None
        return source.get_secret(k.key)
    if raw is None:
        if k.required:
            problems.add(k.key, f"is required; set it with `pulumi config set {k.key} <value>`")
            return ""
        return tuple(k.default) if isinstance(k.default, list) else k.default
    return k.kind.parse(k, raw, problems)


def _build(cls: type, values: dict, env: str) -> Any:
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if "knob" in f.metadata:
            kwargs[f.name] = values[f.metadata["knob"].key]
        elif dataclasses.is_dataclass(hints.get(f.name)):
            kwargs[f.name] = _build(hints[f.name], values, env)
        else:
            kwargs[f.name] = env
    return cls(**kwargs)


def load(source: ConfigSource, env: str) -> StackConfig:
    """Read and validate the whole stack config, or raise ConfigError listing every problem."""
    problems = Problems()
    if not _LABEL_VALUE_RE.fullmatch(env or ""):
        problems.items.append(f"stack name {env!r}: must be letters, digits, '.', '_' or '-' (it becomes the env label)")
    v = {k.key: _read(source, k, problems) for k in knobs()}

    # Values whose form the kinds keep as text, and the `auto` switches.
    v["ollamaTargets"] = tuple(t for t in (parse_ollama_target(i)[0] for i in v["ollamaTargets"]) if t)
    for key in ("grafanaUrl", "alertSlackChannel", "alertWebhookUser"):
        v[key] = v[key] or None
    uses_gpu = v["mistralImageFlavour"] == "cuda"
    v["dcgmExporterEnabled"] = uses_gpu if v["dcgmExporterEnabled"] == "auto" else v["dcgmExporterEnabled"] == "true"
    v["retainDataOnDelete"] = env == "prod" if v["retainDataOnDelete"] == "auto" else v["retainDataOnDelete"] == "true"
    config = _build(StackConfig, v, env)

    _check_across_keys(config, problems)
    if problems.items:
        raise ConfigError(problems.items)
    return config


def _key(section: type, name: str) -> str:
    return next(f.metadata["knob"].key for f in dataclasses.fields(section) if f.name == name)


def _check_across_keys(cfg: StackConfig, problems: Problems) -> None:
    if cfg.mistral.gpu_device_ids and not cfg.mistral.uses_gpu:
        problems.add("mistralGpuDeviceIds", "is only valid with mistralImageFlavour=cuda")
    p = cfg.prometheus
    if not problems.has("scrapeTimeout") and duration_seconds(p.scrape_timeout) > duration_seconds(p.scrape_interval):
        problems.add("scrapeTimeout", f"got {p.scrape_timeout!r}; must not exceed scrapeInterval ({p.scrape_interval})")
    for warn, crit in _ORDERED_PAIRS:
        warn_value, crit_value = getattr(cfg.thresholds, warn), getattr(cfg.thresholds, crit)
        if warn_value >= crit_value:
            problems.add(_key(AlertThresholds, warn), f"got {warn_value}; must be lower than {_key(AlertThresholds, crit)} ({crit_value})")
    if cfg.grafana.url and cfg.grafana.auth is None and not problems.has("grafanaAuth"):
        problems.add("grafanaAuth", "is required when grafanaUrl is set: a Grafana service-account token, stored with --secret")
    a = cfg.alerting
    contact_keys = ("alertSlackUrl", "alertEmailAddresses", "alertWebhookUrl", "alertPagerdutyKey")
    if not any((a.slack_url, a.email_addresses, a.webhook_url, a.pagerduty_key)) and not any(problems.has(k) for k in contact_keys):
        problems.items.append(
            f"{', '.join(contact_keys)}: set at least one contact point so alerts reach the team's existing channels"
        )
    if cfg.exporters.dcgm_enabled and not cfg.mistral.uses_gpu:
        problems.add("dcgmExporterEnabled", "is true but mistralImageFlavour is cpu; the DCGM exporter needs an NVIDIA GPU")


def load_defaults(env: str = "dev", **overrides: Any) -> StackConfig:
    """A valid config for renderers and tests: defaults plus the required keys."""
    values: dict[str, Any] = {"mistralModelId": "Qwen/Qwen3-0.6B", "alertEmailAddresses": '["oncall@example.com"]'}
    values.update(overrides)
    return load(DictSource(values), env)
