"""The whole program under Pulumi mocks, for dev and prod: the Mistral.rs server as deployed."""

import pulumi
import pytest

from llmstack.config import MISTRAL_IMAGE_REPO
from tests.harness import contains_secret, find_plaintext, run_stack

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"


def mistral(rec):
    return rec.one(CONTAINER, "mistral-container")


@pytest.fixture(scope="module")
def dev():
    return run_stack("dev")


@pytest.fixture(scope="module")
def prod():
    return run_stack("prod")


def test_dev_uses_the_pinned_cpu_image_and_no_gpu(dev):
    image = dev.one(IMAGE, "mistral-image").inputs["name"]
    assert image == f"{MISTRAL_IMAGE_REPO}:cpu-0.9.2"
    container = mistral(dev).inputs
    assert container["image"].startswith("sha256:")  # the pulled image's id, not a moving tag
    assert "deviceRequests" not in container and "gpus" not in container
    assert "--cpu" in container["command"]


def test_prod_uses_the_cuda_image_and_requests_every_gpu(prod):
    assert prod.one(IMAGE, "mistral-image").inputs["name"] == f"{MISTRAL_IMAGE_REPO}:cuda128-sm90-0.9.2"
    container = mistral(prod).inputs
    assert container["deviceRequests"] == [{"driver": "nvidia", "capabilities": ["gpu"], "count": -1}]
    assert "--cpu" not in container["command"]


def test_prod_gpu_device_ids_pin_the_server_to_those_gpus():
    rec = run_stack("prod", {"mistralGpuDeviceIds": ["0", "2"]})
    assert mistral(rec).inputs["deviceRequests"] == [{"driver": "nvidia", "capabilities": ["gpu"], "deviceIds": ["0", "2"]}]


@pytest.mark.parametrize("env,model,max_seqs,paged,isq", [
    ("dev", "Qwen/Qwen3-0.6B", "8", "off", None),
    ("prod", "mistralai/Mistral-7B-Instruct-v0.3", "64", "on", "q8_0"),
])
def test_serve_command_comes_from_config(env, model, max_seqs, paged, isq, request):
    rec = request.getfixturevalue(env)
    cmd = mistral(rec).inputs["command"]
    assert cmd[:3] == ["--token-source", "none", "serve"]
    flags = dict(zip(cmd[3::1], cmd[4::1]))
    assert flags["--port"] == "1234" and flags["--host"] == "0.0.0.0"
    assert flags["--max-seqs"] == max_seqs and flags["--paged-attn"] == paged and flags["-m"] == model
    assert flags.get("--isq") == isq
    # metrics stay on: upstream serves /metrics unless told not to
    assert not any("disable-metrics" in part for part in cmd)


def test_model_cache_volume_is_mounted_at_hf_home(dev):
    volume = dev.one(VOLUME, "mistral-model-cache").inputs
    assert volume["name"] == "llmstack-dev-mistral-hf-cache"
    assert mistral(dev).inputs["volumes"] == [{"volumeName": volume["name"], "containerPath": "/data"}]


def test_api_port_is_published_on_loopback_only(dev, prod):
    for rec in (dev, prod):
        assert mistral(rec).inputs["ports"] == [{"internal": 1234, "external": 1234, "ip": "127.0.0.1", "protocol": "tcp"}]


def test_a_public_publish_address_needs_the_explicit_opt_in_which_labels_the_container():
    with pytest.raises(pulumi.RunError, match="mistralPublishAddress: got '0.0.0.0'; .* needs allowPublicBind: true"):
        run_stack("dev", {"mistralPublishAddress": "0.0.0.0"})
    container = mistral(run_stack("dev", {"mistralPublishAddress": "0.0.0.0", "allowPublicBind": "true"})).inputs
    assert container["ports"][0]["ip"] == "0.0.0.0"
    assert {"label": "llmstack.public-bind-allowed", "value": "true"} in container["labels"]


def test_no_container_is_labelled_public_without_the_opt_in(dev, prod):
    for rec in (dev, prod):
        for c in rec.of_type("docker:index/container:Container"):
            assert all(label["label"] != "llmstack.public-bind-allowed" for label in c.inputs["labels"]), c.name


def test_container_runs_on_the_shared_network_with_alias_mistral(dev):
    network = dev.one("docker:index/network:Network").inputs["name"]
    container = mistral(dev).inputs
    assert container["networksAdvanced"] == [{"name": network, "aliases": ["mistral"]}]
    assert container["networkMode"] == "bridge"


def test_restart_logs_and_readiness(dev):
    container = mistral(dev).inputs
    assert container["restart"] == "unless-stopped"
    assert container["logDriver"] == "json-file" and container["logOpts"] == {"max-size": "10m", "max-file": "5"}
    assert container["healthcheck"]["tests"] == ["CMD-SHELL", "curl -fsS http://127.0.0.1:1234/health >/dev/null"]


def test_hf_token_is_a_secret_and_never_plaintext():
    token = "hf_abcdefSECRETtoken123"
    rec = run_stack("dev", secrets={"hfToken": token})
    container = mistral(rec).inputs
    assert contains_secret(container["envs"], f"HF_TOKEN={token}")
    assert container["command"][:2] == ["--token-source", "env:HF_TOKEN"]
    for resource in rec.resources:
        assert not find_plaintext(resource.inputs, token), resource.name


def test_no_hf_token_means_no_env(dev):
    assert not mistral(dev).inputs.get("envs")


def test_prod_retains_data_volumes_on_delete(prod):
    volume = prod.one(VOLUME, "mistral-model-cache").inputs
    assert {"label": "llmstack.data", "value": "true"} in volume["labels"]


def test_data_volume_is_retained_on_delete_in_prod_only(dev, prod):
    assert prod.opts("mistral-model-cache").retain_on_delete is True
    assert prod.opts("mistral-model-cache").protect is True
    assert not dev.opts("mistral-model-cache").retain_on_delete


def test_children_are_parented_to_the_component(dev):
    for child in ("mistral-image", "mistral-model-cache", "mistral-container"):
        assert dev.parent_of(child) == "mistral"
    assert dev.options["mistral"][0] == "llmstack:index:MistralRs"
    assert "envs" in dev.opts("mistral-container").additional_secret_outputs


def test_every_container_is_replaced_delete_first(prod):
    # fixed names and host ports: create-before-delete would collide with the old container
    names = [r.name for r in prod.of_type(CONTAINER)]
    assert {"mistral-container", "prometheus-container", "grafana-container", "cadvisor-container", "dcgm-container"} <= set(names)
    for name in names:
        assert prod.opts(name).delete_before_replace is True, name
