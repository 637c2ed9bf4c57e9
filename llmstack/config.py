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

import collections
import dataclasses
import difflib
import ipaddress
import json
import re
import typing
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

# --- durations: the project's one grammar, parser and formatter ---------------------------------

_UNITS = (("y", 31536000), ("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1), ("ms", 0.001))
_UNIT_SECONDS = dict(_UNITS)
# Prometheus's own duration grammar: each unit at most once, largest first, ASCII digits only.
DURATION_RE = re.compile("".join(f"(?:[0-9]+{unit})?" for unit, _ in _UNITS))
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)")


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


# The windows of the recording rules. They are part of the series names (`rate5m`, `p95_1m`), which
# dashboards, alerts and other stacks query, so they are properties of the schema, not knobs; the
# intervals below are bounded by them.
WINDOW = "5m"
SHORT_WINDOW = "1m"
# A rate or quantile needs several samples in its window; four is what Grafana's $__rate_interval
# guarantees. So the scrape and evaluation intervals are at most a quarter of the shortest window.
SAMPLES_PER_WINDOW = 4
MAX_INTERVAL = format_duration(duration_seconds(SHORT_WINDOW) / SAMPLES_PER_WINDOW)

# mistral.rs's largest finite buckets (mistralrs-server-core/src/metrics.rs, v0.9.2): a quantile over
# these histograms never reads more, so a threshold at or above them could never fire.
LATENCY_LARGEST_BUCKET_SECONDS = 1200
TTFT_LARGEST_BUCKET_SECONDS = 2560

# --- sources ------------------------------------------------------------------------------------

MAX_PROBLEMS = 50  # listed one per line; the rest are counted
_MAX_SHOWN = 60  # characters of a bad value quoted back


class ConfigError(Exception):
    """One or more config keys are invalid; the message lists each of them once, at most MAX_PROBLEMS."""

    def __init__(self, problems: Sequence[str]):
        self.problems = list(dict.fromkeys(problems))
        shown = self.problems[:MAX_PROBLEMS]
        more = len(self.problems) - len(shown)
        tail = [f"  ... and {more} more problem(s)"] if more else []
        super().__init__("invalid stack configuration:\n" + "\n".join([f"  - {p}" for p in shown] + tail))


class ConfigSource(Protocol):
    def keys(self) -> list[str]: ...  # every key the stack sets in the project's namespace

    def get(self, key: str) -> Optional[str]: ...

    def get_secret(self, key: str) -> Any: ...

    def is_secret(self, key: str) -> bool: ...


@dataclass(frozen=True)
class DictSource:
    """A plain-dict config source, for renderers and tests that run without Pulumi."""

    values: dict = field(default_factory=dict)
    secret_keys: frozenset = frozenset()

    def keys(self) -> list[str]:
        return list(self.values)

    def get(self, key: str) -> Optional[str]:
        value = self.values.get(key)
        return None if value is None else str(value)

    def get_secret(self, key: str) -> Any:
        return self.values.get(key)

    def is_secret(self, key: str) -> bool:
        return key in self.secret_keys


# --- kinds: how one knob is read, checked and described ------------------------------------------


def shown(raw: str) -> str:
    """A bad value quoted back, cut short: an error message must stay readable."""
    return repr(raw) if len(raw) <= _MAX_SHOWN else repr(raw[:_MAX_SHOWN]) + f"... ({len(raw)} characters)"


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
    the default on failure, so later checks still see a well-typed config. `allowed()` says, for
    messages and the README, what the kind accepts."""

    schema_type: Optional[str] = "string"  # None: left untyped in Pulumi.yaml (Pulumi's types cannot say it)
    secret_hint = ""  # said when the knob is wrongly stored as a secret

    @property
    def shown_type(self) -> str:
        """The type the README's config table shows."""
        return self.schema_type or "string"

    def parse(self, knob: "Knob", raw: str, problems: Problems) -> Any:
        problem = self.problem(raw)
        if problem:
            problems.add(knob.key, f"got {self.quote(raw)}; {problem}")
            return knob.default
        return self.convert(raw)

    def quote(self, raw: str) -> str:
        return shown(raw)

    def problem(self, raw: str) -> Optional[str]:
        return None

    def convert(self, raw: str) -> Any:
        return raw

    def allowed(self) -> str:
        return ""


@dataclass(frozen=True)
class Pattern(Kind):
    """Text that fully matches an ASCII regex; `what` says in words what it must be."""

    regex: str
    what: str

    def problem(self, raw):
        return None if re.fullmatch(self.regex, raw, re.ASCII) else f"expected {self.what}"

    def allowed(self):
        return self.what


@dataclass(frozen=True)
class Integer(Kind):
    minimum: int
    maximum: int
    schema_type = "integer"

    def problem(self, raw):
        # At most 18 digits: int() refuses (slowly) what no bound here could accept anyway.
        if not re.fullmatch(r"-?[0-9]{1,18}", raw) or not self.minimum <= int(raw) <= self.maximum:
            return f"expected a whole number {self.allowed()}"
        return None

    def convert(self, raw):
        return int(raw)

    def allowed(self):
        return f"from {self.minimum} to {self.maximum}"


# Strictly between 0 and 100: at 100 a ratio alert would need more than every request to fail.
PERCENT = Integer(1, 99)
PORT = Integer(1, 65535)


@dataclass(frozen=True)
class Choice(Kind):
    options: tuple[str, ...]

    def problem(self, raw):
        return None if raw in self.options else f"allowed values: {', '.join(self.options)}"

    def allowed(self):
        return "one of " + ", ".join(self.options)


@dataclass(frozen=True)
class Objective(Kind):
    """An SLO objective in percent, or `auto` (resolved per env by the loader)."""

    minimum: float
    maximum: float

    def problem(self, raw):
        if raw == "auto":
            return None
        if not re.fullmatch(r"[0-9]{1,3}(\.[0-9]{1,3})?", raw) or not self.minimum <= float(raw) <= self.maximum:
            return f"expected auto or a percentage {self.allowed()}"
        return None

    def allowed(self):
        return f"from {self.minimum:g} to {self.maximum:g} with at most 3 decimals, or auto"


class Boolean(Kind):
    schema_type = "boolean"

    def problem(self, raw):
        return None if raw in ("true", "false") else "expected true or false"

    def convert(self, raw):
        return raw == "true"

    def allowed(self):
        return "true or false"


class AutoBool(Choice):
    """auto, true or false; `auto` is resolved by the loader (it depends on other keys or the env)."""

    def __init__(self) -> None:
        super().__init__(("auto", "true", "false"))


@dataclass(frozen=True)
class Duration(Kind):
    minimum: str
    maximum: str

    def problem(self, raw):
        if not raw or not DURATION_RE.fullmatch(raw):
            return "expected a Prometheus duration such as 15s, 5m or 1h30m (units y, w, d, h, m, s, ms, largest first)"
        if not duration_seconds(self.minimum) <= duration_seconds(raw) <= duration_seconds(self.maximum):
            return f"expected a duration {self.allowed()}"
        return None

    def allowed(self):
        return f"from {self.minimum} to {self.maximum}"


_SIZE_UNITS = {"B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "PB": 2**50, "EB": 2**60}


@dataclass(frozen=True)
class Size(Kind):
    minimum: str
    maximum: str

    @staticmethod
    def bytes(value: str) -> int:
        number, unit = re.fullmatch(r"([0-9]{1,18})([KMGTPE]?B)", value, re.ASCII).groups()
        return int(number) * _SIZE_UNITS[unit]

    def problem(self, raw):
        if not re.fullmatch(r"[0-9]{1,18}[KMGTPE]?B", raw, re.ASCII):
            return "expected a size such as 512MB or 10GB (units B, KB, MB, GB, TB, PB, EB)"
        if not self.bytes(self.minimum) <= self.bytes(raw) <= self.bytes(self.maximum):
            return f"expected a size {self.allowed()}"
        return None

    def allowed(self):
        return f"from {self.minimum} to {self.maximum}"


def _ipv4(raw: str) -> Optional[ipaddress.IPv4Address]:
    try:
        return ipaddress.IPv4Address(raw) if re.fullmatch(r"[0-9.]+", raw, re.ASCII) else None
    except ValueError:
        return None


class Address(Kind):
    def problem(self, raw):
        return None if _ipv4(raw) else "expected an IPv4 address such as 127.0.0.1 (or 0.0.0.0 for all interfaces)"

    def allowed(self):
        return "an IPv4 address"


# Image references as the registries spell them (distribution/reference's grammar), ASCII only.
_IMAGE_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
# A first component is a registry host only when it has a '.' or a port, or is localhost (as Docker reads it).
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_IMAGE_DOMAIN = rf"(?:(?:{_HOST_LABEL}(?:\.{_HOST_LABEL})+(?::[0-9]+)?|{_HOST_LABEL}:[0-9]+|localhost)/)?"
_IMAGE_RE = re.compile(
    rf"(?P<name>{_IMAGE_DOMAIN}{_IMAGE_COMPONENT}(?:/{_IMAGE_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?",
    re.ASCII,
)


def image_pin_problem(ref: str) -> Optional[str]:
    """Why an image reference is not a valid, pinned one, or None when it is."""
    match = _IMAGE_RE.fullmatch(ref)
    if not match:
        if "@" in ref:
            return "expected an image digest as @sha256: followed by 64 lower-case hex digits"
        return "expected an image reference such as repo/name:1.2.3 or repo/name@sha256:<64 hex digits>"
    if match["digest"]:
        return None
    if not match["tag"]:
        return "expected an image pinned to a release tag or digest (repo:tag or repo@sha256:...), not an untagged image"
    if match["tag"].endswith("latest"):
        return "expected an image pinned to a release tag or digest, not a moving 'latest' tag"
    return None


class Image(Kind):
    def problem(self, raw):
        return image_pin_problem(raw)

    def allowed(self):
        return "pinned by tag or sha256 digest"


class Url(Kind):
    """http(s) without credentials: a credential in a URL would sit in plaintext in state and outputs."""

    def quote(self, raw):
        # Never repeat a credential back: drop whatever stands before an '@' in the authority.
        return shown(re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1***@", raw))

    def problem(self, raw):
        try:
            parts = urllib.parse.urlsplit(raw)
            port_ok = parts.port is None or 1 <= parts.port <= 65535
        except ValueError:
            return "expected an http:// or https:// URL"
        if not raw.isascii() or re.search(r"[\s\x00-\x1f\x7f]", raw) or parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            return "expected an http:// or https:// URL"
        if parts.username is not None or parts.password is not None:
            return "a URL must not hold credentials; put them in their own secret key"
        return None

    def allowed(self):
        return "http(s) URL without credentials"


class Secret(Kind):
    """A credential: must be stored encrypted; the value is an opaque handle."""

    def allowed(self):
        return "stored with --secret"


@dataclass(frozen=True)
class StringList(Kind):
    """A list of strings (Pulumi hands arrays to the program as JSON); `item` checks each entry."""

    item: Kind
    unique: bool = False
    schema_type = "array"

    def parse(self, knob, raw, problems):
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):  # deeply nested brackets overflow the parser's stack
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.add(knob.key, f"got {shown(raw)}; expected a list of strings, e.g. [\"a\", \"b\"]")
            return ()
        bad = [(entry, self.item.problem(entry)) for entry in value]
        bad = [(entry, problem) for entry, problem in bad if problem]
        for entry, problem in bad[:5]:
            problems.add(knob.key, f"item {shown(entry)}: {problem}")
        if len(bad) > 5:
            problems.add(knob.key, f"{len(bad) - 5} more items are invalid the same way")
        if self.unique and len(set(value)) != len(value):
            duplicated = sorted(v for v, n in collections.Counter(value).items() if n > 1)
            more = f" (and {len(duplicated) - 5} other entries)" if len(duplicated) > 5 else ""
            problems.add(knob.key, f"lists {', '.join(map(shown, duplicated[:5]))} more than once{more}; each entry must be unique")
        return tuple(value)

    def allowed(self):
        return f"a list of: {self.item.allowed()}" if self.item.allowed() else "a list"


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


# --- value grammars of single knobs ---------------------------------------------------------------

MISTRAL_IMAGE_REPO = "ghcr.io/ericlbuehler/mistral.rs"
# The first release with engine metrics and TTFT/ITL histograms (shared/reference upstream facts).
MISTRAL_MIN_VERSION = (0, 9, 2)
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
# Channels the stack's Alertmanager can deliver to with every credential in a file (`*_file` fields).
ALERTMANAGER_CHANNELS = ("slack", "email", "pagerduty")
# Kinds of Ollama metrics exporter the stack can map (llmstack/engines/ollama.py has one mapping each).
OLLAMA_EXPORTERS = ("norskhelsenett", "http")
# The model cache volume's mount point in the mistral.rs image (its HF_HOME); a local model lives under it.
MODEL_CACHE_PATH = "/data"


class Version(Kind):
    def problem(self, raw):
        match = re.fullmatch(r"(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})", raw, re.ASCII)
        if not match:
            return "expected a release version X.Y.Z, 0.9.2 or newer (never 'latest')"
        if tuple(int(x) for x in match.groups()) < MISTRAL_MIN_VERSION:
            return "expected 0.9.2 or newer (older releases lack the engine metrics this stack monitors)"
        return None

    def allowed(self):
        return "X.Y.Z, 0.9.2 or newer"


CUDA_VARIANT = Pattern(r"cuda[0-9]{3}-sm(80|86|89|90|100|120)", "cudaNNN-smCC with CC one of 80, 86, 89, 90, 100, 120 (e.g. cuda128-sm90)")
# A Hugging Face repo id as the hub spells it (org/name: letters, digits, '-', '_', '.', at most 96
# characters each, no '--' or '..'), or a local directory inside the model cache volume.
MODEL_ID = Pattern(
    r"(?!.*(--|\.\.))[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}"
    rf"|{MODEL_CACHE_PATH}(/(?!\.\.?(/|$))[A-Za-z0-9._-]+)+",
    f"a Hugging Face model id org/name (letters, digits, '-', '_', '.'), or a directory under {MODEL_CACHE_PATH}/",
)
GPU_ID = Pattern(
    r"0|[1-9][0-9]?|GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    "a GPU index such as 0, or a UUID such as GPU-8f3c1a2b-0c1d-4e5f-8a9b-0c1d2e3f4a5b (as nvidia-smi -L prints it)",
)
EMAIL = Pattern(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+", "an e-mail address")
USER_NAME = Pattern(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}", "a user name: letters, digits, '.', '_', '@', '-', at most 64 characters")
SLACK_CHANNEL = Pattern(r"[#@]?[a-z0-9][a-z0-9._-]{0,79}", "a Slack channel such as #llm-alerts (lower case, digits, '-', '_', '.')")
CLUSTER_LABEL = Pattern(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}", "letters, digits, '.', '_', ':' or '-', at most 63 characters")
STACK_NAME = Pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", "letters, digits, '.', '_' or '-' (it becomes the env label)")

# Kubernetes names and labels as the API server validates them (apimachinery's validation package).
_DNS_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DNS_SUBDOMAIN = rf"{_DNS_LABEL}(?:\.{_DNS_LABEL})*"
_LABEL_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?"
_LABEL_KEY = rf"(?:{_DNS_SUBDOMAIN}/)?{_LABEL_NAME}"
_LABEL_VALUE = rf"(?:{_LABEL_NAME})?"
NAMESPACE = Pattern(_DNS_LABEL, "a Kubernetes namespace name: lower-case letters, digits and '-', at most 63 characters")
LABEL_PAIR = Pattern(
    rf"{_LABEL_KEY}={_LABEL_VALUE}",
    "KEY=VALUE with a Kubernetes label key (optional prefix/, then name) and value (letters, digits, '-', '_', '.', at most 63)",
)
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
# kubectl taint's own spelling: key[=value]:Effect.
TOLERATION = Pattern(
    rf"{_LABEL_KEY}(?:={_LABEL_VALUE})?:(?:{'|'.join(TAINT_EFFECTS)})",
    f"KEY[=VALUE]:EFFECT as kubectl taint writes a taint, EFFECT one of {', '.join(TAINT_EFFECTS)} (without =VALUE any value is tolerated)",
)
KUBE_CONTEXT = Pattern(r"[A-Za-z0-9@:._/-]{1,253}", "a kubeconfig context name")
JOB_NAME = Pattern(r"[A-Za-z0-9_.:/-]{1,128}", "a Prometheus job label value")
CHART_VERSION = Pattern(r"(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})\.(0|[1-9][0-9]{0,3})", "a chart release version X.Y.Z")


def label_pairs(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """KEY=VALUE entries as (key, value), in the order given."""
    return tuple(tuple(item.split("=", 1)) for item in items)  # type: ignore[misc]


@dataclass(frozen=True)
class Toleration:
    key: str
    value: Optional[str]  # None: operator Exists
    effect: str

    def as_dict(self) -> dict:
        if self.value is None:
            return {"key": self.key, "operator": "Exists", "effect": self.effect}
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}


def parse_toleration(item: str) -> Toleration:
    taint, _, effect = item.rpartition(":")
    key, has_value, value = taint.partition("=")
    return Toleration(key, value if has_value else None, effect)


@dataclass(frozen=True)
class OllamaTarget:
    exporter: str
    address: str  # host:port
    metrics_path: str


_OLLAMA_TARGET_RE = re.compile(
    rf"(?P<exporter>{'|'.join(OLLAMA_EXPORTERS)})@"
    r"(?P<address>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?:(?P<port>[0-9]{1,5}))"
    r"(?P<path>(?:/[A-Za-z0-9._~-]+)+)?",
    re.ASCII,
)


class OllamaTargetKind(Kind):
    def problem(self, raw):
        match = _OLLAMA_TARGET_RE.fullmatch(raw)
        if not match:
            return f"expected EXPORTER@HOST:PORT[/PATH] with EXPORTER one of: {', '.join(OLLAMA_EXPORTERS)}"
        if not 1 <= int(match["port"]) <= 65535:
            return "expected a port from 1 to 65535 after the host"
        return None

    def allowed(self):
        return f"EXPORTER@HOST:PORT[/PATH], EXPORTER one of {', '.join(OLLAMA_EXPORTERS)}"


def parse_ollama_target(item: str) -> OllamaTarget:
    match = _OLLAMA_TARGET_RE.fullmatch(item)
    return OllamaTarget(exporter=match["exporter"], address=match["address"], metrics_path=match["path"] or "/metrics")


# --- remote write: a list of objects --------------------------------------------------------------

# Prometheus's own defaults since 2.47, written out so the 2.42 promtool checks and the image the
# stack runs send alike (2.42's were smaller: capacity 2500, 200 shards, 500 samples a request).
@dataclass(frozen=True)
class RemoteWriteQueue:
    capacity: int = 10000
    max_shards: int = 50
    min_shards: int = 1
    max_samples_per_send: int = 2000
    batch_send_deadline: str = "5s"
    min_backoff: str = "30ms"
    max_backoff: str = "5s"


# queue field in the config -> (RemoteWriteQueue field, kind). The bounds keep a typo from sizing a
# queue that holds the host's memory (capacity and shards multiply) or backs off for hours.
_QUEUE_FIELDS: dict[str, tuple[str, Kind]] = {
    "capacity": ("capacity", Integer(1, 1_000_000)),
    "maxShards": ("max_shards", Integer(1, 1000)),
    "minShards": ("min_shards", Integer(1, 1000)),
    "maxSamplesPerSend": ("max_samples_per_send", Integer(1, 100_000)),
    "batchSendDeadline": ("batch_send_deadline", Duration("100ms", "5m")),
    "minBackoff": ("min_backoff", Duration("10ms", "1m")),
    "maxBackoff": ("max_backoff", Duration("100ms", "10m")),
}


@dataclass(frozen=True)
class RemoteWrite:
    """One remote write endpoint. The credentials live in config keys of their own, stored with
    --secret; this names them, and the loader fills in their values as opaque handles."""

    position: int  # its place in the list; names its credential files
    url: str
    name: Optional[str] = None
    username: Optional[str] = None
    password_key: Optional[str] = None
    bearer_token_key: Optional[str] = None
    queue: RemoteWriteQueue = RemoteWriteQueue()
    password: Any = None
    bearer_token: Any = None

    @property
    def secret_keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.password_key, self.bearer_token_key) if k)


MAX_REMOTE_WRITES = 10
REMOTE_WRITE_NAME = Pattern(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", "a name of letters, digits, '.', '_' or '-', at most 64 characters")
SECRET_KEY_NAME = Pattern(r"[A-Za-z][A-Za-z0-9_-]{0,99}", "a config key name: a letter, then letters, digits, '_' or '-'")
_ENTRY_FIELDS = ("url", "name", "basicAuth", "bearerTokenKey", "queue")
_BASIC_AUTH_FIELDS = ("username", "passwordKey")
_REMOTE_WRITE_EXAMPLE = '[{"url": "https://mimir.example.com/api/v1/push", "basicAuth": {"username": "tenant-1", "passwordKey": "remoteWriteMimirPassword"}}]'


def _field_name(name: Any) -> str:
    text = str(name)
    return text[:_MAX_SHOWN] if re.fullmatch(r"[A-Za-z0-9_.-]+", text[:_MAX_SHOWN]) else shown(text)


class RemoteWriteList(Kind):
    """`prometheusRemoteWrite`: a list of objects (Pulumi hands structured values over as JSON).
    Every problem names the entry and field, e.g. prometheusRemoteWrite[1].queue.maxShards."""

    schema_type = None
    secret_hint = (
        " Credentials go in keys of their own, stored with --secret and named by basicAuth.passwordKey or bearerTokenKey"
    )

    @property
    def shown_type(self) -> str:
        return "list of objects"

    def allowed(self):
        return (
            f"at most {MAX_REMOTE_WRITES} objects: url (http or https), optional name, basicAuth {{username, passwordKey}} "
            "or bearerTokenKey (names of keys set with --secret), queue {" + ", ".join(_QUEUE_FIELDS) + "}"
        )

    def parse(self, knob, raw, problems):
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError):  # deeply nested brackets overflow the parser's stack
            value = None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            problems.add(knob.key, f"got {shown(raw)}; expected a list of objects, e.g. {_REMOTE_WRITE_EXAMPLE}")
            return ()
        if len(value) > MAX_REMOTE_WRITES:
            problems.add(knob.key, f"lists {len(value)} endpoints; at most {MAX_REMOTE_WRITES} (each one is a queue of its own in Prometheus's memory)")
            return ()
        entries = [self._entry(f"{knob.key}[{i}]", i, item, problems) for i, item in enumerate(value)]
        valid = [e for e in entries if e is not None]
        for label, of in (("url", lambda e: e.url), ("name", lambda e: e.name)):
            seen: dict[str, int] = {}
            for e in valid:
                if of(e) is None:
                    continue
                if of(e) in seen:
                    problems.add(f"{knob.key}[{e.position}].{label}", f"repeats the {label} of {knob.key}[{seen[of(e)]}]; each endpoint's {label} must be unique")
                else:
                    seen[of(e)] = e.position
        return tuple(valid)

    @staticmethod
    def _text(at: str, item: dict, name: str, kind: Kind, problems: Problems) -> Optional[str]:
        value = item.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            problems.add(f"{at}.{name}", f"got {shown(json.dumps(value))}; expected text: {kind.allowed()}")
            return None
        problem = kind.problem(value)
        if problem:
            problems.add(f"{at}.{name}", f"got {kind.quote(value)}; {problem}")
            return None
        return value

    @staticmethod
    def _unknown(at: str, item: dict, allowed: Sequence[str], problems: Problems) -> bool:
        extra = sorted(set(map(str, item)) - set(allowed))
        for name in extra[:5]:
            close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6) or [a for a in allowed if a.lower() == name.lower()]
            hint = f"did you mean {close[0]}? " if close else ""
            problems.add(f"{at}.{_field_name(name)}", f"is not a field here; {hint}allowed: {', '.join(allowed)}")
        return bool(extra)

    def _entry(self, at: str, position: int, item: dict, problems: Problems) -> Optional[RemoteWrite]:
        before = len(problems.items)
        self._unknown(at, item, _ENTRY_FIELDS, problems)
        url = self._text(at, item, "url", Url(), problems)
        if "url" not in item:
            problems.add(f"{at}.url", "is required: the endpoint's remote write URL, e.g. https://mimir.example.com/api/v1/push")
        name = self._text(at, item, "name", REMOTE_WRITE_NAME, problems)
        username = password_key = None
        auth = item.get("basicAuth")
        if auth is not None:
            if not isinstance(auth, dict):
                problems.add(f"{at}.basicAuth", "expected an object {username, passwordKey}")
            else:
                self._unknown(f"{at}.basicAuth", auth, _BASIC_AUTH_FIELDS, problems)
                username = self._text(f"{at}.basicAuth", auth, "username", USER_NAME, problems)
                password_key = self._text(f"{at}.basicAuth", auth, "passwordKey", SECRET_KEY_NAME, problems)
                for missing in [f for f in _BASIC_AUTH_FIELDS if f not in auth]:
                    problems.add(f"{at}.basicAuth.{missing}", "is required with basicAuth")
        token_key = self._text(at, item, "bearerTokenKey", SECRET_KEY_NAME, problems)
        if auth is not None and "bearerTokenKey" in item:
            problems.add(f"{at}.bearerTokenKey", "and basicAuth are both set; Prometheus sends one kind of credentials: keep one")
        declared = {k.key for k in knobs()}
        for field_name, key in (("basicAuth.passwordKey", password_key), ("bearerTokenKey", token_key)):
            if key in declared:
                problems.add(f"{at}.{field_name}", f"names {key}, a setting of this stack; name a key of its own for this credential")
        queue = self._queue(f"{at}.queue", item.get("queue"), problems)
        if len(problems.items) > before:
            return None
        return RemoteWrite(position, url, name, username, password_key, token_key, queue)

    def _queue(self, at: str, raw: Any, problems: Problems) -> RemoteWriteQueue:
        if raw is None:
            return RemoteWriteQueue()
        if not isinstance(raw, dict):
            problems.add(at, "expected an object with any of: " + ", ".join(_QUEUE_FIELDS))
            return RemoteWriteQueue()
        self._unknown(at, raw, tuple(_QUEUE_FIELDS), problems)
        values = {}
        for name, (attr, kind) in _QUEUE_FIELDS.items():
            if name not in raw:
                continue
            value = raw[name]
            # Numbers arrive as JSON numbers or, from `pulumi config set --path`, as text.
            text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
            if not isinstance(text, str):
                what = "a whole number" if isinstance(kind, Integer) else "a duration"
                problems.add(f"{at}.{name}", f"got {shown(json.dumps(value))}; expected {what} {kind.allowed()}")
                continue
            problem = kind.problem(text)
            if problem:
                problems.add(f"{at}.{name}", f"got {shown(text)}; {problem}")
                continue
            values[attr] = kind.convert(text)
        queue = dataclasses.replace(RemoteWriteQueue(), **values)
        if queue.min_shards > queue.max_shards:
            problems.add(f"{at}.minShards", f"got {queue.min_shards}; must not exceed maxShards ({queue.max_shards})")
        if duration_seconds(queue.min_backoff) > duration_seconds(queue.max_backoff):
            problems.add(f"{at}.minBackoff", f"got {queue.min_backoff!r}; must not exceed maxBackoff ({queue.max_backoff})")
        if queue.max_samples_per_send > queue.capacity:
            problems.add(
                f"{at}.maxSamplesPerSend",
                f"got {queue.max_samples_per_send}; must not exceed capacity ({queue.capacity}): a shard's buffer must hold a whole request",
            )
        return queue


