"""The Prometheus blackbox exporter: probes every inference server with a real request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

from llmstack import topology as t
from llmstack.config import ProbesConfig

from .common import LOG_DRIVER, LOG_OPTS, container_labels, container_options, http_healthcheck, network_attachment, published_port


@dataclass(frozen=True)
class BlackboxArgs:
    config: ProbesConfig
    env: str
    network_name: pulumi.Input[str]
    container_name: str
    allow_public_bind: bool  # the allowPublicBind knob: labels the container for the policy pack
    blackbox_yml: str  # the probe modules, rendered by llmstack/probes.py


class Blackbox(pulumi.ComponentResource):
    def __init__(self, name: str, args: BlackboxArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:Blackbox", name, None, opts)
        probes = args.config
        alias, port, _ = t.TARGETS["blackbox"]
        image = docker.RemoteImage(f"{name}-image", name=probes.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=self))
        self.container = docker.Container(
            f"{name}-container",
            name=args.container_name,
            image=image.image_id,
            command=[f"--config.file={t.BLACKBOX_CONFIG_FILE}"],
            uploads=[docker.ContainerUploadArgs(file=t.BLACKBOX_CONFIG_FILE, content=args.blackbox_yml)],
            network_mode="bridge",
            networks_advanced=[network_attachment(args.network_name, [alias])],
            ports=[published_port(port, probes.publish_port, probes.publish_address)],
            # busybox wget is in the image; /-/healthy answers once the config is loaded.
            healthcheck=http_healthcheck(f"http://127.0.0.1:{port}/-/healthy", start_period="10s", tool="wget"),
            restart="unless-stopped",
            log_driver=LOG_DRIVER,
            log_opts=LOG_OPTS,
            labels=container_labels("blackbox-exporter", args.env, public_bind_allowed=args.allow_public_bind),
            opts=container_options(self),
        )
        self.register_outputs({"container_name": self.container.name})
