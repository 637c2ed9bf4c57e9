"""The `llmstack-policies` policy pack: pure checks plus their pulumi-policy wiring.

Every check is a pure function over plain Python values (dicts, lists, strings) that returns a
list of violation messages, so tests call them without the Pulumi CLI. The `*_POLICY` objects
adapt pulumi-policy's `ResourceValidationArgs` to those functions; `__main__.py` puts them in a
`PolicyPack`.

How a resource is classified: the main program puts docker labels on every container and
volume (`labels: [{label, value}]` in pulumi-docker's schema):

  llmstack.env                  dev | prod
  llmstack.component            mistral | prometheus | grafana | cadvisor | dcgm-exporter
  llmstack.public-bind-allowed  "true" when the stack sets allowPublicBind: the operator publishes on a public address on purpose
  llmstack.data                 "true" on volumes holding data (Prometheus TSDB, Grafana DB, model cache)

A resource counts as prod when its `llmstack.env` label says so *or* the stack being deployed is
`prod` (the CLI exports PULUMI_STACK to a Python policy pack), so a missing or wrong label on the
prod stack cannot switch the prod-only checks off.

Two things pulumi-policy 1.21.0 does not show a policy (read from its source, see the report in
docs/ci.md):

* Secret-ness. The engine sends resource inputs with their secret markers (KeepSecrets), but
  `_PolicyAnalyzerServicer.Analyze/AnalyzeStack` deserialize them with `proxy_secrets=False`, which
  drops the markers: a policy sees `"https://hooks..."`, never "this was a secret" (upstream issue
  pulumi/pulumi-policy#241 is still open). `install_secret_markers()` re-exposes them: it wraps the
  deserializer so that every string that arrived inside a secret becomes a `SecretStr` (a `str`
  subclass, so every other policy keeps working). It is tied to the exact pulumi-policy version it
  was verified against; on any other version it does nothing and `contact-point-secrets` falls back
  to the only secret-related fact the public API exposes, `opts.additional_secret_outputs`.
* retainOnDelete. `PolicyResourceOptions` (and the engine's AnalyzerResourceOptions message) carry
  protect, ignoreChanges, deleteBeforeReplace, aliases, customTimeouts, additionalSecretOutputs and
  parent - no retainOnDelete. `data-volumes-retained` therefore requires `protect`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Iterable, List, Optional

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Severity,
)
from pulumi_policy import proxy as _policy_proxy

PACK_NAME = "llmstack-policies"

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
CONTACT_POINT = "grafana:alerting/contactPoint:ContactPoint"

LABEL_ENV = "llmstack.env"
LABEL_COMPONENT = "llmstack.component"
LABEL_PUBLIC_BIND_ALLOWED = "llmstack.public-bind-allowed"
LABEL_DATA = "llmstack.data"

PROD = "prod"
COMPONENTS = ("mistral", "prometheus", "grafana", "cadvisor", "dcgm-exporter")

# Policy config key (per policy, in the pack's config schema) naming components that may publish
# on every interface in prod.
CONFIG_ALLOW_PUBLIC_BIND = "allowPublicBind"

# Addresses that publish a port on every host interface. Docker's default when `ip` is unset is
# 0.0.0.0 (and [::] when IPv6 is on).
PUBLIC_ADDRESSES = frozenset({"", "0.0.0.0", "0.0.0.0/0", "::", "[::]", "::/0"})

# Sensitive settings of each Grafana contact-point integration, by the provider's schema names.
# Email integrations carry nothing secret. Extend the table to cover more integrations.
SENSITIVE_SETTINGS: Mapping[str, tuple[str, ...]] = {
    "slacks": ("url", "token"),
    "webhooks": ("url", "authorizationCredentials", "basicAuthPassword"),
    "pagerduties": ("integrationKey",),
    "emails": (),
}


# --------------------------------------------------------------------------------------------
# Plain values


class _Unknown:
    """A value the engine cannot know during preview (it depends on another resource's output)."""

    _instance: Optional["_Unknown"] = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN = _Unknown()

_UNKNOWN_SENTINELS = frozenset(
    {
        _policy_proxy.UNKNOWN_BOOLEAN_VALUE,
        _policy_proxy.UNKNOWN_NUMBER_VALUE,
        _policy_proxy.UNKNOWN_STRING_VALUE,
        _policy_proxy.UNKNOWN_ARRAY_VALUE,
        _policy_proxy.UNKNOWN_ASSET_VALUE,
        _policy_proxy.UNKNOWN_ARCHIVE_VALUE,
        _policy_proxy.UNKNOWN_OBJECT_VALUE,
    }
)


class SecretStr(str):
    """A string that reached the policy pack wrapped as a Pulumi secret (see install_secret_markers)."""

    __slots__ = ()

    def __repr__(self) -> str:  # never print the value
        return "SecretStr('[secret]')"


def plain(value: Any) -> Any:
    """Copies pulumi-policy's property proxies into plain dicts/lists.

    Values unknown during preview become UNKNOWN instead of raising, so one unknown field does not
    hide the rest of the resource from a check. `SecretStr` values are kept as they are.
    """
    if isinstance(value, (str, bytes)):
        if isinstance(value, str) and value in _UNKNOWN_SENTINELS:
            return UNKNOWN
        return value
    if isinstance(value, Mapping):
        out = {}
        for key in list(iter(value)):
            try:
                out[key] = plain(value[key])
            except _policy_proxy.UnknownValueError:
                out[key] = UNKNOWN
        return out
    if isinstance(value, Sequence):
        items = []
        for i in range(len(value)):
            try:
                items.append(plain(value[i]))
            except _policy_proxy.UnknownValueError:
                items.append(UNKNOWN)
        return items
    return value


def labels_of(props: Mapping[str, Any]) -> dict[str, Any]:
    """Docker labels of a container or volume as a dict (schema: a list of {label, value})."""
    raw = props.get("labels")
    if isinstance(raw, Mapping):
        return {str(k): v for k, v in raw.items()}
    out: dict[str, Any] = {}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and isinstance(item.get("label"), str):
                out[item["label"]] = item.get("value")
    return out


def _norm(value: Any) -> Optional[str]:
    return value.strip().lower() if isinstance(value, str) else None


def _stack_env(stack: Optional[str]) -> Optional[str]:
    # PULUMI_STACK may be `stack` or `org/project/stack`.
    return _norm(stack.rsplit("/", 1)[-1]) if stack else None


def current_stack() -> Optional[str]:
    """The stack being deployed: the Pulumi CLI exports PULUMI_STACK to a Python policy pack."""
    return os.environ.get("PULUMI_STACK") or None


def is_prod(labels: Mapping[str, Any], stack: Optional[str] = None) -> bool:
    return _norm(labels.get(LABEL_ENV)) == PROD or _stack_env(stack) == PROD


def _is_true(value: Any) -> bool:
    return _norm(value) == "true"


# --------------------------------------------------------------------------------------------
# pinned-images

_IMAGE_ID_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def image_pin_problem(ref: Any) -> Optional[str]:
    """Why an image reference is not pinned, or None when it is.

    Pinned: `repo:tag` with a tag that does not end in "latest", `repo@<algo>:<hex>` (a digest pins
    the content whatever the tag says), or a bare image ID `sha256:<64 hex>` (what
    `RemoteImage.image_id` gives a container). A registry port (`host:5000/repo`) is not a tag.
    """
    if ref is UNKNOWN:
        return None  # checked again during `pulumi up`, when the value is known
    if not isinstance(ref, str) or not ref.strip():
        return "the image reference is empty"
    ref = ref.strip()
    if _IMAGE_ID_RE.match(ref):
        return None
    name, at, digest = ref.partition("@")
    if at:
        if _DIGEST_RE.match(digest):
            return None
        return f"{ref!r} has a malformed digest {digest!r} (expected sha256:<hex>)"
    colon = name.rfind(":")
    if colon <= name.rfind("/"):
        return f"{ref!r} has no tag, so Docker pulls 'latest'; pin a version tag or a digest"
    tag = name[colon + 1 :]
    if not _TAG_RE.match(tag):
        return f"{ref!r} has a malformed tag {tag!r}"
    if tag.lower().endswith("latest"):
        return f"{ref!r} uses the moving tag {tag!r}; pin a version tag or a digest"
    return None


def pinned_image_problems(resource_type: str, props: Mapping[str, Any]) -> List[str]:
    if resource_type == CONTAINER:
        field = "image"
    elif resource_type == REMOTE_IMAGE:
        field = "name"
    else:
        return []
    problem = image_pin_problem(props.get(field))
    return [f"{field}: {problem}"] if problem else []


# --------------------------------------------------------------------------------------------
# no-public-bind-in-prod


def public_bind_problems(
    props: Mapping[str, Any],
    stack: Optional[str] = None,
    allowed_components: Iterable[str] = (),
) -> List[str]:
    labels = labels_of(props)
    if not is_prod(labels, stack):
        return []
    component = labels.get(LABEL_COMPONENT)
    if _is_true(labels.get(LABEL_PUBLIC_BIND_ALLOWED)) or component in set(allowed_components):
        return []
    how_to_allow = (
        f"bind 127.0.0.1 (or one specific address), or allow it explicitly with the label "
        f"{LABEL_PUBLIC_BIND_ALLOWED}=true or the policy config {CONFIG_ALLOW_PUBLIC_BIND}"
    )
    problems = []
    if _norm(props.get("networkMode")) == "host":
        problems.append(f"networkMode 'host' exposes every port of {component or 'the container'} "
                        f"on all host interfaces; use a bridge network with published ports, or {how_to_allow}")
    ports = props.get("ports")
    if isinstance(ports, list):
        for i, port in enumerate(ports):
            if not isinstance(port, Mapping):
                continue
            ip = port.get("ip")
            if ip is UNKNOWN:
                continue
            if ip is None or (isinstance(ip, str) and ip.strip() in PUBLIC_ADDRESSES):
                where = "all interfaces (ip unset: Docker binds 0.0.0.0)" if not ip else f"all interfaces ({ip})"
                external = port.get("external")
                external = "a random port" if external in (None, UNKNOWN) else f"host port {_num(external)}"
                problems.append(
                    f"ports[{i}] publishes container port {_num(port.get('internal'))} on {external} "
                    f"on {where}; {how_to_allow}"
                )
    return problems


def _num(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


# --------------------------------------------------------------------------------------------
# prod-mistral-requests-gpu


def _flatten(value: Any) -> List[Any]:
    if isinstance(value, list):
        return [x for item in value for x in _flatten(item)]
    return [value]


def gpu_request_problems(props: Mapping[str, Any], stack: Optional[str] = None) -> List[str]:
    labels = labels_of(props)
    if labels.get(LABEL_COMPONENT) != "mistral" or not is_prod(labels, stack):
        return []
    gpus = props.get("gpus")
    if gpus is UNKNOWN or (isinstance(gpus, str) and gpus.strip()):
        return []
    requests = props.get("deviceRequests")
    if requests is UNKNOWN:
        return []
    for req in requests if isinstance(requests, list) else []:
        if req is UNKNOWN:
            return []
        if not isinstance(req, Mapping):
            continue
        ids = [str(d) for d in _flatten(req.get("deviceIds")) if d not in (None, UNKNOWN)]
        if req.get("count") == 0 and not ids:
            continue  # asks for zero devices
        if any(_norm(c) == "gpu" for c in _flatten(req.get("capabilities"))):
            return []
        if any(d.startswith("nvidia.com/gpu") for d in ids):  # a CDI GPU request
            return []
    return [
        "the prod mistral container requests no GPU: set device_requests=[ContainerDeviceRequestArgs("
        "driver='nvidia', capabilities=['gpu'], count=-1)] (or gpus='all')"
    ]


# --------------------------------------------------------------------------------------------
# contact-point-secrets


def contact_point_secret_problems(
    props: Mapping[str, Any],
    markers_visible: bool,
    additional_secret_outputs: Iterable[str] = (),
) -> List[str]:
    """Sensitive contact-point settings that are not secrets.

    markers_visible: the secret markers of the inputs reach the policy (install_secret_markers()
    is active), so a sensitive string must be a SecretStr. Otherwise secret-ness is invisible and
    the check falls back to requiring the integration's block in additionalSecretOutputs.
    """
    aso = set(additional_secret_outputs or ())
    problems = []
    for block, fields in SENSITIVE_SETTINGS.items():
        entries = props.get(block)
        if not isinstance(entries, list):
            continue
        for i, entry in enumerate(entries):
            if not isinstance(entry, Mapping):
                continue
            for field in fields:
                value = entry.get(field)
                if value is None or value is UNKNOWN or value == "":
                    continue
                path = f"{block}[{i}].{field}"
                if markers_visible:
                    if not isinstance(value, SecretStr):
                        problems.append(
                            f"{path} is plaintext; pass it as a Pulumi secret "
                            f"(config.require_secret(...) or pulumi.Output.secret(...)) so it is "
                            f"encrypted in state and masked in previews"
                        )
                elif block not in aso:
                    problems.append(
                        f"{path}: this policy pack cannot see secret markers here, so it requires "
                        f"additional_secret_outputs=[{block!r}] on the contact point (and the value "
                        f"should come from config.require_secret)"
                    )
    return problems


# --------------------------------------------------------------------------------------------
# data-volumes-retained


def data_volume_problems(props: Mapping[str, Any], protect: bool, stack: Optional[str] = None) -> List[str]:
    labels = labels_of(props)
    if not _is_true(labels.get(LABEL_DATA)) or not is_prod(labels, stack):
        return []
    if protect:
        return []
    return [
        "this prod data volume is not protected: set opts=pulumi.ResourceOptions(protect=True) "
        "(keep retain_on_delete=True as well). retainOnDelete is not visible to policy packs "
        "(pulumi-policy's PolicyResourceOptions has no such field), so protect is what is enforced"
    ]


# --------------------------------------------------------------------------------------------
# Secret markers (pulumi-policy internals, version-gated)

# The pulumi-policy version whose internals install_secret_markers() was checked against:
# pulumi_policy.policy imports `deserialize_properties` and calls it (proxy_secrets=False) for the
# properties of Analyze/AnalyzeStack requests before wrapping them in unknown_checking_proxy.
MARKERS_VERIFIED_VERSION = "1.21.0"

_SIG_KEY = "4dabf18193072939515e22adb298388d"  # pulumi's special signature key
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # ... and the secret signature

_markers_active = False
_original_deserialize: Optional[Callable[..., Any]] = None


def _mark_secrets(value: Any, inside_secret: bool = False) -> Any:
    """Unwraps secret envelopes of the raw wire dict, turning every string inside into SecretStr."""
    if isinstance(value, str):
        return SecretStr(value) if inside_secret and not isinstance(value, SecretStr) else value
    if isinstance(value, list):
        return [_mark_secrets(v, inside_secret) for v in value]
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG and "value" in value:
            return _mark_secrets(value["value"], True)
        return {k: _mark_secrets(v, inside_secret) for k, v in value.items()}
    return value


def secret_markers_active() -> bool:
    return _markers_active


def install_secret_markers() -> bool:
    """Makes secret inputs visible to the policies as SecretStr; returns whether it is active.

    Only for the verified pulumi-policy version; anywhere else it leaves pulumi-policy alone.
    Remediation (proxy_secrets=True) is left untouched, so remediations keep preserving secrets.
    """
    global _markers_active, _original_deserialize
    if _markers_active:
        return True
    try:
        # Imported here, not at the top: the shim is optional, and a pulumi-policy without these
        # internals must leave the pack working with the documented fallback.
        import pulumi_policy.policy as pp
        from pulumi_policy.version import VERSION
    except ImportError:
        return False
    original = getattr(pp, "deserialize_properties", None)
    if VERSION != MARKERS_VERIFIED_VERSION or not callable(original):
        return False

    def deserialize_with_secret_markers(props, proxy_secrets=False):
        if not proxy_secrets:
            try:
                props = _mark_secrets(props)
            except Exception:  # never let the marker pass break policy evaluation
                pass
        return original(props, proxy_secrets)

    _original_deserialize = original
    pp.deserialize_properties = deserialize_with_secret_markers
    _markers_active = True
    return True


def uninstall_secret_markers() -> None:
    global _markers_active, _original_deserialize
    if _markers_active and _original_deserialize is not None:
        # Only reached after install_secret_markers imported it (see there for why it is imported late).
        import pulumi_policy.policy as pp

        pp.deserialize_properties = _original_deserialize
    _markers_active = False
    _original_deserialize = None


# --------------------------------------------------------------------------------------------
# Policies


def _validator(types: tuple[str, ...], check: Callable[[ResourceValidationArgs, Mapping[str, Any]], List[str]]):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type not in types:
            return
        for message in check(args, plain(args.props)):
            report_violation(message, None)

    return validate


def _allowed_public(args: ResourceValidationArgs) -> List[str]:
    config = args.get_config() or {}
    allowed = config.get(CONFIG_ALLOW_PUBLIC_BIND) or []
    return [str(c) for c in allowed] if isinstance(allowed, (list, tuple)) else []


PINNED_IMAGES = ResourceValidationPolicy(
    name="pinned-images",
    description="Container and remote images carry an explicit tag or digest that is not 'latest'.",
    validate=_validator((CONTAINER, REMOTE_IMAGE), lambda a, p: pinned_image_problems(a.resource_type, p)),
    severity=Severity.HIGH,
    remediation_steps="Use repo:X.Y.Z or repo@sha256:<digest>; never repo, repo:latest or repo:*-latest.",
)

NO_PUBLIC_BIND_IN_PROD = ResourceValidationPolicy(
    name="no-public-bind-in-prod",
    description="Prod containers publish ports on a specific address (127.0.0.1), not on every interface.",
    validate=_validator(
        (CONTAINER,), lambda a, p: public_bind_problems(p, current_stack(), _allowed_public(a))
    ),
    config_schema=PolicyConfigSchema(
        properties={
            CONFIG_ALLOW_PUBLIC_BIND: {
                "type": "array",
                "items": {"type": "string"},
                "uniqueItems": True,
                "default": [],
                "description": "llmstack.component values allowed to publish on every interface in prod, "
                "e.g. [\"grafana\"].",
            }
        }
    ),
    severity=Severity.HIGH,
    remediation_steps=f"Publish on 127.0.0.1 (the config default), or label the container "
    f"{LABEL_PUBLIC_BIND_ALLOWED}=true / list its component in {CONFIG_ALLOW_PUBLIC_BIND}.",
)

PROD_MISTRAL_REQUESTS_GPU = ResourceValidationPolicy(
    name="prod-mistral-requests-gpu",
    description="The prod Mistral.rs container requests the GPU.",
    validate=_validator((CONTAINER,), lambda a, p: gpu_request_problems(p, current_stack())),
    severity=Severity.MEDIUM,
    remediation_steps="Give the container device_requests with capabilities ['gpu'] (or gpus='all').",
)

CONTACT_POINT_SECRETS = ResourceValidationPolicy(
    name="contact-point-secrets",
    description="Grafana contact points keep webhook URLs, tokens, passwords and integration keys as secrets.",
    validate=_validator(
        (CONTACT_POINT,),
        lambda a, p: contact_point_secret_problems(
            p, secret_markers_active(), list(a.opts.additional_secret_outputs or []) if a.opts else []
        ),
    ),
    severity=Severity.CRITICAL,
    remediation_steps="Read the value with config.require_secret(...) (set it with "
    "`pulumi config set --secret`) and pass the Output straight to the contact point.",
)

DATA_VOLUMES_RETAINED = ResourceValidationPolicy(
    name="data-volumes-retained",
    description="Prod data volumes (label llmstack.data=true) are protected from deletion.",
    validate=_validator(
        (VOLUME,), lambda a, p: data_volume_problems(p, bool(a.opts and a.opts.protect), current_stack())
    ),
    severity=Severity.HIGH,
    remediation_steps="Create the volume with opts=pulumi.ResourceOptions(protect=True, retain_on_delete=True).",
)

POLICIES = [
    PINNED_IMAGES,
    NO_PUBLIC_BIND_IN_PROD,
    PROD_MISTRAL_REQUESTS_GPU,
    CONTACT_POINT_SECRETS,
    DATA_VOLUMES_RETAINED,
]


def policies() -> list:
    return list(POLICIES)


def enforcement_level() -> EnforcementLevel:
    return EnforcementLevel.MANDATORY
