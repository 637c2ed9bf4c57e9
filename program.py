"""The stack: read and validate config, render what the containers run, then wire the components:
on one Docker host (`build`, the default) or on a cluster (`build_kubernetes`, platform kubernetes).

Kept out of `__main__.py` so the unit tests can run the whole program under Pulumi mocks, once per
stack, in one process. Everything the components upload or create (commands, Prometheus config and
rules, dashboards, alerting) is rendered here by the pure functions of `llmstack`; the components
only wire resources.
"""

from __future__ import annotations

from typing import Any, Optional

import pulumi
import pulumi_docker as docker
import pulumi_kubernetes as k8s

from components.alertmanager import Alertmanager, AlertmanagerArgs
from components.blackbox import Blackbox, BlackboxArgs
from components.exporters import Cadvisor, DcgmExporter, ExporterArgs
from components.grafana import Grafana, GrafanaArgs
from components.kubernetes import (
    MistralRsKubernetes,
    MistralRsKubernetesArgs,
    OperatorMonitoring,
    OperatorMonitoringArgs,
    PrometheusStack,
    PrometheusStackArgs,
)
from components.mistral import MistralRs, MistralRsArgs
from components.prometheus import Prometheus, PrometheusArgs
from llmstack import alertmanager as alertmanager_render
from llmstack import alerts, dashboards, grafana_alerting, probes, prometheus as prometheus_render, remote_write, routing
from llmstack import kubernetes as kubernetes_render
from llmstack import config as cfgmod
from llmstack.config import ConfigError, StackConfig
from llmstack.engines import mistralrs


