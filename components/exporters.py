"""Resource exporters Mistral.rs does not replace: cAdvisor (container CPU and memory, start times)
and, on GPU hosts, NVIDIA's DCGM exporter. Prometheus scrapes both on the stack network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_docker as docker

from llmstack.topology import TARGETS

from .common import LOG_DRIVER, LOG_OPTS, container_labels, container_options, http_healthcheck, network_attachment


@dataclass(frozen=True)
class ExporterArgs:
    image: str
    env: str
    network_name: pulumi.Input[str]
    container_name: str


class Cadvisor(pulumi.ComponentResource):
    """cAdvisor reading the Docker host's cgroups, read-only."""

    def __init__(self, name: str, args: ExporterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:Cadvisor", name, None, opts)
        alias, port, _ = TARGETS["cadvisor"]
        image = docker.RemoteImage(f"{name}-image", name=args.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=self))
        host_paths = [("/", "/rootfs"), ("/var/run", "/var/run"), ("/sys", "/sys"), ("/var/lib/docker", "/var/lib/docker"), ("/dev/disk", "/dev/disk")]
        self.container = docker.Container(
            f"{name}-container",
            name=args.container_name,
            image=image.image_id,
            command=[
                # Only Docker containers, and only the metric families the rules use: the default
                # set multiplies series per container several times over.
                "--docker_only=true",
                "--store_container_labels=false",
                "--housekeeping_interval=10s",
                "--enable_metrics=cpu,memory",
            ],
            volumes=[docker.ContainerVolumeArgs(host_path=h, container_path=c, read_only=True) for h, c in host_paths],
            devices=[docker.ContainerDeviceArgs(host_path="/dev/kmsg", container_path="/dev/kmsg")],
            # cAdvisor needs the host's cgroup and kmsg views; upstream's documented docker run uses it too.
            privileged=True,
            network_mode="bridge",
            networks_advanced=[network_attachment(args.network_name, [alias])],
            healthcheck=http_healthcheck(f"http://127.0.0.1:{port}/healthz", start_period="30s", tool="wget"),
            restart="unless-stopped",
            log_driver=LOG_DRIVER,
            log_opts=LOG_OPTS,
            labels=container_labels("cadvisor", args.env),
            opts=container_options(self),
        )
        self.register_outputs({"container_name": self.container.name})


class DcgmExporter(pulumi.ComponentResource):
    """NVIDIA's DCGM exporter on every GPU, for utilisation, framebuffer memory, temperature, power, XID."""

    def __init__(self, name: str, args: ExporterArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:DcgmExporter", name, None, opts)
        alias, _, _ = TARGETS["dcgm"]
        image = docker.RemoteImage(f"{name}-image", name=args.image, keep_locally=True, opts=pulumi.ResourceOptions(parent=self))
        self.container = docker.Container(
            f"{name}-container",
            name=args.container_name,
            image=image.image_id,
            device_requests=[docker.ContainerDeviceRequestArgs(driver="nvidia", count=-1, capabilities=["gpu"])],
            # DCGM's profiling counters (tensor-core activity) need it; NVIDIA's docker run example adds it.
            capabilities=docker.ContainerCapabilitiesArgs(adds=["SYS_ADMIN"]),
            network_mode="bridge",
            networks_advanced=[network_attachment(args.network_name, [alias])],
            restart="unless-stopped",
            log_driver=LOG_DRIVER,
            log_opts=LOG_OPTS,
            labels=container_labels("dcgm-exporter", args.env),
            opts=container_options(self),
        )
        self.register_outputs({"container_name": self.container.name})
