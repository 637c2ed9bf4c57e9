"""Prometheus: pinned image, TSDB volume and a container running the rendered config and rules."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_docker as docker

from llmstack import topology as t
from llmstack.config import PrometheusConfig

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
class PrometheusArgs:
    config: PrometheusConfig
    env: str
    network_name: pulumi.Input[str]
    container_name: str
    retain_data_on_delete: bool
    allow_public_bind: bool  # the allowPublicBind knob: labels the container for the policy pack
    # What the container runs, rendered by llmstack/prometheus.py.
    prometheus_yml: pulumi.Input[str]
    rule_files: Mapping[str, str]  # file name -> text, loaded from rules/ beside the config
    # path in the container -> secret config value: credentials of existing Alertmanagers and of
    # remote write endpoints
    secret_files: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class Prometheus(pulumi.ComponentResource):
    """Prometheus scraping the stack, with the llm:* recording rules and the stack's alerts.

    Config changes take effect by replacement: the provider uploads files only when it creates a
    container (`uploads` forces a new container), so new config or rules mean a new container on the
    same TSDB volume. A reload would need the files outside the container (a bind mount the provider
    cannot write remotely) plus a POST to /-/reload after every change; replacement needs neither,
    costs a few seconds of scrapes, and always runs exactly the rendered files.
    """

    url: pulumi.Output[str]  # on the host, from the publish address
    internal_url: pulumi.Output[str]  # on the stack's Docker network

    def __init__(self, name: str, args: PrometheusArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:Prometheus", name, None, opts)
        prom = args.config
        container_name = args.container_name

        image = docker.RemoteImage(
            f"{name}-image",
            name=prom.image,
            keep_locally=True,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # Mounted at the image's own data directory: Docker fills a new, empty volume with that
        # directory's ownership (nobody, the user Prometheus runs as), so the TSDB is writable without
        # running as root. Replacing the container keeps the data; on prod the volume is also retained on
        # delete and protected.
        tsdb = docker.Volume(
            f"{name}-tsdb",
            name=f"{container_name}-data",
            labels=volume_labels("prometheus", args.env),
            opts=data_volume_options(self, args.retain_data_on_delete),
        )

        uploads = [docker.ContainerUploadArgs(file=t.PROMETHEUS_CONFIG_FILE, content=args.prometheus_yml)]
        uploads += [
            docker.ContainerUploadArgs(file=f"{t.PROMETHEUS_CONFIG_DIR}/{t.PROMETHEUS_RULES_SUBDIR}/{file_name}", content=text)
            for file_name, text in sorted(args.rule_files.items())
        ]
        uploads += [docker.ContainerUploadArgs(file=path, content=pulumi.Output.secret(value)) for path, value in sorted(args.secret_files.items())]
        alias, port, _ = t.TARGETS["prometheus"]

        self.container = docker.Container(
            f"{name}-container",
            name=container_name,
            image=image.image_id,
            command=[
                f"--config.file={t.PROMETHEUS_CONFIG_FILE}",
                f"--storage.tsdb.path={t.PROMETHEUS_TSDB_PATH}",
                f"--storage.tsdb.retention.time={prom.retention_time}",
                f"--storage.tsdb.retention.size={prom.retention_size}",
            ]
            # Off unless asked for: whoever reaches the port could stop Prometheus or delete its data.
            + (["--web.enable-lifecycle"] if prom.lifecycle_api else [])
            + (["--web.enable-admin-api"] if prom.admin_api else []),
            uploads=uploads,
            volumes=[docker.ContainerVolumeArgs(volume_name=tsdb.name, container_path=t.PROMETHEUS_TSDB_PATH)],
            network_mode="bridge",
            networks_advanced=[network_attachment(args.network_name, [alias])],
            ports=[published_port(port, prom.publish_port, prom.publish_address)],
            # busybox wget is in the image; /-/ready answers 200 once the TSDB is open and rules load.
            healthcheck=http_healthcheck(f"http://127.0.0.1:{port}/-/ready", start_period="2m", tool="wget"),
            restart="unless-stopped",
            log_driver=LOG_DRIVER,
            log_opts=LOG_OPTS,
            labels=container_labels("prometheus", args.env, public_bind_allowed=args.allow_public_bind),
            # Credential files, when there are any, are uploads: keep them out of state in plaintext.
            opts=container_options(self, secret_outputs=["uploads"] if args.secret_files else ()),
        )

        self.url = pulumi.Output.from_input(f"http://{prom.publish_address}:{prom.publish_port}")
        self.internal_url = pulumi.Output.from_input(f"http://{alias}:{port}")
        self.register_outputs(
            {
                "url": self.url,
                "internal_url": self.internal_url,
                "container_name": self.container.name,
                "tsdb_volume": tsdb.name,
            }
        )
