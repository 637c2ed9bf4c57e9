"""The stack on a cluster (platform kubernetes): every Kubernetes object, rendered as a plain dict.

Pure functions, no Pulumi: components/kubernetes.py creates these objects as they are, tools/render.py
commits them under assets/kubernetes/<stack>/, and the tests check them against the Kubernetes and
Prometheus Operator schemas. Nothing here is a second copy of the Docker stack:

- the server's arguments are `mistralrs.serve_command`, as on Docker;
- the ServiceMonitor's relabelling is the Docker `mistral` scrape job's, converted to the operator's
  spelling (`relabel_configs` -> `relabelings`, snake_case -> camelCase); only `instance` differs: on a
  cluster it is the pod's name, because N replicas are N servers;
- the PrometheusRule holds exactly the groups of the Docker rule files, rendered for this stack
  (llmstack/prometheus.py); the resource records read the cluster's label shape (llmstack/resources.py).
"""

from __future__ import annotations

import math
import re

from typing import Optional

from . import remote_write, topology
from .config import StackConfig, duration_seconds
from .engines import mistralrs
from .prometheus import alerting_groups, recording_groups
from .resources import MODEL_CONTAINER

# The workload, its Service and its container share the name: cAdvisor reports the container as
# `container="mistral"`, the component name the resource records and dashboards use on Docker too.
NAME = MODEL_CONTAINER
CONTAINER = MODEL_CONTAINER
API_PORT_NAME = "http"
# The Service port the ServiceMonitor scrapes. mistral.rs serves /metrics on its API port, so both
# Service ports lead to the same container port; the name says what the scrape is for.
METRICS_PORT_NAME = "metrics"
CACHE_VOLUME = "model-cache"
HF_TOKEN_SECRET = "mistral-hf-token"
HF_TOKEN_KEY = "token"
REMOTE_WRITE_SECRET = "llmstack-remote-write"  # in the kube-prometheus-stack namespace
SERVICE_MONITOR = "llmstack-mistral"
PROMETHEUS_RULE = "llmstack-rules"
PROMETHEUS_STACK_RELEASE = "kube-prometheus-stack"

# Probe timing. The startup probe alone covers the model download and load (the port opens only
# after it); readiness and liveness start once it has passed.
PROBE_PERIOD_SECONDS = 10
READINESS_FAILURES = 3
LIVENESS_PERIOD_SECONDS = 20
LIVENESS_FAILURES = 3
PROBE_TIMEOUT_SECONDS = 5

# The relabel fields Prometheus's config and the operator's RelabelConfig both have.
_CAMEL = {
    "source_labels": "sourceLabels",
    "separator": "separator",
    "target_label": "targetLabel",
    "regex": "regex",
    "modulus": "modulus",
    "replacement": "replacement",
    "action": "action",
}
# Where the operator's ServiceMonitor targets keep the pod's name before relabelling.
POD_NAME_META = "__meta_kubernetes_pod_name"


def selector_labels(cfg: StackConfig) -> dict:
    """The labels that pick the server's pods (immutable on a StatefulSet once created)."""
    return {"app.kubernetes.io/name": "mistral-rs", "app.kubernetes.io/instance": cfg.kubernetes.namespace}


def common_labels(cfg: StackConfig) -> dict:
    return {**selector_labels(cfg), "app.kubernetes.io/part-of": "llmstack", "app.kubernetes.io/managed-by": "pulumi"}


def _meta(cfg: StackConfig, name: str, labels: dict | None = None) -> dict:
    return {"name": name, "namespace": cfg.kubernetes.namespace, "labels": labels or common_labels(cfg)}


def operator_labels(cfg: StackConfig) -> dict:
    """Labels of the ServiceMonitor and PrometheusRule: ours plus what the cluster's Prometheus selects."""
    return {**common_labels(cfg), **dict(cfg.kubernetes.operator_selector)}


def relabelings(rules: list[dict]) -> list[dict]:
    """Prometheus relabel rules in the operator's spelling. A field the operator lacks is an error."""
    return [{_CAMEL[key]: value for key, value in rule.items()} for rule in rules]


def quantity(size: str) -> str:
    """A Size knob (binary units, 100GB = 100 * 2^30 bytes) as a Kubernetes quantity (100Gi)."""
    number, unit = re.fullmatch(r"([0-9]+)([KMGTPE]?)B", size).groups()
    return f"{number}{unit}i" if unit else number