# --- the typed configuration: one field per knob ---------------------------------------------------

_SECRET_HINT = "Secret: set with --secret."
_LATENCY = Integer(1, LATENCY_LARGEST_BUCKET_SECONDS - 1)
_LATENCY_WHY = (
    f"Below {LATENCY_LARGEST_BUCKET_SECONDS}s, mistral.rs's largest finite latency bucket, which a p95 never exceeds "
    "(Ollama's NorskHelsenett exporter stops at 60s)."
)
_PUBLIC_WHY = "Anything but 127.0.0.1 also needs allowPublicBind."


@dataclass(frozen=True)
class MistralConfig:
    model_id: str = knob("mistralModelId", MODEL_ID, None, "Hugging Face model id (org/name), or a local directory under /data (the cache volume), that `mistralrs serve -m` loads. Required.")
    image_flavour: str = knob("mistralImageFlavour", Choice(("cpu", "cuda")), "cpu", "Image build: cpu or cuda (cuda also requests the GPU).")
    version: str = knob("mistralVersion", Version(), "0.9.2", "Mistral.rs release, X.Y.Z, 0.9.2 or newer.")
    cuda_variant: str = knob("mistralCudaVariant", CUDA_VARIANT, "cuda128-sm90", "CUDA image variant cudaNNN-smCC (sm80, 86, 89, 90, 100, 120) used when the flavour is cuda.")
    port: int = knob("mistralPort", PORT, 1234, "Port the server listens on inside the container; /metrics is served on it too.")
    # Only all-interfaces binds: Prometheus and the published port reach the server from outside its
    # container, so a loopback bind would leave it unreachable while its own healthcheck stays green.
    host: str = knob("mistralHost", Choice(("0.0.0.0", "::")), "0.0.0.0", "Bind address inside the container: all interfaces (IPv4 or IPv6), or Prometheus could not reach it.")
    max_seqs: int = knob("mistralMaxSeqs", Integer(1, 4096), 16, "--max-seqs: the most sequences the engine runs at once (the queue capacity).")
    isq: str = knob("mistralIsq", Choice(ISQ_LEVELS), "none", "In-situ quantization level (--isq), or none.")
    paged_attn: str = knob("mistralPagedAttn", Choice(("auto", "on", "off")), "auto", "PagedAttention mode: auto, on or off.")
    gpu_device_ids: tuple[str, ...] = knob("mistralGpuDeviceIds", StringList(GPU_ID, unique=True), [], "GPU indexes or UUIDs for the container, each once; empty means all GPUs (cuda only).")
    publish_address: str = knob("mistralPublishAddress", Address(), "127.0.0.1", f"Host address the API port is published on. {_PUBLIC_WHY}")
    publish_port: int = knob("mistralPublishPort", PORT, 1234, "Host port the API is published on.")
    # 0, or enough for a small model: Qwen3-0.6B's weights alone take about 1.2 GiB.
    memory_limit_mb: int = knob("mistralMemoryLimitMb", Integer(0, 4194304), 0, "Container memory limit in MiB; 0 means no limit, otherwise at least 2048 (the smallest model the stack is tested with needs about 1.2 GiB for its weights alone).")
    hf_token: Any = knob("hfToken", Secret(), "", f"Hugging Face token for gated models. {_SECRET_HINT}")

    @property
    def image(self) -> str:
        prefix = "cpu" if self.image_flavour == "cpu" else self.cuda_variant
        return f"{MISTRAL_IMAGE_REPO}:{prefix}-{self.version}"

    @property
    def uses_gpu(self) -> bool:
        return self.image_flavour == "cuda"


