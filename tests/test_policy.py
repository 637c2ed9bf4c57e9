"""The `llmstack-policies` pack (policy/): each policy with passing and failing resources.

Three levels, none needing the Pulumi CLI:
- the pure check functions on plain dicts;
- the pulumi-policy ResourceValidationPolicy objects, called with real ResourceValidationArgs and a
  recording report_violation;
- pulumi-policy's own analyzer servicer fed AnalyzeRequest protobufs shaped like the engine's (secret
  envelopes, unknowns, resource options), which is the path `pulumi preview --policy-pack` takes.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import pytest
import pulumi_policy
import pulumi_policy.version
from pulumi_policy import ResourceValidationPolicy
import yaml
from google.protobuf import json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2
from pulumi_policy import (
    EnforcementLevel,
    PolicyResourceOptions,
    PolicyCustomTimeouts,
    ResourceValidationArgs,
)
from pulumi_policy.policy import _PolicyAnalyzerServicer

ROOT = Path(__file__).resolve().parents[1]
POLICY_DIR = ROOT / "policy"
sys.path.insert(0, str(POLICY_DIR))

import llmstack_policies as lp  # noqa: E402

SHA = "sha256:" + "a" * 64
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN_STRING = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    # The CLI exports these to a policy pack; a developer shell must not leak them into the tests.
    for var in ("PULUMI_STACK", "PULUMI_PROJECT", "PULUMI_DRY_RUN", "PULUMI_CONFIG"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def secret_markers():
    assert lp.install_secret_markers(), "pulumi-policy is not the version the marker shim was verified on"
    yield
    lp.uninstall_secret_markers()


@pytest.fixture
def no_secret_markers():
    lp.uninstall_secret_markers()
    yield


# ------------------------------------------------------------------------------------------------
# helpers


class Recorder:
    """A report_violation that records its calls."""

    def __init__(self):
        self.calls: list[tuple[str, object]] = []

    def __call__(self, message, urn=None):
        self.calls.append((message, urn))

    @property
    def messages(self) -> list[str]:
        return [m for m, _ in self.calls]


def labels(**kv) -> list[dict]:
    return [{"label": k, "value": v} for k, v in kv.items()]


def container(env="prod", component="mistral", image="ghcr.io/ericlbuehler/mistral.rs:cuda128-sm90-0.9.2", **props):
    return {
        "image": image,
        "labels": labels(**{lp.LABEL_ENV: env, lp.LABEL_COMPONENT: component}),
        **props,
    }


def opts(protect=False, additional_secret_outputs=()):
    return PolicyResourceOptions(
        protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), list(additional_secret_outputs), None
    )


def run_policy(policy, resource_type, props, *, protect=False, aso=(), config=None) -> Recorder:
    args = ResourceValidationArgs(
        resource_type, props, f"urn:pulumi:prod::llmstack::{resource_type}::r", "r", opts(protect, aso), None, config
    )
    rec = Recorder()
    policy.validate(args, rec)
    return rec


def secret(value):
    return {SECRET_SIG_KEY: SECRET_SIG, "value": value}


def analyze(servicer, resource_type, props, *, protect=False, aso=()):
    struct = struct_pb2.Struct()
    json_format.ParseDict(props, struct)
    request = analyzer_pb2.AnalyzeRequest(
        type=resource_type,
        urn=f"urn:pulumi:prod::llmstack::{resource_type}::r",
        name="r",
        properties=struct,
        options=analyzer_pb2.AnalyzerResourceOptions(protect=protect, additionalSecretOutputs=list(aso)),
    )
    return list(servicer.Analyze(request, None).diagnostics)


@pytest.fixture
def servicer():
    return _PolicyAnalyzerServicer(lp.PACK_NAME, "0.1.0", lp.policies(), EnforcementLevel.MANDATORY)


# ------------------------------------------------------------------------------------------------
# pinned-images


@pytest.mark.parametrize(
    "ref",
    [
        "mistral",
        "ghcr.io/ericlbuehler/mistral.rs",
        "repo:latest",
        "repo:LATEST",
        "repo:cpu-latest",
        "ghcr.io/ericlbuehler/mistral.rs:cuda-latest",
        "registry.local:5000/repo",  # the port is not a tag
        "registry.local:5000/repo:latest",
        "repo:",
        "repo@sha256:abc",  # truncated digest
        "",
        None,
    ],
)
def test_image_refs_that_are_not_pinned(ref):
    assert lp.image_pin_problem(ref) is not None


@pytest.mark.parametrize(
    "ref",
    [
        "prom/prometheus:v3.5.0",
        "grafana/grafana:12.2.1",
        "ghcr.io/ericlbuehler/mistral.rs:cuda128-sm90-0.9.2",
        "nvcr.io/nvidia/k8s/dcgm-exporter:4.4.1-4.6.0-ubuntu22.04",
        "registry.local:5000/repo:1.2",
        f"repo@{SHA}",
        f"registry.local:5000/repo:latest@{SHA}",  # the digest pins it
        SHA,  # an image ID, what RemoteImage.image_id gives a Container
    ],
)
def test_image_refs_that_are_pinned(ref):
    assert lp.image_pin_problem(ref) is None


def test_pinned_images_policy_rejects_a_latest_container_image():
    rec = run_policy(lp.PINNED_IMAGES, lp.CONTAINER, container(image="ghcr.io/ericlbuehler/mistral.rs:cpu-latest"))
    assert len(rec.calls) == 1
    assert "image:" in rec.messages[0] and "cpu-latest" in rec.messages[0]


def test_pinned_images_policy_rejects_an_untagged_remote_image():
    rec = run_policy(lp.PINNED_IMAGES, lp.REMOTE_IMAGE, {"name": "registry.local:5000/grafana", "keepLocally": True})
    assert len(rec.calls) == 1
    assert "name:" in rec.messages[0] and "no tag" in rec.messages[0]


def test_pinned_images_policy_passes_pinned_images():
    assert run_policy(lp.PINNED_IMAGES, lp.REMOTE_IMAGE, {"name": "prom/prometheus:v3.5.0"}).calls == []
    assert run_policy(lp.PINNED_IMAGES, lp.CONTAINER, container(image=SHA)).calls == []


def test_pinned_images_policy_ignores_other_types():
    assert run_policy(lp.PINNED_IMAGES, lp.VOLUME, {"name": "latest"}).calls == []


# ------------------------------------------------------------------------------------------------
# no-public-bind-in-prod


@pytest.mark.parametrize("ip", [None, "0.0.0.0", "::", "[::]", ""])
def test_prod_port_on_every_interface_is_a_violation(ip):
    port = {"internal": 9090, "external": 9090}
    if ip is not None:
        port["ip"] = ip
    rec = run_policy(lp.NO_PUBLIC_BIND_IN_PROD, lp.CONTAINER, container(component="prometheus", ports=[port]))
    assert len(rec.calls) == 1
    assert "ports[0]" in rec.messages[0] and "all interfaces" in rec.messages[0]


def test_prod_port_on_loopback_passes():
    props = container(component="prometheus", ports=[{"internal": 9090, "external": 9090, "ip": "127.0.0.1"}])
    assert run_policy(lp.NO_PUBLIC_BIND_IN_PROD, lp.CONTAINER, props).calls == []


def test_dev_port_on_every_interface_passes():
    props = container(env="dev", component="grafana", ports=[{"internal": 3000, "external": 3000}])
    assert run_policy(lp.NO_PUBLIC_BIND_IN_PROD, lp.CONTAINER, props).calls == []


def test_prod_stack_counts_as_prod_even_with_a_dev_label(monkeypatch):
    monkeypatch.setenv("PULUMI_STACK", "prod")
    props = container(env="dev", component="grafana", ports=[{"internal": 3000, "external": 3000}])
    assert len(run_policy(lp.NO_PUBLIC_BIND_IN_PROD, lp.CONTAINER, props).calls) == 1


def test_public_bind_allowed_by_label():
    props = container(component="grafana", ports=[{"internal": 3000, "external": 3000, "ip": "0.0.0.0"}])
    props["labels"] += labels(**{lp.LABEL_PUBLIC_BIND_ALLOWED: "true"})
    assert run_policy(lp.NO_PUBLIC_BIND_IN_PROD, lp.CONTAINER, props).calls == []


def test_public_bind_allowed_by_policy_config_only_for_listed_components():
    config = {lp.CONFIG_ALLOW_PUBLIC_BIND: ["grafana"]}
    grafana = container(component="grafana", ports=[{"internal": 3000, "external": 3000}])
    prometheus = container(component="prometheus", ports=[{"internal": 9090, "external": 9090}])
    assert run_policy(lp.NO_PUBLIC_BIND_IN_PROD, lp.CONTAINER, grafana, config=config).calls == []
    assert len(run_policy(lp.NO_PUBLIC_BIND_IN_PROD, lp.CONTAINER, prometheus, config=config).calls) == 1


def test_prod_host_network_is_a_violation():
    rec = run_policy(lp.NO_PUBLIC_BIND_IN_PROD, lp.CONTAINER, container(component="cadvisor", networkMode="host"))
    assert len(rec.calls) == 1 and "networkMode 'host'" in rec.messages[0]


# ------------------------------------------------------------------------------------------------
# prod-mistral-requests-gpu


def test_prod_mistral_without_gpu_is_a_violation():
    rec = run_policy(lp.PROD_MISTRAL_REQUESTS_GPU, lp.CONTAINER, container())
    assert len(rec.calls) == 1 and "requests no GPU" in rec.messages[0]


def test_prod_mistral_with_a_zero_count_gpu_request_is_a_violation():
    props = container(deviceRequests=[{"driver": "nvidia", "capabilities": ["gpu"], "count": 0}])
    assert len(run_policy(lp.PROD_MISTRAL_REQUESTS_GPU, lp.CONTAINER, props).calls) == 1


def test_prod_mistral_with_a_non_gpu_device_request_is_a_violation():
    props = container(deviceRequests=[{"driver": "nvidia", "capabilities": ["utility"], "count": -1}])
    assert len(run_policy(lp.PROD_MISTRAL_REQUESTS_GPU, lp.CONTAINER, props).calls) == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"deviceRequests": [{"driver": "nvidia", "capabilities": ["gpu"], "count": -1}]},
        {"deviceRequests": [{"driver": "nvidia", "capabilities": ["compute", "GPU"], "deviceIds": ["0", "1"]}]},
        {"deviceRequests": [{"driver": "cdi", "deviceIds": ["nvidia.com/gpu=all"]}]},
        {"gpus": "all"},
    ],
)
def test_prod_mistral_with_a_gpu_request_passes(extra):
    assert run_policy(lp.PROD_MISTRAL_REQUESTS_GPU, lp.CONTAINER, container(**extra)).calls == []


def test_gpu_rule_applies_only_to_prod_mistral():
    assert run_policy(lp.PROD_MISTRAL_REQUESTS_GPU, lp.CONTAINER, container(env="dev")).calls == []
    assert run_policy(lp.PROD_MISTRAL_REQUESTS_GPU, lp.CONTAINER, container(component="prometheus")).calls == []


# ------------------------------------------------------------------------------------------------
# contact-point-secrets

CONTACT_POINT = {
    "name": "llmstack-prod",
    "slacks": [{"url": "https://hooks.slack.invalid/services/T/B/X", "recipient": "#llm-inference"}],
    "webhooks": [{"url": "https://alerts.invalid/hook", "basicAuthUser": "am", "basicAuthPassword": "pw"}],
    "pagerduties": [{"integrationKey": "0123456789abcdef0123456789abcdef"}],
    "emails": [{"addresses": ["llm-oncall@example.com"]}],
}


def with_secrets(cp):
    out = {k: v for k, v in cp.items()}
    for block, fields in lp.SENSITIVE_SETTINGS.items():
        if block in out:
            out[block] = [
                {k: (lp.SecretStr(v) if k in fields else v) for k, v in entry.items()} for entry in out[block]
            ]
    return out


def test_plaintext_contact_point_settings_are_violations(secret_markers):
    rec = run_policy(lp.CONTACT_POINT_SECRETS, lp.CONTACT_POINT, CONTACT_POINT)
    paths = sorted(m.split(" ", 1)[0] for m in rec.messages)
    assert paths == ["pagerduties[0].integrationKey", "slacks[0].url", "webhooks[0].basicAuthPassword", "webhooks[0].url"]
    # the message never echoes the secret value
    assert not any("hooks.slack.invalid" in m or "0123456789abcdef" in m for m in rec.messages)


def test_secret_contact_point_settings_pass(secret_markers):
    assert run_policy(lp.CONTACT_POINT_SECRETS, lp.CONTACT_POINT, with_secrets(CONTACT_POINT)).calls == []


def test_email_contact_point_has_nothing_secret(secret_markers):
    props = {"name": "mail", "emails": [{"addresses": ["a@example.com"], "subject": "x"}]}
    assert run_policy(lp.CONTACT_POINT_SECRETS, lp.CONTACT_POINT, props).calls == []


def test_without_markers_the_check_falls_back_to_additional_secret_outputs(no_secret_markers):
    rec = run_policy(lp.CONTACT_POINT_SECRETS, lp.CONTACT_POINT, CONTACT_POINT, aso=["slacks"])
    blocks = sorted({m.split("[", 1)[0] for m in rec.messages})
    assert blocks == ["pagerduties", "webhooks"]
    assert all("additional_secret_outputs" in m for m in rec.messages)
    ok = run_policy(lp.CONTACT_POINT_SECRETS, lp.CONTACT_POINT, CONTACT_POINT, aso=["slacks", "webhooks", "pagerduties"])
    assert ok.calls == []


# ------------------------------------------------------------------------------------------------
# data-volumes-retained


def volume(env="prod", data="true"):
    return {"name": "llmstack-prod-prometheus-data", "labels": labels(**{lp.LABEL_ENV: env, lp.LABEL_COMPONENT: "prometheus", lp.LABEL_DATA: data})}


def test_unprotected_prod_data_volume_is_a_violation():
    rec = run_policy(lp.DATA_VOLUMES_RETAINED, lp.VOLUME, volume())
    assert len(rec.calls) == 1 and "protect=True" in rec.messages[0]


def test_protected_prod_data_volume_passes():
    assert run_policy(lp.DATA_VOLUMES_RETAINED, lp.VOLUME, volume(), protect=True).calls == []


def test_dev_and_non_data_volumes_pass():
    assert run_policy(lp.DATA_VOLUMES_RETAINED, lp.VOLUME, volume(env="dev")).calls == []
    assert run_policy(lp.DATA_VOLUMES_RETAINED, lp.VOLUME, volume(data="false")).calls == []


def test_unlabelled_data_volume_on_the_prod_stack_is_a_violation(monkeypatch):
    monkeypatch.setenv("PULUMI_STACK", "acme/llmstack/prod")
    props = {"name": "v", "labels": labels(**{lp.LABEL_DATA: "true"})}
    assert len(run_policy(lp.DATA_VOLUMES_RETAINED, lp.VOLUME, props).calls) == 1


# ------------------------------------------------------------------------------------------------
# Through pulumi-policy's analyzer servicer (the CLI's path), with engine-shaped requests


def test_pulumi_policy_hands_policies_unwrapped_secrets(no_secret_markers):
    """The fact the marker shim exists for: Analyze drops secret markers before policies run."""
    seen = []

    def spy(args, report_violation):
        seen.append(args.props["slacks"][0]["url"])

    servicer = _PolicyAnalyzerServicer(
        "spy", "0.0.1", [ResourceValidationPolicy(name="spy", description="spy", validate=spy)], EnforcementLevel.MANDATORY
    )
    analyze(servicer, lp.CONTACT_POINT, {"name": "cp", "slacks": [{"url": secret("https://hooks.invalid/x")}]})
    assert seen == ["https://hooks.invalid/x"] and not isinstance(seen[0], lp.SecretStr)


def test_servicer_reports_a_plaintext_slack_url_as_mandatory(servicer, secret_markers):
    diags = analyze(
        servicer,
        lp.CONTACT_POINT,
        {"name": "cp", "slacks": [{"url": "https://hooks.invalid/x", "token": secret("xoxb-1")}]},
    )
    assert [d.policyName for d in diags] == ["contact-point-secrets"]
    assert diags[0].enforcementLevel == analyzer_pb2.MANDATORY
    assert "slacks[0].url is plaintext" in diags[0].message
    assert diags[0].policyPackName == "llmstack-policies"


def test_servicer_accepts_secret_settings(servicer, secret_markers):
    props = {
        "name": "cp",
        "slacks": [{"url": secret("https://hooks.invalid/x")}],
        # a whole block passed as one secret counts too
        "webhooks": secret([{"url": "https://alerts.invalid", "basicAuthPassword": "pw"}]),
        "pagerduties": [{"integrationKey": secret("k")}],
    }
    assert analyze(servicer, lp.CONTACT_POINT, props) == []


def test_servicer_without_markers_uses_additional_secret_outputs(servicer, no_secret_markers):
    props = {"name": "cp", "slacks": [{"url": secret("https://hooks.invalid/x")}]}
    assert [d.policyName for d in analyze(servicer, lp.CONTACT_POINT, props)] == ["contact-point-secrets"]
    assert analyze(servicer, lp.CONTACT_POINT, props, aso=["slacks"]) == []


def test_servicer_prod_mistral_container(servicer):
    bad = container(image=UNKNOWN_STRING, ports=[{"internal": 1234, "external": 1234}])
    names = sorted(d.policyName for d in analyze(servicer, lp.CONTAINER, bad))
    # the unknown image (RemoteImage.image_id during preview) is left for `pulumi up`, not guessed
    assert names == ["no-public-bind-in-prod", "prod-mistral-requests-gpu"]

    good = container(
        image=SHA,
        ports=[{"internal": 1234, "external": 1234, "ip": "127.0.0.1"}],
        deviceRequests=[{"driver": "nvidia", "capabilities": ["gpu"], "count": -1}],
    )
    assert analyze(servicer, lp.CONTAINER, good) == []


def test_servicer_passes_policy_config_to_no_public_bind(servicer):
    grafana = container(component="grafana", image="grafana/grafana:12.2.1", ports=[{"internal": 3000, "external": 3000}])
    assert [d.policyName for d in analyze(servicer, lp.CONTAINER, grafana)] == ["no-public-bind-in-prod"]
    config = analyzer_pb2.PolicyConfig(enforcementLevel=analyzer_pb2.MANDATORY)
    config.properties.update({lp.CONFIG_ALLOW_PUBLIC_BIND: ["grafana"]})
    servicer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={"no-public-bind-in-prod": config}), None)
    assert analyze(servicer, lp.CONTAINER, grafana) == []


def test_servicer_sees_protect_on_volumes(servicer):
    assert [d.policyName for d in analyze(servicer, lp.VOLUME, volume())] == ["data-volumes-retained"]
    assert analyze(servicer, lp.VOLUME, volume(), protect=True) == []


def test_servicer_latest_remote_image(servicer):
    diags = analyze(servicer, lp.REMOTE_IMAGE, {"name": "grafana/grafana:latest"})
    assert [d.policyName for d in diags] == ["pinned-images"]


def test_analyzer_info_lists_every_policy_as_mandatory(servicer):
    info = servicer.GetAnalyzerInfo(None, None)
    assert info.name == "llmstack-policies"
    assert {p.name: p.enforcementLevel for p in info.policies} == {
        name: analyzer_pb2.MANDATORY
        for name in (
            "pinned-images",
            "no-public-bind-in-prod",
            "prod-mistral-requests-gpu",
            "contact-point-secrets",
            "data-volumes-retained",
        )
    }
    schema = next(p for p in info.policies if p.name == "no-public-bind-in-prod").configSchema
    assert json_format.MessageToDict(schema.properties)[lp.CONFIG_ALLOW_PUBLIC_BIND]["type"] == "array"


# ------------------------------------------------------------------------------------------------
# The pack's entry point and metadata


def test_main_builds_the_mandatory_pack(monkeypatch, no_secret_markers):
    built = {}

    class FakePack:  # the real PolicyPack starts a gRPC server and blocks
        def __init__(self, **kwargs):
            built.update(kwargs)

    monkeypatch.setattr(pulumi_policy, "PolicyPack", FakePack)
    try:
        runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="__main__")
        assert built["name"] == "llmstack-policies"
        assert built["enforcement_level"] == EnforcementLevel.MANDATORY
        assert [p.name for p in built["policies"]] == [p.name for p in lp.POLICIES]
        assert lp.secret_markers_active()
    finally:
        lp.uninstall_secret_markers()


def test_policy_pack_files():
    meta = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert meta["runtime"]["name"] == "python"
    assert "name" not in meta  # PulumiPolicy.yaml has no name field; the name is in __main__.py
    pins = (POLICY_DIR / "requirements.txt").read_text().split()
    assert pins == ["pulumi-policy==1.21.0", "pulumi==3.272.0"]
    assert pulumi_policy.version.VERSION == lp.MARKERS_VERIFIED_VERSION == "1.21.0"
