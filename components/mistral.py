"""The Mistral.rs inference server: image, model cache volume and container."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

from llmstack import topology
from llmstack.config import MistralConfig
from llmstack.engines import mistralrs

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

NETWORK_ALIAS, _, METRICS_PATH = topology.TARGETS["mistral"]


@dataclass(frozen=True)
class MistralRsArgs:
    config: MistralConfig
    command: list[str]  # after the image's `mistralrs` entrypoint, rendered by llmstack/engines/mistralrs.py
    env: str
    network_name: pulumi.Input[str]
    container_name: str
    retain_data_on_delete: bool
    allow_public_bind: bool  # the allowPublicBind knob: labels the container for the policy pack


class MistralRs(pulumi.ComponentResource):
    """A Mistral.rs server on the stack's Docker network, with its Prometheus metrics on."""

    metrics_host: pulumi.Output[str]
    metrics_port: pulumi.Output[int]
    metrics_path: pulumi.Output[str]
    model_id: pulumi.Output[str]

    def __init__(self, name: str, args: MistralRsArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:MistralRs", name, None, opts)
        cfg = args.config
        child = pulumi.ResourceOptions(parent=self)

        image = docker.RemoteImage(
            f"{name}-image",
            name=cfg.image,
            # Another stack or a restart may still use it; pulling several GB again is slow.
            keep_locally=True,
            opts=child,
        )

        # The model weights live here, so a container replacement does not download them again.
        cache = docker.Volume(
            f"{name}-model-cache",
            name=f"{args.container_name}-hf-cache",
            labels=volume_labels("mistral", args.env),
            opts=data_volume_options(self, args.retain_data_on_delete),
        )

        envs: list[pulumi.Input[str]] = []
        if cfg.hf_token is not None:
            envs.append(pulumi.Output.secret(cfg.hf_token).apply(lambda t: f"{mistralrs.HF_TOKEN_ENV}={t}"))

        device_requests = None
        if cfg.uses_gpu:
            device_requests = [
                docker.ContainerDeviceRequestArgs(
                    driver="nvidia",
                    capabilities=["gpu"],
                    # count -1 asks for every GPU; explicit ids pin the server to some of them.
                    count=None if cfg.gpu_device_ids else -1,
                    device_ids=list(cfg.gpu_device_ids) or None,
                )
            ]

        self.container = docker.Container(
            f"{name}-container",
            name=args.container_name,
            image=image.image_id,
            command=args.command,
            envs=envs,
            volumes=[docker.ContainerVolumeArgs(volume_name=cache.name, container_path=topology.MISTRAL_MODEL_CACHE_PATH)],
            device_requests=device_requests,
            memory=cfg.memory_limit_mb or None,
            network_mode="bridge",
            networks_advanced=[network_attachment(args.network_name, [NETWORK_ALIAS])],
            ports=[published_port(cfg.port, cfg.publish_port, cfg.publish_address)],
            healthcheck=http_healthcheck(
                f"http://127.0.0.1:{cfg.port}{topology.MISTRAL_HEALTH_PATH}",
                # The port opens only after the weights are downloaded and loaded.
                start_period="20m",
            ),
            restart="unless-stopped",
            log_driver=LOG_DRIVER,
            log_opts=LOG_OPTS,
            labels=container_labels("mistral", args.env, public_bind_allowed=args.allow_public_bind),
            # The env var carries the HF token, so keep it out of state in plaintext.
            opts=container_options(self, secret_outputs=["envs"]),
        )

        self.metrics_host = pulumi.Output.from_input(NETWORK_ALIAS)
        self.metrics_port = pulumi.Output.from_input(cfg.port)
        self.metrics_path = pulumi.Output.from_input(METRICS_PATH)
        self.model_id = pulumi.Output.from_input(cfg.model_id)
        self.register_outputs(
            {
                "metrics_host": self.metrics_host,
                "metrics_port": self.metrics_port,
                "metrics_path": self.metrics_path,
                "model_id": self.model_id,
                "container_name": self.container.name,
            }
        )
