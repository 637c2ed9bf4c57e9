"""The stack on a cluster: the Mistral.rs servers, the operator's scrape and rules, and optionally
kube-prometheus-stack itself. Every object is rendered by llmstack/kubernetes.py; these components
only create them, through the explicit provider they are given."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_kubernetes as k8s

from llmstack import kubernetes as render
from llmstack.config import PROMETHEUS_STACK_CHART, PROMETHEUS_STACK_REPO


def _child(parent: pulumi.Resource, provider: k8s.Provider, **extra: Any) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(parent=parent, provider=provider, **extra)


@dataclass(frozen=True)
class MistralRsKubernetesArgs:
    provider: k8s.Provider
    namespace: dict  # the rendered objects (llmstack/kubernetes.py)
    statefulset: dict
    service: dict
    pod_disruption_budget: dict
    # With an HF token: the Secret as rendered (placeholder value) and the token, a Pulumi secret.
    hf_token_secret: Optional[dict] = None
    hf_token: Any = None
    retain_data_on_delete: bool = False


class MistralRsKubernetes(pulumi.ComponentResource):
    """Mistral.rs as a StatefulSet: N pods, each with its GPUs and its own model cache claim, behind a
    Service with a named metrics port and a PodDisruptionBudget."""

    service_name: pulumi.Output[str]
    namespace_name: pulumi.Output[str]

    def __init__(self, name: str, args: MistralRsKubernetesArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:MistralRsKubernetes", name, None, opts)
        p = args.provider
        ns = args.namespace
        # Deleting the namespace deletes everything in it, the model caches included.
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=ns["metadata"],
            opts=_child(self, p, retain_on_delete=args.retain_data_on_delete, protect=args.retain_data_on_delete),
        )
        after_namespace = [self.namespace]

        self.hf_token_secret = None
        if args.hf_token_secret is not None:
            s = args.hf_token_secret
            token = pulumi.Output.secret(args.hf_token)
            self.hf_token_secret = k8s.core.v1.Secret(
                f"{name}-hf-token",
                metadata=s["metadata"],
                type=s["type"],
                string_data=token.apply(lambda t: {render.HF_TOKEN_KEY: t}),
                # The token must not reach the state in plaintext, in either field the provider reports.
                opts=_child(self, p, depends_on=after_namespace, additional_secret_outputs=["stringData", "data"]),
            )
            after_namespace = after_namespace + [self.hf_token_secret]

        sts = args.statefulset
        self.statefulset = k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=sts["metadata"],
            spec=sts["spec"],
            opts=_child(
                self,
                p,
                depends_on=after_namespace,
                # The first rollout waits for every pod's model download; the startup probe bounds it.
                custom_timeouts=pulumi.CustomTimeouts(create="60m", update="60m"),
            ),
        )
        svc = args.service
        self.service = k8s.core.v1.Service(f"{name}-service", metadata=svc["metadata"], spec=svc["spec"], opts=_child(self, p, depends_on=[self.namespace]))
        pdb = args.pod_disruption_budget
        self.pod_disruption_budget = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb", metadata=pdb["metadata"], spec=pdb["spec"], opts=_child(self, p, depends_on=[self.namespace])
        )

        self.service_name = pulumi.Output.from_input(svc["metadata"]["name"])
        self.namespace_name = pulumi.Output.from_input(ns["metadata"]["name"])
        self.register_outputs({"service_name": self.service_name, "namespace": self.namespace_name})


@dataclass(frozen=True)
class OperatorMonitoringArgs:
    provider: k8s.Provider
    service_monitor: dict  # rendered by llmstack/kubernetes.py
    prometheus_rule: dict


class OperatorMonitoring(pulumi.ComponentResource):
    """The cluster's Prometheus, told through the operator's CRDs what to scrape and evaluate."""

    def __init__(self, name: str, args: OperatorMonitoringArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:OperatorMonitoring", name, None, opts)
        self.resources = {}
        for suffix, obj in (("service-monitor", args.service_monitor), ("prometheus-rule", args.prometheus_rule)):
            self.resources[suffix] = k8s.apiextensions.CustomResource(
                f"{name}-{suffix}",
                api_version=obj["apiVersion"],
                kind=obj["kind"],
                metadata=obj["metadata"],
                spec=obj["spec"],
                opts=_child(self, args.provider),
            )
        self.register_outputs({})


@dataclass(frozen=True)
class PrometheusStackArgs:
    provider: k8s.Provider
    version: str
    namespace: str
    values: dict  # rendered by llmstack/kubernetes.py
    # The Secret remote write reads its credentials from (rendered without data), and the data itself.
    remote_write_secret: Optional[dict] = None
    remote_write_credentials: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class PrometheusStack(pulumi.ComponentResource):
    """kube-prometheus-stack as a pinned Helm release, for a cluster without one."""

    def __init__(self, name: str, args: PrometheusStackArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:PrometheusStack", name, None, opts)
        after: list[pulumi.Resource] = []
        if args.remote_write_secret is not None:
            s = args.remote_write_secret
            data = pulumi.Output.secret(pulumi.Output.all(**dict(args.remote_write_credentials)))
            after.append(k8s.core.v1.Secret(
                f"{name}-remote-write",
                metadata=s["metadata"],
                type=s["type"],
                string_data=data,
                # Credentials: secret in state, in either field the provider reports.
                opts=_child(self, args.provider, additional_secret_outputs=["stringData", "data"]),
            ))
        self.release = k8s.helm.v3.Release(
            f"{name}-release",
            # The release name is what the chart's Prometheus selects by (release=<name>).
            name=render.PROMETHEUS_STACK_RELEASE,
            chart=PROMETHEUS_STACK_CHART,
            version=args.version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=PROMETHEUS_STACK_REPO),
            namespace=args.namespace,
            create_namespace=True,
            values=args.values,
            opts=_child(self, args.provider, depends_on=after),
        )
        self.register_outputs({"release": self.release.name})
