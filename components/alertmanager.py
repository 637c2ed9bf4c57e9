"""The stack's own Alertmanager: pinned image, a named volume for silences and the notification log,
and a container running the rendered alertmanager.yml with its credentials in secret files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import pulumi
import pulumi_docker as docker

from llmstack import topology as t
from llmstack.config import AlertmanagerConfig

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
class AlertmanagerArgs:
    config: AlertmanagerConfig
    env: str
    network_name: pulumi.Input[str]
    container_name: str
    retain_data_on_delete: bool
    allow_public_bind: bool  # the allowPublicBind knob: labels the container for the policy pack
    alertmanager_yml: str  # rendered by llmstack/alertmanager.py: file references, never a secret
    secret_files: Mapping[str, Any]  # path in the container -> secret config value


class Alertmanager(pulumi.ComponentResource):
    """Alertmanager receiving the stack's Prometheus alerts and delivering them to the team's channels."""

    url: pulumi.Output[str]  # on the host, from the publish address
    internal_url: pulumi.Output[str]  # on the stack's Docker network

    def __init__(self, name: str, args: AlertmanagerArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:Alertmanager", name, None, opts)
        am = args.config
        alias, port, _ = t.TARGETS["alertmanager"]

        image = docker.RemoteImage(f"{name}-image", name=am.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=self))
        # Silences and the notification log live here: a replaced container keeps both, so a silence
        # set before an upgrade still holds after it, and nothing already sent is sent again.
        data = docker.Volume(
            f"{name}-data",
            name=f"{args.container_name}-data",
            labels=volume_labels("alertmanager", args.env),
            opts=data_volume_options(self, args.retain_data_on_delete),
        )
        uploads = [docker.ContainerUploadArgs(file=t.ALERTMANAGER_CONFIG_FILE, content=args.alertmanager_yml)]
        uploads += [
            docker.ContainerUploadArgs(file=path, content=pulumi.Output.secret(value))
            for path, value in sorted(args.secret_files.items())
        ]
        self.container = docker.Container(
            f"{name}-container",
            name=args.container_name,
            image=image.image_id,
            command=[
                f"--config.file={t.ALERTMANAGER_CONFIG_FILE}",
                f"--storage.path={t.ALERTMANAGER_DATA_PATH}",
                # One instance: no gossip port to open or secure.
                "--cluster.listen-address=",
            ],
            uploads=uploads,
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path=t.ALERTMANAGER_DATA_PATH)],
            network_mode="bridge",
            networks_advanced=[network_attachment(args.network_name, [alias])],
            ports=[published_port(port, am.publish_port, am.publish_address)],
            # busybox wget is in the image; /-/ready answers once the config is loaded.
            healthcheck=http_healthcheck(f"http://127.0.0.1:{port}/-/ready", start_period="30s", tool="wget"),
            restart="unless-stopped",
            log_driver=LOG_DRIVER,
            log_opts=LOG_OPTS,
            labels=container_labels("alertmanager", args.env, public_bind_allowed=args.allow_public_bind),
            # The credential files are uploads: keep them out of state in plaintext.
            opts=container_options(self, secret_outputs=["uploads"]),
        )
        self.url = pulumi.Output.from_input(f"http://{am.publish_address}:{am.publish_port}")
        self.internal_url = pulumi.Output.from_input(f"http://{alias}:{port}")
        self.register_outputs({"url": self.url, "internal_url": self.internal_url, "data_volume": data.name})