def namespace(cfg: StackConfig) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cfg.kubernetes.namespace, "labels": common_labels(cfg)}}


def hf_token_secret(cfg: StackConfig, token: str) -> dict:
    """The Secret the server reads HF_TOKEN from; `token` is a placeholder here, the component
    passes the Pulumi secret itself."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(cfg, HF_TOKEN_SECRET),
        "type": "Opaque",
        "stringData": {HF_TOKEN_KEY: token},
    }


def _probe(period: int, failures: int) -> dict:
    return {
        "httpGet": {"path": topology.MISTRAL_HEALTH_PATH, "port": API_PORT_NAME},
        "periodSeconds": period,
        "timeoutSeconds": PROBE_TIMEOUT_SECONDS,
        "failureThreshold": failures,
    }


def startup_failures(cfg: StackConfig) -> int:
    """How many failed startup probes the model download and load may take."""
    return math.ceil(duration_seconds(cfg.kubernetes.startup_timeout) / PROBE_PERIOD_SECONDS)


def _resources(cfg: StackConfig) -> dict:
    limits: dict = {}
    requests: dict = {}
    if cfg.kubernetes.gpus_per_pod:
        # Extended resources are never overcommitted: the request must equal the limit.
        limits["nvidia.com/gpu"] = requests["nvidia.com/gpu"] = str(cfg.kubernetes.gpus_per_pod)
    if cfg.mistral.memory_limit_mb:
        # Requested as much as the limit, so the scheduler only places a pod where the model fits.
        limits["memory"] = requests["memory"] = f"{cfg.mistral.memory_limit_mb}Mi"
    out = {}
    if limits:
        out["limits"] = limits
    if requests:
        out["requests"] = requests
    return out


def statefulset(cfg: StackConfig) -> dict:
    """The servers: a StatefulSet, so each replica keeps its own model cache claim across replacement."""
    k, m = cfg.kubernetes, cfg.mistral
    env = [{"name": "HF_HOME", "value": topology.MISTRAL_MODEL_CACHE_PATH}]
    if m.hf_token is not None:
        env.append({"name": mistralrs.HF_TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": HF_TOKEN_SECRET, "key": HF_TOKEN_KEY}}})
    container = {
        "name": CONTAINER,
        "image": m.image,
        # The image's entrypoint is `mistralrs`; args replace only its command line, as on Docker.
        "args": mistralrs.serve_command(m, with_hf_token=m.hf_token is not None),
        "ports": [{"name": API_PORT_NAME, "containerPort": m.port, "protocol": "TCP"}],
        "env": env,
        "volumeMounts": [{"name": CACHE_VOLUME, "mountPath": topology.MISTRAL_MODEL_CACHE_PATH}],
        "startupProbe": _probe(PROBE_PERIOD_SECONDS, startup_failures(cfg)),
        "readinessProbe": _probe(PROBE_PERIOD_SECONDS, READINESS_FAILURES),
        "livenessProbe": _probe(LIVENESS_PERIOD_SECONDS, LIVENESS_FAILURES),
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    resources = _resources(cfg)
    if resources:
        container["resources"] = resources
    pod_spec: dict = {"containers": [container]}
    if k.node_selector:
        pod_spec["nodeSelector"] = dict(k.node_selector)
    if k.tolerations:
        pod_spec["tolerations"] = [t.as_dict() for t in k.tolerations]
    claim = {
        "metadata": {"name": CACHE_VOLUME, "labels": common_labels(cfg)},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": quantity(k.model_cache_size)}}},
    }
    if k.storage_class:
        claim["spec"]["storageClassName"] = k.storage_class
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(cfg, NAME),
        "spec": {
            "replicas": k.replicas,
            "serviceName": NAME,
            # Replicas download their models side by side instead of one after another.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector_labels(cfg)},
            "template": {"metadata": {"labels": common_labels(cfg)}, "spec": pod_spec},
            "volumeClaimTemplates": [claim],
            # A scaled-down replica keeps its cache for when it comes back; a destroyed stack keeps
            # them only where the data is kept (retainDataOnDelete).
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Retain" if cfg.retain_data_on_delete else "Delete",
                "whenScaled": "Retain",
            },
        },
    }


def service(cfg: StackConfig) -> dict:
    port = cfg.mistral.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(cfg, NAME),
        "spec": {
            "selector": selector_labels(cfg),
            "ports": [
                {"name": API_PORT_NAME, "port": port, "targetPort": API_PORT_NAME, "protocol": "TCP"},
                {"name": METRICS_PORT_NAME, "port": port, "targetPort": API_PORT_NAME, "protocol": "TCP"},
            ],
        },
    }


def pod_disruption_budget(cfg: StackConfig) -> dict:
    # One voluntary eviction at a time: a node drain never takes every replica down at once, and a
    # single replica can still be drained (minAvailable 1 would block that forever).
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(cfg, NAME),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(cfg)}},
    }


def _docker_job(cfg: StackConfig) -> dict:
    (job,) = mistralrs.scrape_jobs(cfg)
    return job.config


def service_monitor(cfg: StackConfig) -> dict:
    """The scrape of every server pod, with the Docker `mistral` job's relabelling."""
    job = _docker_job(cfg)
    target_rules = []
    for rule in relabelings(job["relabel_configs"]):
        if rule.get("targetLabel") == "instance":
            # Each pod is a server of its own; its name is stable on a StatefulSet (mistral-0, ...).
            rule = {"sourceLabels": [POD_NAME_META], "targetLabel": "instance"}
        target_rules.append(rule)
    # The records and alerts select job="mistral"; the operator would name the job after the Service.
    job_rule = {"targetLabel": "job", "replacement": job["job_name"]}
    endpoint = {
        "port": METRICS_PORT_NAME,
        "path": job["metrics_path"],
        "interval": cfg.prometheus.scrape_interval,
        "scrapeTimeout": cfg.prometheus.scrape_timeout,
        "relabelings": [job_rule, *target_rules],
        "metricRelabelings": relabelings(job["metric_relabel_configs"]),
    }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(cfg, SERVICE_MONITOR, operator_labels(cfg)),
        "spec": {
            "selector": {"matchLabels": selector_labels(cfg)},
            "namespaceSelector": {"matchNames": [cfg.kubernetes.namespace]},
            "endpoints": [endpoint],
        },
    }