MIN_MEMORY_LIMIT_MB = 2048


@dataclass(frozen=True)
class PrometheusConfig:
    image: str = knob("prometheusImage", Image(), "prom/prometheus:v3.5.0", "Prometheus image, pinned by tag or digest.")
    scrape_interval: str = knob("scrapeInterval", Duration("1s", MAX_INTERVAL), "15s", f"Global scrape interval; at most {MAX_INTERVAL}, so the alerts' {SHORT_WINDOW} windows hold {SAMPLES_PER_WINDOW} samples.")
    evaluation_interval: str = knob("evaluationInterval", Duration("1s", MAX_INTERVAL), "15s", f"Global rule evaluation interval; at most {MAX_INTERVAL}, so the {SHORT_WINDOW} records the alerts read hold {SAMPLES_PER_WINDOW} samples.")
    scrape_timeout: str = knob("scrapeTimeout", Duration("1s", MAX_INTERVAL), "10s", "Global scrape timeout; at most the scrape interval.")
    # At least a day: the model-load records look back a day (llmstack/resources.py, LATCH_WINDOW).
    retention_time: str = knob("prometheusRetentionTime", Duration("1d", "10y"), "15d", "TSDB retention time (--storage.tsdb.retention.time); at least 1d, the look-back of the model-load records.")
    retention_size: str = knob("prometheusRetentionSize", Size("512MB", "100TB"), "10GB", "TSDB retention size (--storage.tsdb.retention.size); at least 512MB, a few hours of one stack's series.")
    publish_address: str = knob("prometheusPublishAddress", Address(), "127.0.0.1", f"Host address the Prometheus UI/API is published on. {_PUBLIC_WHY}")
    publish_port: int = knob("prometheusPublishPort", PORT, 9090, "Host port of the Prometheus UI/API.")
    lifecycle_api: bool = knob("prometheusLifecycleApi", Boolean(), False, "Turn on Prometheus's lifecycle API (/-/reload, /-/quit): anyone who reaches the port could stop Prometheus.")
    admin_api: bool = knob("prometheusAdminApi", Boolean(), False, "Turn on Prometheus's admin API (delete series, snapshots): anyone who reaches the port could delete data.")
    ollama_targets: tuple[OllamaTarget, ...] = knob(
        "ollamaTargets",
        StringList(OllamaTargetKind()),
        [],
        "Existing Ollama metrics endpoints to scrape, each EXPORTER@HOST:PORT[/PATH] with EXPORTER one of: " + ", ".join(OLLAMA_EXPORTERS) + ".",
    )
    remote_write: tuple[RemoteWrite, ...] = knob(
        "prometheusRemoteWrite",
        RemoteWriteList(),
        [],
        "Long-term stores (Mimir, Thanos Receive, Cortex) Prometheus sends every sample to: a list of objects with url, "
        "optional name, basicAuth {username, passwordKey} or bearerTokenKey, and queue settings. A credential sits in its "
        "own key, set with --secret, that passwordKey or bearerTokenKey names. See docs/remote-write.md.",
    )
    cluster_label: str = knob(
        "prometheusClusterLabel",
        CLUSTER_LABEL,
        "",
        "Value of the `cluster` external label on every sample sent out (remote write) and every alert sent to Alertmanager, "
        "beside `env`; empty means llmstack-<stack>.",
    )


