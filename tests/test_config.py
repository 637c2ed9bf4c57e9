"""Bad config fails up front with one clear message per key, and nothing is registered."""

import dataclasses
import pytest
import pulumi
import yaml

from llmstack import config as cfgmod
from tools import render as render_tool
from tools.stacks import stack_config
from tests.harness import Recorder, run_stack

BAD_CONFIGS = [
    # (stack, overrides, expected fragment of the message)
    ("dev", {"mistralImageFlavour": "rocm"}, "mistralImageFlavour: got 'rocm'; allowed values: cpu, cuda"),
    ("dev", {"mistralIsq": "q9k"}, "mistralIsq: got 'q9k'; allowed values: none, 2, 3"),
    ("dev", {"mistralPagedAttn": "maybe"}, "mistralPagedAttn: got 'maybe'; allowed values: auto, on, off"),
    ("dev", {"mistralPort": "0"}, "mistralPort: got 0; expected a whole number from 1 to 65535"),
    ("dev", {"mistralPort": "http"}, "mistralPort: got 'http'; expected a whole number from 1 to 65535"),
    ("dev", {"mistralPublishPort": "70000"}, "mistralPublishPort: got 70000; expected a whole number from 1 to 65535"),
    ("dev", {"mistralMaxSeqs": "-4"}, "mistralMaxSeqs: got -4; expected a whole number from 1 to 4096"),
    ("dev", {"mistralModelId": None}, "mistralModelId: is required"),
    ("dev", {"mistralVersion": "latest"}, "mistralVersion: got 'latest'; expected a release version X.Y.Z"),
    ("dev", {"mistralVersion": "0.8.4"}, "mistralVersion: got '0.8.4'; expected 0.9.2 or newer"),
    ("prod", {"mistralCudaVariant": "cuda128-sm75"}, "mistralCudaVariant: got 'cuda128-sm75'; expected cudaNNN-smCC"),
    ("dev", {"mistralGpuDeviceIds": ["0"]}, "mistralGpuDeviceIds: is only valid with mistralImageFlavour=cuda"),
    ("dev", {"mistralPublishAddress": "localhost"}, "mistralPublishAddress: got 'localhost'; expected an IPv4 address"),
    ("dev", {"scrapeInterval": "15"}, "scrapeInterval: got '15'; expected a positive Prometheus duration"),
    ("dev", {"scrapeInterval": "0s"}, "scrapeInterval: got '0s'; expected a positive Prometheus duration"),
    ("dev", {"evaluationInterval": "1 minute"}, "evaluationInterval: got '1 minute'; expected a positive Prometheus duration"),
    ("dev", {"scrapeTimeout": "30s"}, "scrapeTimeout: got '30s'; must not exceed scrapeInterval (15s)"),
    ("dev", {"prometheusRetentionSize": "10G"}, "prometheusRetentionSize: got '10G'; expected a positive size"),
    ("dev", {"prometheusImage": "prom/prometheus:latest"}, "prometheusImage: got 'prom/prometheus:latest'; expected an image pinned"),
    ("dev", {"grafanaImage": "grafana/grafana"}, "grafanaImage: got 'grafana/grafana'; expected an image pinned"),
    ("dev", {"alertLatencyP95WarningSeconds": "60"}, "alertLatencyP95WarningSeconds: got 60; must be lower than alertLatencyP95CriticalSeconds (30)"),
    ("dev", {"alertErrorRatioCriticalPercent": "150"}, "alertErrorRatioCriticalPercent: got 150; expected a whole number from 1 to 100"),
    ("dev", {"alertQueueSaturationFor": "5 min"}, "alertQueueSaturationFor: got '5 min'; expected a positive Prometheus duration"),
    ("dev", {"ollamaTargets": ["ollama:11434"]}, "ollamaTargets: item 'ollama:11434': expected EXPORTER@HOST:PORT[/PATH] with EXPORTER one of: norskhelsenett, http"),
    ("dev", {"ollamaTargets": ["prom@ollama:11434"]}, "with EXPORTER one of: norskhelsenett, http"),
    ("dev", {"ollamaTargets": ["http@ollama:99999"]}, "ollamaTargets: item 'http@ollama:99999': expected HOST:PORT with a port from 1 to 65535"),
    ("dev", {"ollamaTargets": "not-a-list"}, "ollamaTargets: got 'not-a-list'; expected a list of strings"),
    ("dev", {"alertEmailAddresses": []}, "set at least one contact point"),
    ("dev", {"alertEmailAddresses": ["oncall"]}, "alertEmailAddresses: item 'oncall': expected an e-mail address"),
    ("dev", {"grafanaUrl": "grafana.example.com"}, "grafanaUrl: got 'grafana.example.com'; expected an http:// or https:// URL"),
    ("dev", {"grafanaUrl": "https://grafana.example.com"}, "grafanaAuth: is required when grafanaUrl is set"),
    ("dev", {"dcgmExporterEnabled": "true"}, "dcgmExporterEnabled: is true but mistralImageFlavour is cpu"),
    ("dev", {"dcgmExporterEnabled": "yes"}, "dcgmExporterEnabled: got 'yes'; allowed values: auto, true, false"),
    ("dev", {"retainDataOnDelete": "1"}, "retainDataOnDelete: got '1'; allowed values: auto, true, false"),
]