class PulumiConfigSource:
    """`llmstack.config.ConfigSource` over the running stack's config."""

    def __init__(self) -> None:
        self._config = pulumi.Config()
        self._ns = pulumi.get_project()

    def keys(self) -> list[str]:
        # What the engine handed the program: set explicitly (and in tests) or through PULUMI_CONFIG.
        prefix = f"{self._ns}:"
        everything = {**pulumi.runtime.config.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
        return [k[len(prefix):] for k in everything if k.startswith(prefix)]

    def get(self, key: str) -> Optional[str]:
        # The raw lookup: pulumi.Config.get would also return secrets in plaintext to our code.
        value = pulumi.runtime.get_config(f"{self._ns}:{key}")
        return None if value is None else str(value)

    def get_secret(self, key: str) -> Any:
        return self._config.get_secret(key)

    def is_secret(self, key: str) -> bool:
        return pulumi.runtime.is_config_secret(f"{self._ns}:{key}")


def load_config() -> StackConfig:
    """The validated config, or a clean error (no stack trace) naming every bad key."""
    try:
        return cfgmod.load(PulumiConfigSource(), pulumi.get_stack())
    except ConfigError as err:
        raise pulumi.RunError(str(err)) from None


def _grafana_alerting(cfg: StackConfig):
    if routing.GRAFANA not in routing.paths(cfg):
        return None
    return grafana_alerting.alerting_spec(cfg, alerts.alert_rules(cfg), secret=pulumi.Output.secret)


def build_kubernetes(cfg: StackConfig) -> dict[str, Any]:
    """The stack on a cluster: the servers, the operator's scrape and rules, the cluster's Grafana."""
    k = cfg.kubernetes
    provider = k8s.Provider(
        "kubernetes",
        # The kubeconfig holds credentials: a secret from config to state.
        kubeconfig=pulumi.Output.secret(k.kubeconfig) if k.kubeconfig is not None else None,
        context=k.context,
    )
    components: dict[str, Any] = {}
    if k.install_prometheus_stack:
        components["prometheus-stack"] = PrometheusStack(
            "prometheus-stack",
            PrometheusStackArgs(
                provider=provider,
                version=k.prometheus_stack_version,
                namespace=k.prometheus_stack_namespace,
                values=kubernetes_render.prometheus_stack_values(cfg),
                remote_write_secret=kubernetes_render.remote_write_secret(cfg),
                remote_write_credentials=remote_write.operator_secret_data(cfg),
            ),
        )

    has_token = cfg.mistral.hf_token is not None
    mistral = MistralRsKubernetes(
        "mistral",
        MistralRsKubernetesArgs(
            provider=provider,
            namespace=kubernetes_render.namespace(cfg),
            statefulset=kubernetes_render.statefulset(cfg),
            service=kubernetes_render.service(cfg),
            pod_disruption_budget=kubernetes_render.pod_disruption_budget(cfg),
            hf_token_secret=kubernetes_render.hf_token_secret(cfg, "") if has_token else None,
            hf_token=cfg.mistral.hf_token,
            retain_data_on_delete=cfg.retain_data_on_delete,
        ),
    )
    # The namespace must exist first; with the install, so must the operator's CRDs the chart brings.
    monitoring_opts = pulumi.ResourceOptions(depends_on=[mistral.namespace, *components.values()])
    monitoring = OperatorMonitoring(
        "monitoring",
        OperatorMonitoringArgs(
            provider=provider,
            service_monitor=kubernetes_render.service_monitor(cfg),
            prometheus_rule=kubernetes_render.prometheus_rule(cfg),
        ),
        opts=monitoring_opts,
    )
    # The cluster's Grafana, with the same datasource, dashboards and alerting as on Docker; the
    # Docker-only arguments (network, container) are unused for an existing Grafana.
    grafana = Grafana(
        "grafana",
        GrafanaArgs(
            config=cfg.grafana,
            env=cfg.env,
            network_name=cfg.network_name,
            container_name=cfg.container_name("grafana"),
            retain_data_on_delete=cfg.retain_data_on_delete,
            allow_public_bind=False,
            prometheus_url=k.prometheus_url,
            scrape_interval=cfg.prometheus.scrape_interval,
            dashboards=dashboards.rendered(),
            alerting=_grafana_alerting(cfg),
        ),
    )

    pulumi.export("platform", cfg.platform)
    pulumi.export("env", cfg.env)
    pulumi.export("namespace", mistral.namespace_name)
    pulumi.export("prometheusUrl", k.prometheus_url)
    pulumi.export("grafanaUrl", grafana.url)
    pulumi.export("mistralModelId", cfg.mistral.model_id)
    pulumi.export("mistralApiUrl", f"http://{kubernetes_render.NAME}.{k.namespace}.svc:{cfg.mistral.port}/v1")
    return {"mistral": mistral, "monitoring": monitoring, "grafana": grafana, **components}


def build(cfg: StackConfig) -> dict[str, Any]:
    """Create every resource of the stack; returns the components by name."""
    if cfg.on_kubernetes:
        return build_kubernetes(cfg)
    alert_rules = alerts.alert_rules(cfg)
    network = docker.Network(
        "network",
        name=cfg.network_name,
        driver="bridge",
        labels=[docker.NetworkLabelArgs(label="llmstack.env", value=cfg.env)],
    )

    mistral = MistralRs(
        "mistral",
        MistralRsArgs(
            config=cfg.mistral,
            command=mistralrs.serve_command(cfg.mistral, with_hf_token=cfg.mistral.hf_token is not None),
            env=cfg.env,
            network_name=network.name,
            container_name=cfg.container_name("mistral"),
            retain_data_on_delete=cfg.retain_data_on_delete,
            allow_public_bind=cfg.allow_public_bind,
        ),
    )

    prometheus = Prometheus(
        "prometheus",
        PrometheusArgs(
            config=cfg.prometheus,
            env=cfg.env,
            network_name=network.name,
            container_name=cfg.container_name("prometheus"),
            retain_data_on_delete=cfg.retain_data_on_delete,
            allow_public_bind=cfg.allow_public_bind,
            prometheus_yml=prometheus_render.render_prometheus_yml(cfg),
            rule_files=prometheus_render.render_rule_files(cfg),
            secret_files={**alertmanager_render.prometheus_secret_files(cfg), **remote_write.secret_files(cfg)},
        ),
        # Scrapes the server from its first minute, so its model load is timed.
        opts=pulumi.ResourceOptions(depends_on=[mistral]),
    )

    exporters = {
        "cadvisor": Cadvisor(
            "cadvisor",
            ExporterArgs(cfg.exporters.cadvisor_image, cfg.env, network.name, cfg.container_name("cadvisor")),
        )
    }
    if cfg.exporters.dcgm_enabled:
        exporters["dcgm"] = DcgmExporter(
            "dcgm",
            ExporterArgs(cfg.exporters.dcgm_image, cfg.env, network.name, cfg.container_name("dcgm-exporter")),
        )

    # A Grafana in the stack reaches Prometheus on the Docker network; an existing one, outside it,
    # through the published address (set prometheusPublishAddress to one it can reach).
    grafana = Grafana(
        "grafana",
        GrafanaArgs(
            config=cfg.grafana,
            env=cfg.env,
            network_name=network.name,
            container_name=cfg.container_name("grafana"),
            retain_data_on_delete=cfg.retain_data_on_delete,
            allow_public_bind=cfg.allow_public_bind,
            prometheus_url=prometheus.internal_url if cfg.grafana.provisioned else prometheus.url,
            scrape_interval=cfg.prometheus.scrape_interval,
            dashboards=dashboards.rendered(),
            alerting=(
                grafana_alerting.alerting_spec(cfg, alert_rules, secret=pulumi.Output.secret)
                if routing.GRAFANA in routing.paths(cfg)
                else None
            ),
        ),
    )

    components: dict[str, Any] = {}
    if cfg.probes.enabled:
        components["blackbox"] = Blackbox(
            "blackbox",
            BlackboxArgs(
                config=cfg.probes,
                env=cfg.env,
                network_name=network.name,
                container_name=cfg.container_name("blackbox-exporter"),
                allow_public_bind=cfg.allow_public_bind,
                blackbox_yml=probes.render_blackbox_yml(cfg),
            ),
        )
    if alertmanager_render.runs_own(cfg):
        components["alertmanager"] = Alertmanager(
            "alertmanager",
            AlertmanagerArgs(
                config=cfg.alertmanager,
                env=cfg.env,
                network_name=network.name,
                container_name=cfg.container_name("alertmanager"),
                retain_data_on_delete=cfg.retain_data_on_delete,
                allow_public_bind=cfg.allow_public_bind,
                alertmanager_yml=alertmanager_render.render_alertmanager_yml(cfg, alert_rules),
                secret_files=alertmanager_render.secret_files(cfg, alert_rules),
            ),
        )
        pulumi.export("alertmanagerUrl", components["alertmanager"].url)

    pulumi.export("prometheusUrl", prometheus.url)
    pulumi.export("grafanaUrl", grafana.url)
    if grafana.admin_password is not None:
        pulumi.export("grafanaAdminPassword", grafana.admin_password)
    pulumi.export("env", cfg.env)
    pulumi.export("mistralModelId", mistral.model_id)
    pulumi.export(
        "mistralMetricsEndpoint",
        pulumi.Output.concat("http://", mistral.metrics_host, ":", mistral.metrics_port.apply(str), mistral.metrics_path),
    )
    pulumi.export("mistralApiUrl", f"http://{cfg.mistral.publish_address}:{cfg.mistral.publish_port}/v1")
    return {"network": network, "mistral": mistral, "prometheus": prometheus, "grafana": grafana, **exporters, **components}


def main() -> dict[str, Any]:
    # Validation happens entirely before the first resource is registered.
    return build(load_config())