def rule_groups(cfg: StackConfig) -> list[dict]:
    """The PrometheusRule's groups: the Docker rule files' groups, recording then alerting."""
    return recording_groups(cfg) + alerting_groups(cfg)


def prometheus_rule(cfg: StackConfig) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": _meta(cfg, PROMETHEUS_RULE, operator_labels(cfg)),
        "spec": {"groups": rule_groups(cfg)},
    }


def remote_write_secret(cfg: StackConfig) -> Optional[dict]:
    """The Secret the installed Prometheus reads remote-write credentials from (None without any);
    the component fills `stringData` with the Pulumi secrets themselves."""
    if not remote_write.operator_secret_data(cfg):
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": REMOTE_WRITE_SECRET, "namespace": cfg.kubernetes.prometheus_stack_namespace, "labels": common_labels(cfg)},
        "type": "Opaque",
    }


def prometheus_stack_values(cfg: StackConfig) -> dict:
    """Helm values of the optional kube-prometheus-stack install. Its Prometheus then selects the
    objects above by the chart's default rule: the label release=<release name>. It carries the
    stack's external labels and remote write, exactly as the Docker Prometheus does."""
    spec = {
        "scrapeInterval": cfg.prometheus.scrape_interval,
        "evaluationInterval": cfg.prometheus.evaluation_interval,
        "externalLabels": remote_write.external_labels(cfg),
    }
    if cfg.prometheus.remote_write:
        spec["remoteWrite"] = remote_write.operator_remote_write(cfg, REMOTE_WRITE_SECRET)
    return {
        "prometheus": {"prometheusSpec": spec},
        # The chart's kubelet ServiceMonitor copies __metrics_path__ to metrics_path, which the
        # resource records select the cAdvisor series by.
        "kubelet": {"enabled": True, "serviceMonitor": {"cAdvisor": True}},
    }


def core_objects(cfg: StackConfig, hf_token_placeholder: str = "placeholder") -> list[dict]:
    """Every core Kubernetes object of the stack (the Secret with a placeholder token)."""
    out = [namespace(cfg)]
    if cfg.mistral.hf_token is not None:
        out.append(hf_token_secret(cfg, hf_token_placeholder))
    return out + [statefulset(cfg), service(cfg), pod_disruption_budget(cfg)]


def operator_objects(cfg: StackConfig) -> list[dict]:
    """The Prometheus Operator custom resources of the stack."""
    return [service_monitor(cfg), prometheus_rule(cfg)]