@pytest.mark.parametrize("env,overrides,expected", BAD_CONFIGS, ids=[f"{o}" for _, o, _ in BAD_CONFIGS])
def test_bad_config_fails_before_any_resource(env, overrides, expected, monkeypatch):
    recorders = []
    original_init = Recorder.__init__

    def tracking_init(self, *a, **kw):
        original_init(self, *a, **kw)
        recorders.append(self)

    monkeypatch.setattr(Recorder, "__init__", tracking_init)
    with pytest.raises(pulumi.RunError) as err:
        run_stack(env, overrides)
    message = str(err.value)
    assert expected in message
    assert message.startswith("invalid stack configuration:")
    assert "Traceback" not in message
    assert recorders and recorders[0].resources == [], "a resource was registered despite invalid config"


@pytest.mark.parametrize("key", ["hfToken", "alertSlackUrl", "alertPagerdutyKey", "alertWebhookUrl", "grafanaAuth"])
def test_credentials_in_plaintext_are_refused(key):
    with pytest.raises(pulumi.RunError) as err:
        run_stack("dev", plaintext={key: "s3cr3t-value"})
    assert f"{key}: is stored in plaintext" in str(err.value)
    assert "s3cr3t-value" not in str(err.value)


def test_all_problems_are_reported_at_once():
    with pytest.raises(pulumi.RunError) as err:
        run_stack("dev", {"mistralPort": "0", "mistralIsq": "bogus", "scrapeInterval": "x"})
    for key in ("mistralPort", "mistralIsq", "scrapeInterval"):
        assert f"  - {key}:" in str(err.value)


def test_every_knob_is_declared_in_pulumi_yaml_with_type_default_and_description():
    project = yaml.safe_load(render_tool.project_yaml())
    schema = project["config"]
    knobs = {k.key: k for k in cfgmod.knobs()}
    assert set(schema) == set(knobs)
    for key, entry in schema.items():
        assert entry["description"] == knobs[key].description
        assert entry["type"] == knobs[key].kind.schema_type
        if knobs[key].required:
            assert "default" not in entry  # required: pulumi refuses to run without it
        else:
            assert entry["default"] == knobs[key].default


def test_every_knob_reaches_the_typed_config():
    """A knob the loader reads but no field holds would be silently dropped."""
    cfg = cfgmod.load_defaults()
    fields = []

    def walk(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if "knob" in f.metadata:
                fields.append(f.metadata["knob"].key)
            elif dataclasses.is_dataclass(value):
                walk(value)

    walk(cfg)
    assert sorted(fields) == sorted(k.key for k in cfgmod.knobs())


def test_committed_stack_files_are_valid():
    assert stack_config("dev").mistral.image_flavour == "cpu"
    assert stack_config("prod").mistral.uses_gpu
    assert stack_config("prod").retain_data_on_delete
