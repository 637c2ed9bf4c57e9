"""Conventions every container in the stack shares, kept in one place."""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
import pulumi_docker as docker

# Docker labels the policy pack (policy/) reads to know what a container is and where it runs.
LABEL_COMPONENT = "llmstack.component"
LABEL_ENV = "llmstack.env"
LABEL_PUBLIC_BIND_ALLOWED = "llmstack.public-bind-allowed"
LABEL_DATA = "llmstack.data"

# json-file with rotation: without it a chatty inference server fills the host disk.
LOG_DRIVER = "json-file"
LOG_OPTS = {"max-size": "10m", "max-file": "5"}


def container_labels(component: str, env: str, public_bind_allowed: bool = False) -> list[docker.ContainerLabelArgs]:
    labels = {LABEL_COMPONENT: component, LABEL_ENV: env}
    if public_bind_allowed:
        # Only the explicit allowPublicBind key says so; an address alone never does.
        labels[LABEL_PUBLIC_BIND_ALLOWED] = "true"
    return [docker.ContainerLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def volume_labels(component: str, env: str) -> list[docker.VolumeLabelArgs]:
    labels = {LABEL_COMPONENT: component, LABEL_ENV: env, LABEL_DATA: "true"}
    return [docker.VolumeLabelArgs(label=k, value=v) for k, v in sorted(labels.items())]


def published_port(internal: int, external: int, address: str) -> docker.ContainerPortArgs:
    return docker.ContainerPortArgs(internal=internal, external=external, ip=address, protocol="tcp")


def network_attachment(network_name, aliases: Sequence[str]) -> docker.ContainerNetworksAdvancedArgs:
    return docker.ContainerNetworksAdvancedArgs(name=network_name, aliases=list(aliases))


def http_healthcheck(url: str, start_period: str = "30s", tool: str = "curl") -> docker.ContainerHealthcheckArgs:
    """A readiness check run inside the container with whichever HTTP client its image ships."""
    probe = f"curl -fsS {url} >/dev/null" if tool == "curl" else f"wget -q -O /dev/null {url}"
    return docker.ContainerHealthcheckArgs(
        tests=["CMD-SHELL", probe],
        interval="15s",
        timeout="5s",
        retries=5,
        start_period=start_period,
    )


def data_volume_options(parent, retain: bool) -> pulumi.ResourceOptions:
    """Options for a volume that holds data (TSDB, Grafana DB, model cache).

    Where data is kept (prod by default), the volume survives `pulumi destroy` (retain_on_delete)
    and is protected against an accidental replace or delete; the policy pack checks `protect`,
    the one of the two a policy can see.
    """
    return pulumi.ResourceOptions(parent=parent, retain_on_delete=retain, protect=retain)


def container_options(parent, secret_outputs: Sequence[str] = ()) -> pulumi.ResourceOptions:
    """Options every stack container shares.

    Containers have fixed names and published ports, and the data ones hold a volume lock, so only one
    can exist at a time: a replacement must remove the old container before it creates the new one.
    """
    return pulumi.ResourceOptions(
        parent=parent, delete_before_replace=True, additional_secret_outputs=list(secret_outputs) or None
    )
