"""Grafana: provisioned in the stack (or an existing one), with its datasource, folder, dashboards
and, through the child GrafanaAlerting component, contact points, routing and alert rules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping, Optional

import pulumi
import pulumi_docker as docker
import pulumi_random as random
import pulumiverse_grafana as grafana

from llmstack import dashboards, topology
from llmstack.config import GrafanaConfig
from llmstack.grafana_alerting import AlertingSpec

from .alerting import GrafanaAlerting, GrafanaAlertingArgs
from .common import (
    LOG_DRIVER,
    LOG_OPTS,
    container_labels,
    container_options,
    data_volume_options,
    http_healthcheck,
    network_attachment,
    published_port,
    volume_labels,
)


@dataclass(frozen=True)
class GrafanaArgs:
    config: GrafanaConfig
    env: str
    network_name: pulumi.Input[str]
    container_name: str
    retain_data_on_delete: bool
    allow_public_bind: bool  # the allowPublicBind knob: labels the container for the policy pack
    # The stack's Prometheus as Grafana reaches it, e.g. http://prometheus:9090 on the Docker network.
    prometheus_url: pulumi.Input[str]
    # The datasource's timeInterval, so $__rate_interval covers at least four scrapes.
    scrape_interval: str
    dashboards: Mapping[str, str]  # slug -> dashboard JSON, rendered by llmstack/dashboards
    alerting: Optional[AlertingSpec]  # rendered by llmstack/grafana_alerting.py; None: Grafana delivers nothing


def _loopback(address: str) -> str:
    # The provider runs on the Docker host; a wildcard bind is reached through loopback.
    return "127.0.0.1" if address in ("0.0.0.0", "::", "") else address


class Grafana(pulumi.ComponentResource):
    """Grafana with the stack's dashboards and alerting, managed through an explicit provider."""

    url: pulumi.Output[str]
    admin_password: Optional[pulumi.Output[str]]

    def __init__(self, name: str, args: GrafanaArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:Grafana", name, None, opts)
        g = args.config

        self.container = None
        self.admin_password = None
        if g.provisioned:
            self._provision(name, args)
            self.url = pulumi.Output.from_input(f"http://{_loopback(g.publish_address)}:{g.publish_port}")
            auth = pulumi.Output.secret(pulumi.Output.concat(g.admin_user, ":", self.admin_password))
            # Registering the provider only after the container is healthy (wait=True) is what
            # makes every Grafana resource below wait for a Grafana that answers.
            provider_opts = pulumi.ResourceOptions(parent=self, depends_on=[self.container])
        else:
            self.url = pulumi.Output.from_input(g.url)
            auth = pulumi.Output.secret(g.auth)
            provider_opts = pulumi.ResourceOptions(parent=self)

        self.provider = grafana.Provider(f"{name}-provider", url=self.url, auth=auth, opts=provider_opts)

        def child(**extra) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=self.provider, **extra)

        self.datasource = grafana.oss.DataSource(
            f"{name}-datasource",
            name=dashboards.DATASOURCE_NAME,
            uid=dashboards.DATASOURCE_UID,
            type="prometheus",
            url=args.prometheus_url,
            access_mode="proxy",
            # In our own Grafana it is the only datasource; an existing Grafana keeps its default.
            is_default=g.provisioned,
            json_data_encoded=json.dumps({"httpMethod": "POST", "timeInterval": args.scrape_interval}, sort_keys=True),
            opts=child(),
        )
        self.folder = grafana.oss.Folder(
            f"{name}-folder",
            uid=dashboards.FOLDER_UID,
            title=dashboards.FOLDER_TITLE,
            opts=child(),
        )
        self.dashboards = {}
        for slug, config_json in args.dashboards.items():
            self.dashboards[slug] = grafana.oss.Dashboard(
                f"{name}-dashboard-{slug}",
                config_json=config_json,
                folder=self.folder.uid,
                overwrite=True,
                opts=child(depends_on=[self.datasource]),
            )

        self.alerting = None
        if args.alerting is not None:
            self.alerting = GrafanaAlerting(
                f"{name}-alerting",
                GrafanaAlertingArgs(spec=args.alerting, provider=self.provider, folder=self.folder, datasource=self.datasource),
                opts=pulumi.ResourceOptions(parent=self),
            )

        outputs = {"url": self.url, "folder_uid": self.folder.uid, "datasource_uid": self.datasource.uid}
        if self.admin_password is not None:
            outputs["admin_password"] = self.admin_password
        self.register_outputs(outputs)

    def _provision(self, name: str, args: GrafanaArgs) -> None:
        g = args.config
        container_name = args.container_name
        alias, port, _ = topology.TARGETS["grafana"]

        image = docker.RemoteImage(f"{name}-image", name=g.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=self))
        # Grafana's database (users, alert state, silences) lives here and survives replacement.
        data = docker.Volume(
            f"{name}-data",
            name=f"{container_name}-data",
            labels=volume_labels("grafana", args.env),
            opts=data_volume_options(self, args.retain_data_on_delete),
        )
        password = random.RandomPassword(
            f"{name}-admin-password",
            length=32,
            # Letters and digits only: it travels in an env var and in `user:password` basic auth.
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.admin_password = pulumi.Output.secret(password.result)

        envs = [
            pulumi.Output.concat("GF_SECURITY_ADMIN_USER=", g.admin_user),
            pulumi.Output.concat("GF_SECURITY_ADMIN_PASSWORD=", self.admin_password),
            "GF_AUTH_ANONYMOUS_ENABLED=false",
            "GF_USERS_ALLOW_SIGN_UP=false",
            "GF_ANALYTICS_REPORTING_ENABLED=false",
        ]
        self.container = docker.Container(
            f"{name}-container",
            name=container_name,
            image=image.image_id,
            envs=envs,
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path=topology.GRAFANA_DATA_PATH)],
            network_mode="bridge",
            networks_advanced=[network_attachment(args.network_name, [alias])],
            ports=[published_port(port, g.publish_port, g.publish_address)],
            # The image ships curl (grafana/grafana Dockerfile installs it on both base images).
            healthcheck=http_healthcheck(f"http://127.0.0.1:{port}{topology.GRAFANA_HEALTH_PATH}", start_period="30s"),
            # Create returns only once the healthcheck passes, so the provider finds Grafana up.
            wait=True,
            wait_timeout=180,
            restart="unless-stopped",
            log_driver=LOG_DRIVER,
            log_opts=LOG_OPTS,
            labels=container_labels("grafana", args.env, public_bind_allowed=args.allow_public_bind),
            # The admin password is in the env vars.
            opts=container_options(self, secret_outputs=["envs"]),
        )