@dataclass(frozen=True)
class AlertThresholds:
    latency_p95_warning_seconds: int = knob("alertLatencyP95WarningSeconds", _LATENCY, 10, f"p95 request latency that raises a warning. {_LATENCY_WHY}")
    latency_p95_critical_seconds: int = knob("alertLatencyP95CriticalSeconds", _LATENCY, 30, f"p95 request latency that pages. {_LATENCY_WHY}")
    ttft_p95_warning_seconds: int = knob(
        "alertTtftP95WarningSeconds",
        Integer(1, TTFT_LARGEST_BUCKET_SECONDS - 1),
        5,
        f"p95 time to first token that raises a warning. Below {TTFT_LARGEST_BUCKET_SECONDS}s, the TTFT histogram's largest finite bucket.",
    )
    error_ratio_warning_percent: int = knob("alertErrorRatioWarningPercent", PERCENT, 5, "Share of 5xx responses (percent) that raises a warning.")
    error_ratio_critical_percent: int = knob("alertErrorRatioCriticalPercent", PERCENT, 20, "Share of 5xx responses (percent) that pages.")
    error_critical_min_failures: int = knob(
        "alertErrorCriticalMinFailures",
        Integer(1, 1000),
        10,
        "Failed requests over the last 5 minutes the critical error alert also needs, so a couple of failures at low traffic cannot page.",
    )
    kv_cache_warning_percent: int = knob("alertKvCacheWarningPercent", PERCENT, 90, "KV-cache block utilisation (percent) that raises a warning.")
    kv_cache_critical_percent: int = knob("alertKvCacheCriticalPercent", PERCENT, 98, "KV-cache block utilisation (percent) that pages.")
    queue_saturation_for: str = knob(
        "alertQueueSaturationFor",
        Duration("1m", "1h"),
        "5m",
        "How long requests must wait while every sequence slot is busy before the saturation alert fires; longer than 1h would hide a saturated server for most of a shift.",
    )
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
    url: Optional[str] = knob("grafanaUrl", Url(), "", "URL of an existing Grafana to manage, without credentials (they go in grafanaAuth); empty provisions Grafana in the stack.")
    auth: Any = knob("grafanaAuth", Secret(), "", f"Service-account token for grafanaUrl. {_SECRET_HINT}")
    image: str = knob("grafanaImage", Image(), "grafana/grafana:12.2.1", "Grafana image, pinned by tag or digest.")
    admin_user: str = knob("grafanaAdminUser", USER_NAME, "admin", "Admin user of the provisioned Grafana (its password is generated and kept secret).")
    publish_address: str = knob("grafanaPublishAddress", Address(), "127.0.0.1", f"Host address the provisioned Grafana is published on. {_PUBLIC_WHY}")
    publish_port: int = knob("grafanaPublishPort", PORT, 3000, "Host port of the provisioned Grafana.")

    @property
    def provisioned(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class AlertingConfig:
    slack_url: Any = knob("alertSlackUrl", Secret(), "", f"Slack incoming-webhook URL for the work channel. {_SECRET_HINT}")
    slack_channel: Optional[str] = knob("alertSlackChannel", SLACK_CHANNEL, "", "Slack channel override for alertSlackUrl.")
    email_addresses: tuple[str, ...] = knob("alertEmailAddresses", StringList(EMAIL), [], "E-mail addresses that receive warnings (and critical alerts when nothing pages).")
    webhook_url: Any = knob("alertWebhookUrl", Secret(), "", f"Generic webhook URL that receives every alert. {_SECRET_HINT}")
    webhook_user: Optional[str] = knob("alertWebhookUser", USER_NAME, "", "Basic-auth user for alertWebhookUrl.")
    webhook_password: Any = knob("alertWebhookPassword", Secret(), "", f"Basic-auth password for alertWebhookUrl. {_SECRET_HINT}")
    pagerduty_key: Any = knob("alertPagerdutyKey", Secret(), "", f"PagerDuty Events v2 integration key; critical alerts page it. {_SECRET_HINT}")
    group_wait: str = knob("alertGroupWait", Duration("1s", "10m"), "30s", "Notification policy group_wait.")
    group_interval: str = knob("alertGroupInterval", Duration("10s", "1h"), "5m", "Notification policy group_interval (also the Watchdog heartbeat's repeat interval).")
    repeat_interval: str = knob("alertRepeatInterval", Duration("1m", "7d"), "4h", "Notification policy repeat_interval; at least alertGroupInterval.")
    delivery: str = knob(
        "alertDelivery",
        Choice(("grafana", "alertmanager", "both")),
        "grafana",
        "Who delivers notifications: Grafana contact points, an Alertmanager (the stack's own, or alertmanagerUrls), or both, each channel through one of them.",
    )
    alertmanager_channels: tuple[str, ...] = knob(
        "alertmanagerChannels",
        StringList(Choice(ALERTMANAGER_CHANNELS), unique=True),
        list(ALERTMANAGER_CHANNELS),
        "With alertDelivery both: the channels the stack's Alertmanager delivers to; Grafana delivers to the others. "
        "The webhook always goes through Grafana (Alertmanager 0.25 cannot read a webhook URL from a file, so it would sit in plaintext).",
    )
    smtp_smarthost: Optional[str] = knob(
        "alertSmtpSmarthost",
        Pattern(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?:[0-9]{1,5}", "HOST:PORT of an SMTP server"),
        "",
        "SMTP server (HOST:PORT) the stack's Alertmanager sends e-mail through; required when it owns e-mail.",
    )
    smtp_from: Optional[str] = knob("alertSmtpFrom", EMAIL, "", "Sender address of the Alertmanager's e-mail.")
    smtp_auth_user: Optional[str] = knob("alertSmtpAuthUser", USER_NAME, "", "SMTP user for alertSmtpSmarthost.")
    smtp_auth_password: Any = knob("alertSmtpAuthPassword", Secret(), "", f"SMTP password for alertSmtpSmarthost. {_SECRET_HINT}")
    heartbeat_url: Optional[str] = knob(
        "alertHeartbeatUrl",
        Url(),
        "",
        "Dead man's switch for the Alertmanager path: the Watchdog is sent here every alertGroupInterval, so a heartbeat service notices a silent pipeline. No credentials in the URL (alertHeartbeatToken carries one).",
    )
    heartbeat_token: Any = knob("alertHeartbeatToken", Secret(), "", f"Bearer token for alertHeartbeatUrl. {_SECRET_HINT}")
    runbook_base_url: str = knob(
        "runbookBaseUrl",
        Url(),
        "https://github.com/example/llmstack/blob/main/docs/runbooks.md",
        "Where on-call reads this repository's docs/runbooks.md; every alert links to its section there. Set it to your copy.",
    )


@dataclass(frozen=True)
class AlertmanagerConfig:
    urls: tuple[str, ...] = knob(
        "alertmanagerUrls",
        StringList(Url(), unique=True),
        [],
        "Existing Alertmanagers to send alerts to (http or https); empty runs the stack's own when alertDelivery uses Alertmanager. Their routing is theirs.",
    )
    basic_auth_user: Optional[str] = knob("alertmanagerBasicAuthUser", USER_NAME, "", "Basic-auth user for alertmanagerUrls.")
    basic_auth_password: Any = knob("alertmanagerBasicAuthPassword", Secret(), "", f"Basic-auth password for alertmanagerUrls. {_SECRET_HINT}")
    bearer_token: Any = knob("alertmanagerBearerToken", Secret(), "", f"Bearer token for alertmanagerUrls. {_SECRET_HINT}")
    # The version the stack's rendered config is checked against here (Debian's amtool and alertmanager).
    image: str = knob("alertmanagerImage", Image(), "prom/alertmanager:v0.25.0", "The stack's own Alertmanager image, pinned by tag or digest.")
    publish_address: str = knob("alertmanagerPublishAddress", Address(), "127.0.0.1", f"Host address the stack's Alertmanager is published on. {_PUBLIC_WHY}")
    publish_port: int = knob("alertmanagerPublishPort", PORT, 9093, "Host port of the stack's Alertmanager.")

    @property
    def provisioned(self) -> bool:
        return not self.urls


_OLLAMA_PROBE_RE = re.compile(
    r"(?P<model>[A-Za-z0-9][A-Za-z0-9._:/-]{0,127})@(?P<address>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?:(?P<port>[0-9]{1,5}))",
    re.ASCII,
)


class OllamaProbeKind(Kind):
    def problem(self, raw):
        match = _OLLAMA_PROBE_RE.fullmatch(raw)
        if not match or not 1 <= int(match["port"]) <= 65535:
            return "expected MODEL@HOST:PORT: a model Ollama serves, and Ollama's API address (port 1 to 65535)"
        return None

    def allowed(self):
        return "MODEL@HOST:PORT"


@dataclass(frozen=True)
class OllamaProbe:
    model: str
    address: str  # host:port of Ollama's own API


_ENGINE_TARGET_RE = re.compile(
    r"(?P<model>[A-Za-z0-9][A-Za-z0-9._:/-]{0,127})@"
    r"(?P<address>[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?:(?P<port>[0-9]{1,5}))"
    r"(?P<path>(?:/[A-Za-z0-9._~-]+)+)?",
    re.ASCII,
)


@dataclass(frozen=True)
class EngineTarget:
    """An existing inference server the stack scrapes: the model it serves and its metrics endpoint."""

    model: str
    address: str  # host:port
    metrics_path: str


class EngineTargetKind(Kind):
    def problem(self, raw):
        match = _ENGINE_TARGET_RE.fullmatch(raw)
        if not match or not 1 <= int(match["port"]) <= 65535:
            return "expected MODEL@HOST:PORT[/PATH]: the model the server serves, and its metrics address (port 1 to 65535)"
        return None

    def allowed(self):
        return "MODEL@HOST:PORT[/PATH]"


def parse_engine_target(item: str) -> EngineTarget:
    match = _ENGINE_TARGET_RE.fullmatch(item)
    return EngineTarget(model=match["model"], address=match["address"], metrics_path=match["path"] or "/metrics")


def _engine_targets(key: str, engine: str, how: str) -> Any:
    return knob(key, StringList(EngineTargetKind()), [], f"Existing {engine} servers to scrape, each MODEL@HOST:PORT[/PATH] ({how}).")


@dataclass(frozen=True)
class EnginesConfig:
    """Existing servers of the other engines the stack maps into the shared schema (llmstack/engines/)."""

    vllm_targets: tuple[EngineTarget, ...] = _engine_targets("vllmTargets", "vLLM", "vllm serve exports /metrics on its API port")
    tgi_targets: tuple[EngineTarget, ...] = _engine_targets("tgiTargets", "Hugging Face TGI", "text-generation-launcher exports /metrics on its API port")
    llamacpp_targets: tuple[EngineTarget, ...] = _engine_targets("llamacppTargets", "llama.cpp", "llama-server started with --metrics")


@dataclass(frozen=True)
class ProbesConfig:
    enabled: bool = knob(
        "probesEnabled",
        AutoBool(),
        "auto",
        "Run the blackbox exporter and probe every server with a real, one-token generation (and /health): auto (on with platform docker), true or false. Docker only.",
    )
    image: str = knob("blackboxImage", Image(), "prom/blackbox-exporter:v0.23.0", "Blackbox exporter image, pinned by tag or digest.")
    interval: str = knob("probeInterval", Duration("30s", "1m"), "30s", "How often each server is probed (each probe is a real request).")
    # A generation probe may wait behind queued requests; the timeout allows for that.
    timeout: str = knob("probeTimeout", Duration("5s", "1m"), "25s", "How long a generation probe may take, queueing included; at most probeInterval.")
    latency_warning_seconds: int = knob(
        "alertProbeLatencyWarningSeconds",
        Integer(1, 59),
        10,
        "Generation probe latency (a one-token completion, queueing included) that raises a warning; below the probe timeout.",
    )
    ollama_targets: tuple[OllamaProbe, ...] = knob(
        "ollamaProbeTargets",
        StringList(OllamaProbeKind()),
        [],
        "Ollama APIs to probe, each MODEL@HOST:PORT (the host as in ollamaTargets, so probes and metrics share an instance).",
    )
    publish_address: str = knob("blackboxPublishAddress", Address(), "127.0.0.1", f"Host address the blackbox exporter is published on. {_PUBLIC_WHY}")
    publish_port: int = knob("blackboxPublishPort", PORT, 9115, "Host port of the blackbox exporter.")


@dataclass(frozen=True)
class ExportersConfig:
    cadvisor_image: str = knob("cadvisorImage", Image(), "ghcr.io/google/cadvisor:v0.53.0", "cAdvisor image, pinned by tag or digest.")
    dcgm_enabled: bool = knob("dcgmExporterEnabled", AutoBool(), "auto", "Run the NVIDIA DCGM exporter: auto (with the cuda flavour on platform docker; on kubernetes the GPU operator runs it), true or false.")
    dcgm_image: str = knob("dcgmExporterImage", Image(), "nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04", "DCGM exporter image, pinned by tag or digest.")
    model_load_seen_within: str = knob(
        "modelLoadSeenWithin",
        Duration("30s", "1h"),
        "5m",
        "How soon after the mistral container's creation Prometheus must first see it for its model load to be timed "
        "(cAdvisor reports a new container at its next scrape, and on a first deploy Prometheus may start after mistral).",
    )


# The SLO window, and the burn rates (multiples of the budget's even spend) that page and ticket,
# each over a long window confirmed by a short one: the SRE workbook's multi-window,
# multi-burn-rate alerts (llmstack/slo.py, llmstack/alerts/slo.py).
SLO_PERIOD = "30d"
# Below this objective a 14.4x burn would need more than every request to fail: the page could never fire.
_MIN_OBJECTIVE = 95.0
_MAX_OBJECTIVE = 99.99
# The latency thresholds every latency histogram the stack reads has a bucket bound at (mistral.rs's
# HTTP duration, vLLM's end-to-end latency, the Ollama exporters'); tests/test_slo.py checks each.
SLO_LATENCY_THRESHOLDS = ("1", "5", "10", "30", "60")
SLO_AUTO = {"availability": {"prod": 99.5, "other": 99.0}, "latency": {"prod": 99.0, "other": 95.0}}


@dataclass(frozen=True)
class SloConfig:
    availability_objective: float = knob(
        "sloAvailabilityObjective",
        Objective(_MIN_OBJECTIVE, _MAX_OBJECTIVE),
        "auto",
        f"Share of inference requests (percent) that must not end in a 5xx, over {SLO_PERIOD}. auto: "
        f"{SLO_AUTO['availability']['prod']:g} on prod, {SLO_AUTO['availability']['other']:g} elsewhere. "
        f"At least {_MIN_OBJECTIVE:g}, or the 14.4x burn-rate page could never fire.",
    )
    latency_objective: float = knob(
        "sloLatencyObjective",
        Objective(_MIN_OBJECTIVE, _MAX_OBJECTIVE),
        "auto",
        f"Share of inference requests (percent) that must finish within sloLatencyThresholdSeconds, over {SLO_PERIOD}. "
        f"auto: {SLO_AUTO['latency']['prod']:g} on prod, {SLO_AUTO['latency']['other']:g} elsewhere.",
    )
    latency_threshold_seconds: str = knob(
        "sloLatencyThresholdSeconds",
        Choice(SLO_LATENCY_THRESHOLDS),
        "30",
        "End-to-end latency a request must stay within to count as good for the latency SLO. One of the bucket "
        "bounds every engine's latency histogram shares, so the share is read exactly from the buckets.",
    )

    @property
    def objectives(self) -> dict[str, float]:
        """SLO name -> objective as a ratio (0.995)."""
        return {"availability": self.availability_objective / 100, "latency": self.latency_objective / 100}


PLATFORMS = ("docker", "kubernetes")
# The kube-prometheus-stack release the optional install pins (prometheus-community/helm-charts).
PROMETHEUS_STACK_CHART = "kube-prometheus-stack"
PROMETHEUS_STACK_REPO = "https://prometheus-community.github.io/helm-charts"


@dataclass(frozen=True)
class KubernetesConfig:
    """Where and how the stack runs on a cluster (platform kubernetes): every key here is refused on docker."""

    namespace: str = knob("kubernetesNamespace", NAMESPACE, "", "Namespace the stack creates and runs the server in; empty means llmstack-<stack>.")
    kubeconfig: Any = knob("kubernetesKubeconfig", Secret(), "", f"Kubeconfig (its contents) the Kubernetes provider uses; empty uses the ambient one ($KUBECONFIG or ~/.kube/config). {_SECRET_HINT}")
    context: Optional[str] = knob("kubernetesContext", KUBE_CONTEXT, "", "Kubeconfig context to deploy to; empty uses the kubeconfig's current context.")
    replicas: int = knob("kubernetesReplicas", Integer(1, 64), 1, "Mistral.rs pods (StatefulSet replicas), each with its own model cache and GPUs.")
    gpus_per_pod: int = knob("kubernetesGpusPerPod", Integer(0, 16), 1, "nvidia.com/gpu each pod requests; at least 1 with the cuda flavour, 0 with cpu.")
    node_selector: tuple[tuple[str, str], ...] = knob(
        "kubernetesNodeSelector", StringList(LABEL_PAIR), [], "Node labels the pods must run on, each KEY=VALUE (e.g. nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3)."
    )
    tolerations: tuple[Toleration, ...] = knob(
        "kubernetesTolerations", StringList(TOLERATION, unique=True), [], "Taints the pods tolerate, each KEY[=VALUE]:EFFECT as kubectl taint writes them (e.g. nvidia.com/gpu:NoSchedule)."
    )
    storage_class: Optional[str] = knob("kubernetesStorageClass", Pattern(_DNS_SUBDOMAIN, "a StorageClass name"), "", "StorageClass of the model cache volumes; empty uses the cluster's default.")
    model_cache_size: str = knob("kubernetesModelCacheSize", Size("1GB", "64TB"), "100GB", "Size of each pod's model cache volume (it keeps the weights across pod replacement).")
    startup_timeout: str = knob(
        "kubernetesStartupTimeout", Duration("5m", "6h"), "30m", "How long a new pod may take to download and load its model before the kubelet restarts it (the startup probe's budget)."
    )
    operator_selector: tuple[tuple[str, str], ...] = knob(
        "kubernetesOperatorSelector",
        StringList(LABEL_PAIR, unique=True),
        ["release=kube-prometheus-stack"],
        "Labels the ServiceMonitor and PrometheusRule carry, each KEY=VALUE: what the cluster's Prometheus selects them by (kube-prometheus-stack selects release=<its release name>).",
    )
    prometheus_url: Optional[str] = knob("kubernetesPrometheusUrl", Url(), "", "The cluster's Prometheus as Grafana reaches it (the Grafana datasource URL). Required on kubernetes.")
    cadvisor_job: str = knob("kubernetesCadvisorJob", JOB_NAME, "kubelet", "Job label of the kubelet's cAdvisor series in the cluster's Prometheus (kube-prometheus-stack: kubelet).")
    kube_state_metrics_job: str = knob(
        "kubernetesKubeStateMetricsJob", JOB_NAME, "kube-state-metrics", "Job label of kube-state-metrics in the cluster's Prometheus: the container memory limits come from it."
    )
    dcgm_job: str = knob("kubernetesDcgmJob", JOB_NAME, "nvidia-dcgm-exporter", "Job label of the GPU operator's DCGM exporter series in the cluster's Prometheus.")
    install_prometheus_stack: bool = knob(
        "kubernetesInstallPrometheusStack", Boolean(), False, "Install kube-prometheus-stack (Prometheus Operator, Prometheus, Alertmanager, Grafana) as a pinned Helm release, for a cluster that has none."
    )
    prometheus_stack_version: str = knob("kubernetesPrometheusStackVersion", CHART_VERSION, "67.8.0", "kube-prometheus-stack chart version the install pins.")
    prometheus_stack_namespace: str = knob("kubernetesPrometheusStackNamespace", NAMESPACE, "monitoring", "Namespace of the kube-prometheus-stack install.")


@dataclass(frozen=True)
class StackConfig:
    env: str  # the stack name: not a knob, it becomes every series' env label
    mistral: MistralConfig
    prometheus: PrometheusConfig
    thresholds: AlertThresholds
    grafana: GrafanaConfig
    alerting: AlertingConfig
    alertmanager: AlertmanagerConfig
    exporters: ExportersConfig
    probes: ProbesConfig
    engines: EnginesConfig
    slo: SloConfig
    kubernetes: KubernetesConfig
    platform: str = knob("platform", Choice(PLATFORMS), "docker", "Where the stack runs: docker (one host, the default) or kubernetes (a cluster with the Prometheus Operator).")
    retain_data_on_delete: bool = knob("retainDataOnDelete", AutoBool(), "auto", "Keep the data volumes (on kubernetes the model cache claims) when the stack is destroyed: auto (true on prod), true or false.")
    # The one switch for a non-loopback publish address; the policy pack reads its label.
    allow_public_bind: bool = knob("allowPublicBind", Boolean(), False, "Allow publishing ports on an address other than 127.0.0.1 (the policy pack refuses it in prod without this).")

    @property
    def on_kubernetes(self) -> bool:
        return self.platform == "kubernetes"

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
    if k.secret:
        if raw is None:
            return None
        if not source.is_secret(k.key):
            problems.add(
                k.key,
                f"is stored in plaintext; it holds a credential, so store it encrypted with `pulumi config set --secret {k.key} <value>`",
            )
            return None
        return source.get_secret(k.key)
    if raw is not None and source.is_secret(k.key):
        # The value would land in container commands, rendered files and stack outputs in the clear.
        problems.add(
            k.key,
            "is stored as a secret, but it is not a credential: its value goes into container commands, rendered "
            f"config and stack outputs in plaintext. Store it with `pulumi config set {k.key} <value>` (no --secret)." + k.kind.secret_hint,
        )
        return "" if k.required else (tuple(k.default) if isinstance(k.default, list) else k.default)
    if raw is None:
        if k.required:
            problems.add(k.key, f"is required; set it with `pulumi config set {k.key} <value>`")
            return ""
        return tuple(k.default) if isinstance(k.default, list) else k.default
    return k.kind.parse(k, raw, problems)


def _read_credential(source: ConfigSource, key: str, named_by: str, problems: Problems) -> Any:
    """The secret handle of a key a knob's value names (not itself a knob), checked like a Secret knob."""
    if source.get(key) in (None, ""):
        problems.add(named_by, f"names {key}, which is not set; set it with `pulumi config set --secret {key} <value>`")
        return None
    if not source.is_secret(key):
        problems.add(key, f"is stored in plaintext; it holds a credential ({named_by} names it), so store it encrypted with `pulumi config set --secret {key} <value>`")
        return None
    return source.get_secret(key)


def _named_credentials(raw: Optional[str]) -> frozenset:
    """Every key a remote write entry names as its credential, valid entry or not: a mistake in the
    entry is reported once, not again as an unknown key."""
    try:
        value = json.loads(raw or "[]")
    except (ValueError, RecursionError):
        return frozenset()
    entries = [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []
    found = [e.get("bearerTokenKey") for e in entries]
    found += [e["basicAuth"].get("passwordKey") for e in entries if isinstance(e.get("basicAuth"), dict)]
    return frozenset(k for k in found if isinstance(k, str))


def _with_credentials(source: ConfigSource, rw: RemoteWrite, problems: Problems) -> RemoteWrite:
    at = f"prometheusRemoteWrite[{rw.position}]"
    return dataclasses.replace(
        rw,
        password=_read_credential(source, rw.password_key, f"{at}.basicAuth.passwordKey", problems) if rw.password_key else None,
        bearer_token=_read_credential(source, rw.bearer_token_key, f"{at}.bearerTokenKey", problems) if rw.bearer_token_key else None,
    )


def _check_keys(source: ConfigSource, problems: Problems, referenced: frozenset = frozenset()) -> None:
    """A key the stack sets that no knob declares, nor a knob's value names as its credential (remote
    write), is a typo until proven otherwise."""
    known = {k.key for k in knobs()} | set(referenced)
    by_lower = {k.lower(): k for k in known}
    for key in sorted(set(source.keys()) - known):
        suggestion = by_lower.get(key.lower()) or next(iter(difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)), None)
        hint = f"; did you mean {suggestion}?" if suggestion else "; see the config table in README.md"
        name = key[:_MAX_SHOWN] if re.fullmatch(r"[A-Za-z0-9_.-]+", key[:_MAX_SHOWN]) else shown(key)
        problems.add(name, f"is not a setting of this stack{hint}")


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
    stack_problem = STACK_NAME.problem(env or "")
    if stack_problem:
        problems.items.append(f"stack name {shown(env or '')}: expected {STACK_NAME.what}")
    read = Problems()
    v = {k.key: _read(source, k, read) for k in knobs()}
    remote_writes = v["prometheusRemoteWrite"]
    _check_keys(source, problems, _named_credentials(source.get("prometheusRemoteWrite")))
    problems.items += read.items
    v["prometheusRemoteWrite"] = tuple(_with_credentials(source, rw, problems) for rw in remote_writes)
    v["prometheusClusterLabel"] = v["prometheusClusterLabel"] or f"llmstack-{env}"

    # Values whose form the kinds keep as text, and the `auto` switches.
    v["ollamaTargets"] = tuple(parse_ollama_target(i) for i in v["ollamaTargets"] if not OllamaTargetKind().problem(i))
    for key in ("vllmTargets", "tgiTargets", "llamacppTargets"):
        v[key] = tuple(parse_engine_target(i) for i in v[key] if not EngineTargetKind().problem(i))
    v["ollamaProbeTargets"] = tuple(
        OllamaProbe(m["model"], m["address"]) for i in v["ollamaProbeTargets"] if (m := _OLLAMA_PROBE_RE.fullmatch(i))
    )
    for key in ("grafanaUrl", "alertSlackChannel", "alertWebhookUser", "alertHeartbeatUrl", "alertmanagerBasicAuthUser",
                "alertSmtpSmarthost", "alertSmtpFrom", "alertSmtpAuthUser"):
        v[key] = v[key] or None
    uses_gpu = v["mistralImageFlavour"] == "cuda"
    on_kubernetes = v["platform"] == "kubernetes"
    # On a cluster the GPU operator runs the DCGM exporter and there is no blackbox exporter.
    v["dcgmExporterEnabled"] = uses_gpu and not on_kubernetes if v["dcgmExporterEnabled"] == "auto" else v["dcgmExporterEnabled"] == "true"
    v["probesEnabled"] = not on_kubernetes if v["probesEnabled"] == "auto" else v["probesEnabled"] == "true"
    for key in ("kubernetesNodeSelector", "kubernetesOperatorSelector"):
        v[key] = label_pairs(i for i in v[key] if not LABEL_PAIR.problem(i))
    v["kubernetesTolerations"] = tuple(parse_toleration(i) for i in v["kubernetesTolerations"] if not TOLERATION.problem(i))
    for key in ("kubernetesContext", "kubernetesStorageClass", "kubernetesPrometheusUrl"):
        v[key] = v[key] or None
    v["kubernetesNamespace"] = v["kubernetesNamespace"] or f"llmstack-{env}"
    if not uses_gpu and "kubernetesGpusPerPod" not in source.keys():
        v["kubernetesGpusPerPod"] = 0
    v["retainDataOnDelete"] = env == "prod" if v["retainDataOnDelete"] == "auto" else v["retainDataOnDelete"] == "true"
    for key, slo in (("sloAvailabilityObjective", "availability"), ("sloLatencyObjective", "latency")):
        v[key] = SLO_AUTO[slo]["prod" if env == "prod" else "other"] if v[key] == "auto" else float(v[key])
    config = _build(StackConfig, v, env)

    _check_across_keys(config, problems)
    _check_platform(config, set(source.keys()), problems)
    if problems.items:
        raise ConfigError(problems.items)
    return config


def _key(section: type, name: str) -> str:
    return next(f.metadata["knob"].key for f in dataclasses.fields(section) if f.name == name)


def published(cfg: StackConfig) -> list[tuple[str, str, int]]:
    """(address key, address, port) of every port the stack publishes on the host (none on a cluster)."""
    if cfg.on_kubernetes:
        return []
    out = [
        ("mistralPublishAddress", cfg.mistral.publish_address, cfg.mistral.publish_port),
        ("prometheusPublishAddress", cfg.prometheus.publish_address, cfg.prometheus.publish_port),
    ]
    if cfg.grafana.provisioned:
        out.append(("grafanaPublishAddress", cfg.grafana.publish_address, cfg.grafana.publish_port))
    if cfg.probes.enabled:
        out.append(("blackboxPublishAddress", cfg.probes.publish_address, cfg.probes.publish_port))
    if cfg.alerting.delivery != "grafana" and cfg.alertmanager.provisioned:
        out.append(("alertmanagerPublishAddress", cfg.alertmanager.publish_address, cfg.alertmanager.publish_port))
    return out


def _check_delivery(cfg: StackConfig, problems: Problems) -> None:
    a, am = cfg.alerting, cfg.alertmanager
    configured = {"slack": a.slack_url, "email": a.email_addresses, "webhook": a.webhook_url, "pagerduty": a.pagerduty_key}
    if a.delivery == "grafana":
        for key, value in (("alertmanagerUrls", am.urls), ("alertHeartbeatUrl", a.heartbeat_url)):
            if value:
                problems.add(key, "is set but alertDelivery is grafana; set alertDelivery to alertmanager or both to use it")
        return
    if am.urls and (am.basic_auth_password is not None and am.bearer_token is not None):
        problems.add("alertmanagerBearerToken", "and alertmanagerBasicAuthPassword are both set; Prometheus sends one kind of credentials: keep one")
    if am.basic_auth_password is not None and not am.basic_auth_user:
        problems.add("alertmanagerBasicAuthUser", "is required with alertmanagerBasicAuthPassword")
    if a.heartbeat_token is not None and a.heartbeat_url is None:
        problems.add("alertHeartbeatToken", "is set without alertHeartbeatUrl")
    if not am.provisioned:
        # Existing Alertmanagers route by their own config; the stack's channels stay with Grafana.
        if a.heartbeat_url is not None:
            problems.add("alertHeartbeatUrl", "is set, but alertmanagerUrls route by their own config: configure the heartbeat there")
        return
    if a.delivery == "alertmanager" and configured["webhook"] is not None:
        problems.add(
            "alertWebhookUrl",
            "cannot go through the stack's Alertmanager: 0.25 reads a webhook URL only inline, which would put this secret "
            "in plaintext in alertmanager.yml. Use alertDelivery: both (the webhook stays with Grafana) or alertHeartbeatUrl for a heartbeat",
        )
    owns_email = a.email_addresses and (a.delivery == "alertmanager" or "email" in a.alertmanager_channels)
    if owns_email:
        for key, value in (("alertSmtpSmarthost", a.smtp_smarthost), ("alertSmtpFrom", a.smtp_from)):
            if not value:
                problems.add(key, "is required: the stack's Alertmanager delivers alertEmailAddresses and needs an SMTP server to send through")
    if a.smtp_auth_password is not None and not a.smtp_auth_user:
        problems.add("alertSmtpAuthUser", "is required with alertSmtpAuthPassword")
    if a.delivery == "both":
        mine = [c for c in a.alertmanager_channels if configured[c]]
        theirs = [c for c in configured if configured[c] and c not in a.alertmanager_channels]
        if not mine and a.heartbeat_url is None:
            problems.add("alertmanagerChannels", "gives the stack's Alertmanager no configured channel; with alertDelivery both each path needs one")
        if not theirs:
            problems.add("alertmanagerChannels", "leaves Grafana no configured channel; with alertDelivery both each path needs one (e.g. the webhook)")


# What only a Docker host has: host ports, the containers the stack runs beside the server (on a
# cluster those are the cluster's own Prometheus, Grafana, Alertmanager and exporters) and the static
# scrape targets of prometheus.yml, which the operator's CRDs do not hold.
DOCKER_ONLY = (
    "mistralGpuDeviceIds", "mistralPublishAddress", "mistralPublishPort",
    "prometheusImage", "evaluationInterval", "prometheusRetentionTime", "prometheusRetentionSize",
    "prometheusPublishAddress", "prometheusPublishPort", "prometheusLifecycleApi", "prometheusAdminApi",
    "ollamaTargets", "vllmTargets", "tgiTargets", "llamacppTargets",
    "grafanaImage", "grafanaAdminUser", "grafanaPublishAddress", "grafanaPublishPort",
    "alertmanagerUrls", "alertmanagerBasicAuthUser", "alertmanagerBasicAuthPassword", "alertmanagerBearerToken",
    "alertmanagerImage", "alertmanagerPublishAddress", "alertmanagerPublishPort", "alertmanagerChannels",
    "alertSmtpSmarthost", "alertSmtpFrom", "alertSmtpAuthUser", "alertSmtpAuthPassword",
    "alertHeartbeatUrl", "alertHeartbeatToken",
    "cadvisorImage", "dcgmExporterImage",
    "blackboxImage", "probeInterval", "probeTimeout", "alertProbeLatencyWarningSeconds", "ollamaProbeTargets",
    "blackboxPublishAddress", "blackboxPublishPort",
    "allowPublicBind",
)


def kubernetes_only() -> tuple[str, ...]:
    return tuple(k.key for _, k in _knob_fields(KubernetesConfig))


def _check_platform(cfg: StackConfig, set_keys: set, problems: Problems) -> None:
    if not cfg.on_kubernetes:
        for key in kubernetes_only():
            if key in set_keys:
                problems.add(key, "is a kubernetes setting, but platform is docker; set platform: kubernetes to use it, or unset it")
        return
    k, m = cfg.kubernetes, cfg.mistral
    for key in DOCKER_ONLY:
        if key in set_keys:
            problems.add(key, "is a docker setting; platform kubernetes does not use it (the cluster runs its own Prometheus, Grafana, Alertmanager and exporters): unset it")
    if cfg.probes.enabled and "probesEnabled" in set_keys:
        problems.add("probesEnabled", "is true, but the blackbox probes run on docker only; unset it or set it to false on platform kubernetes")
    if cfg.exporters.dcgm_enabled and "dcgmExporterEnabled" in set_keys:
        problems.add("dcgmExporterEnabled", "is true, but on platform kubernetes the GPU operator runs the DCGM exporter; unset it")
    if cfg.prometheus.remote_write and not cfg.kubernetes.install_prometheus_stack:
        problems.add(
            "prometheusRemoteWrite",
            "is set, but on platform kubernetes the stack configures remote write only on the Prometheus it installs "
            "(kubernetesInstallPrometheusStack: true); configure the cluster's own Prometheus resource instead "
            "(docs/remote-write.md shows the operator's shape)",
        )
    if cfg.alerting.delivery != "grafana":
        problems.add(
            "alertDelivery",
            f"got {cfg.alerting.delivery!r}; platform kubernetes delivers through Grafana only (the cluster's Alertmanager "
            "receives the PrometheusRule's alerts and routes them by its own config): use grafana",
        )
    if cfg.grafana.url is None and not problems.has("grafanaUrl"):
        problems.add("grafanaUrl", "is required on platform kubernetes: the URL of the cluster's Grafana (with grafanaAuth)")
    if k.prometheus_url is None and not problems.has("kubernetesPrometheusUrl"):
        problems.add("kubernetesPrometheusUrl", "is required on platform kubernetes: the cluster's Prometheus as Grafana reaches it")
    if not problems.has("kubernetesNamespace") and NAMESPACE.problem(k.namespace):
        problems.add("kubernetesNamespace", f"is unset and the default {k.namespace!r} (llmstack-<stack>) is not a valid namespace; set one: {NAMESPACE.what}")
    if m.uses_gpu and k.gpus_per_pod == 0:
        problems.add("kubernetesGpusPerPod", "got 0; mistralImageFlavour cuda needs at least 1 GPU per pod")
    if not m.uses_gpu and k.gpus_per_pod > 0:
        problems.add("kubernetesGpusPerPod", f"got {k.gpus_per_pod}; mistralImageFlavour is cpu, which uses no GPU: set 0 or use the cuda flavour")
    for key, pairs in (("kubernetesNodeSelector", k.node_selector), ("kubernetesOperatorSelector", k.operator_selector)):
        keys = [name for name, _ in pairs]
        duplicated = sorted({name for name in keys if keys.count(name) > 1})
        if duplicated:
            problems.add(key, f"sets {', '.join(map(shown, duplicated))} more than once; each label key takes one value")
    if not k.operator_selector and not problems.has("kubernetesOperatorSelector"):
        problems.add("kubernetesOperatorSelector", "is empty; the cluster's Prometheus selects ServiceMonitors and PrometheusRules by label (kube-prometheus-stack: release=<release name>)")
    tolerated = [(t.key, t.effect) for t in k.tolerations]
    if len(set(tolerated)) != len(tolerated):
        problems.add("kubernetesTolerations", "tolerates the same key and effect twice; keep one entry per key and effect")


def _check_across_keys(cfg: StackConfig, problems: Problems) -> None:
    m, p, a = cfg.mistral, cfg.prometheus, cfg.alerting
    if m.gpu_device_ids and not m.uses_gpu:
        problems.add("mistralGpuDeviceIds", "is only valid with mistralImageFlavour=cuda")
    if 0 < m.memory_limit_mb < MIN_MEMORY_LIMIT_MB:
        problems.add("mistralMemoryLimitMb", f"got {m.memory_limit_mb}; expected 0 (no limit) or at least {MIN_MEMORY_LIMIT_MB} MiB, enough to load a model")
    if not problems.has("scrapeTimeout") and duration_seconds(p.scrape_timeout) > duration_seconds(p.scrape_interval):
        problems.add("scrapeTimeout", f"got {p.scrape_timeout!r}; must not exceed scrapeInterval ({p.scrape_interval})")
    for warn, crit in _ORDERED_PAIRS:
        warn_value, crit_value = getattr(cfg.thresholds, warn), getattr(cfg.thresholds, crit)
        if warn_value >= crit_value:
            problems.add(_key(AlertThresholds, warn), f"got {warn_value}; must be lower than {_key(AlertThresholds, crit)} ({crit_value})")
    if not problems.has("alertRepeatInterval") and duration_seconds(a.repeat_interval) < duration_seconds(a.group_interval):
        problems.add("alertRepeatInterval", f"got {a.repeat_interval!r}; must be at least alertGroupInterval ({a.group_interval})")
    if cfg.grafana.url and cfg.grafana.auth is None and not problems.has("grafanaAuth"):
        problems.add("grafanaAuth", "is required when grafanaUrl is set: a Grafana service-account token, stored with --secret")
    _check_delivery(cfg, problems)
    probes = cfg.probes
    if not problems.has("probeTimeout") and duration_seconds(probes.timeout) > duration_seconds(probes.interval):
        problems.add("probeTimeout", f"got {probes.timeout!r}; must not exceed probeInterval ({probes.interval})")
    if probes.latency_warning_seconds >= duration_seconds(probes.timeout) and not problems.has("probeTimeout"):
        problems.add("alertProbeLatencyWarningSeconds", f"got {probes.latency_warning_seconds}; must be below probeTimeout ({probes.timeout}), or a slow probe fails instead of warning")
    contact_keys = ("alertSlackUrl", "alertEmailAddresses", "alertWebhookUrl", "alertPagerdutyKey")
    external_only = a.delivery == "alertmanager" and not cfg.alertmanager.provisioned
    if external_only and any((a.slack_url, a.email_addresses, a.webhook_url, a.pagerduty_key)):
        problems.items.append(
            f"{', '.join(contact_keys)}: set, but alertmanagerUrls route by their own config and nothing in the stack "
            "delivers to these channels; unset them, or use alertDelivery: both to deliver them through Grafana"
        )
    elif not external_only and not any((a.slack_url, a.email_addresses, a.webhook_url, a.pagerduty_key)) and not any(problems.has(k) for k in contact_keys):
        problems.items.append(
            f"{', '.join(contact_keys)}: set at least one contact point so alerts reach the team's existing channels"
        )
    if cfg.exporters.dcgm_enabled and not m.uses_gpu:
        problems.add("dcgmExporterEnabled", "is true but mistralImageFlavour is cpu; the DCGM exporter needs an NVIDIA GPU")

    ports = published(cfg)
    for key, address, port in ports:
        if address != "127.0.0.1" and not cfg.allow_public_bind and not problems.has(key):
            problems.add(key, f"got {address!r}; publishing beyond 127.0.0.1 exposes the service, so it needs allowPublicBind: true")
    for i, (key, address, port) in enumerate(ports):
        for other_key, other_address, other_port in ports[:i]:
            # 0.0.0.0 takes the port on every address, so it clashes with any other bind of that port.
            if port == other_port and (address == other_address or "0.0.0.0" in (address, other_address)):
                port_key = key.replace("Address", "Port")
                problems.add(port_key, f"got {port}; {other_key.replace('Address', 'Port')} publishes port {port} on {other_address} already; each published port must be unique per address")


def load_defaults(env: str = "dev", **overrides: Any) -> StackConfig:
    """A valid config for renderers and tests: defaults plus the required keys."""
    values: dict[str, Any] = {"mistralModelId": "Qwen/Qwen3-0.6B", "alertEmailAddresses": '["oncall@example.com"]'}
    values.update(overrides)
    return load(DictSource(values), env)
