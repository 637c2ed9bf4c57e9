"""Remote write and the external labels: the rendered prometheus.yml (checked by promtool), the
credential files, the Prometheus Operator's shape, and the stack under Pulumi mocks."""

import json
import os
import re
import subprocess

import pytest
import yaml
from pulumi.runtime import rpc

from llmstack import config as cfgmod
from llmstack import prometheus, remote_write, topology
from tools import render as render_tool
from tools.stacks import ROOT, stack_config
from tests.harness import contains_secret, find_plaintext, run_stack

PASSWORD = "mimir-password-secret-value"
TOKEN = "thanos-token-secret-value"
ENTRIES = [
    {
        "name": "mimir",
        "url": "https://mimir.example.com/api/v1/push",
        "basicAuth": {"username": "llm-team", "passwordKey": "remoteWriteMimirPassword"},
        "queue": {"capacity": 20000, "maxShards": "20", "maxSamplesPerSend": 5000, "maxBackoff": "10s"},
    },
    {"url": "https://thanos-receive.example.com/api/v1/receive", "bearerTokenKey": "remoteWriteThanosToken"},
]
SECRETS = {"remoteWriteMimirPassword": PASSWORD, "remoteWriteThanosToken": TOKEN}
DEFAULT_QUEUE = {
    "capacity": 10000, "max_shards": 50, "min_shards": 1, "max_samples_per_send": 2000,
    "batch_send_deadline": "5s", "min_backoff": "30ms", "max_backoff": "5s",
}


def config(env="dev", entries=ENTRIES, **extra) -> cfgmod.StackConfig:
    values = {"mistralModelId": "Qwen/Qwen3-0.6B", "alertEmailAddresses": '["oncall@example.com"]',
              "prometheusRemoteWrite": json.dumps(entries), **SECRETS, **extra}
    return cfgmod.load(cfgmod.DictSource(values, secret_keys=frozenset(SECRETS)), env)


# --- the config ---------------------------------------------------------------------------------------


def test_entries_are_read_with_their_credentials_and_queue():
    mimir, thanos = config().prometheus.remote_write
    assert (mimir.position, mimir.name, mimir.username, mimir.password_key, mimir.password) == (
        0, "mimir", "llm-team", "remoteWriteMimirPassword", PASSWORD)
    assert (mimir.queue.capacity, mimir.queue.max_shards, mimir.queue.max_samples_per_send, mimir.queue.max_backoff) == (20000, 20, 5000, "10s")
    assert (mimir.queue.min_shards, mimir.queue.min_backoff, mimir.queue.batch_send_deadline) == (1, "30ms", "5s")
    assert (thanos.position, thanos.name, thanos.bearer_token_key, thanos.bearer_token, thanos.password) == (
        1, None, "remoteWriteThanosToken", TOKEN, None)


def test_the_cluster_label_defaults_to_the_stack_and_can_be_set():
    assert stack_config("dev").prometheus.cluster_label == "llmstack-dev"
    assert stack_config("prod").prometheus.cluster_label == "llmstack-prod"
    assert config(prometheusClusterLabel="gpu-eu-1").prometheus.cluster_label == "gpu-eu-1"


def test_a_credential_key_is_a_known_key_only_while_an_entry_names_it():
    values = {"mistralModelId": "Qwen/Qwen3-0.6B", "alertEmailAddresses": '["oncall@example.com"]', **SECRETS}
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.load(cfgmod.DictSource(values, secret_keys=frozenset(SECRETS)), "dev")
    assert "remoteWriteMimirPassword: is not a setting of this stack" in str(err.value)
    assert "remoteWriteThanosToken: is not a setting of this stack" in str(err.value)


def test_a_broken_entry_is_reported_once_not_again_as_unknown_credential_keys():
    entries = [{**ENTRIES[0], "url": "ftp://mimir.example.com"}, ENTRIES[1]]
    with pytest.raises(cfgmod.ConfigError) as err:
        config(entries=entries)
    assert err.value.problems == ["prometheusRemoteWrite[0].url: got 'ftp://mimir.example.com'; expected an http:// or https:// URL"]


def test_no_secret_value_is_ever_quoted_back():
    entries = [{**ENTRIES[0], "queue": {"capacity": 1}}, {**ENTRIES[1], "name": "no spaces"}]
    with pytest.raises(cfgmod.ConfigError) as err:
        config(entries=entries)
    assert PASSWORD not in str(err.value) and TOKEN not in str(err.value)
    assert len(err.value.problems) == 2


# --- prometheus.yml -----------------------------------------------------------------------------------


def test_prometheus_yml_sends_to_each_endpoint_with_credentials_from_files():
    cfg = config()
    text = prometheus.render_prometheus_yml(cfg)
    assert PASSWORD not in text and TOKEN not in text
    doc = yaml.safe_load(text)
    assert doc["global"]["external_labels"] == {"cluster": "llmstack-dev", "env": "dev"}
    assert doc["remote_write"] == [
        {
            "name": "mimir",
            "url": "https://mimir.example.com/api/v1/push",
            "basic_auth": {"username": "llm-team", "password_file": "/etc/prometheus/secrets/remote-write-0-password"},
            "queue_config": {**DEFAULT_QUEUE, "capacity": 20000, "max_shards": 20, "max_samples_per_send": 5000, "max_backoff": "10s"},
        },
        {
            "url": "https://thanos-receive.example.com/api/v1/receive",
            "authorization": {"type": "Bearer", "credentials_file": "/etc/prometheus/secrets/remote-write-1-token"},
            "queue_config": DEFAULT_QUEUE,
        },
    ]
    assert remote_write.secret_files(cfg) == {
        f"{topology.PROMETHEUS_SECRETS_DIR}/remote-write-0-password": PASSWORD,
        f"{topology.PROMETHEUS_SECRETS_DIR}/remote-write-1-token": TOKEN,
    }


def test_without_endpoints_there_is_no_remote_write_but_the_external_labels_stay():
    doc = yaml.safe_load(prometheus.render_prometheus_yml(stack_config("prod")))
    assert "remote_write" not in doc
    assert doc["global"]["external_labels"] == {"cluster": "llmstack-prod", "env": "prod"}
    assert remote_write.secret_files(stack_config("prod")) == {}


def _promtool_check(tmp_path, cfg) -> subprocess.CompletedProcess:
    (tmp_path / "prometheus.yml").write_text(prometheus.render_prometheus_yml(cfg))
    (tmp_path / topology.PROMETHEUS_RULES_SUBDIR).mkdir(exist_ok=True)
    for name, text in prometheus.render_rule_files(cfg).items():
        (tmp_path / topology.PROMETHEUS_RULES_SUBDIR / name).write_text(text)
    return subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=120)


def test_promtool_accepts_the_rendered_remote_write(tmp_path):
    result = _promtool_check(tmp_path, config(prometheusClusterLabel="gpu-eu-1"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_can_fail(tmp_path):
    cfg = config()
    (tmp_path / "prometheus.yml").write_text(prometheus.render_prometheus_yml(cfg).replace("credentials_file:", "credentials_fil:"))
    result = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0


def test_the_committed_example_shows_file_references_not_values():
    with open(os.path.join(ROOT, "assets/prometheus/remote-write-example/prometheus.yml")) as fh:
        text = fh.read()
    doc = yaml.safe_load(text)
    assert [rw["name"] for rw in doc["remote_write"]] == ["mimir", "thanos"]
    assert "password_file: /etc/prometheus/secrets/remote-write-0-password" in text
    assert "credentials_file: /etc/prometheus/secrets/remote-write-1-token" in text
    placeholder = "set-with-pulumi-config-secret"
    assert placeholder not in text
    assert remote_write.secret_files(render_tool.remote_write_config())  # the example does carry credentials


# --- the Prometheus Operator's shape ------------------------------------------------------------------


def test_operator_remote_write_reads_every_credential_from_the_secret():
    cfg = config()
    spec = remote_write.operator_remote_write(cfg, "llmstack-remote-write")
    assert spec == [
        {
            "name": "mimir",
            "url": "https://mimir.example.com/api/v1/push",
            "basicAuth": {
                "username": {"name": "llmstack-remote-write", "key": "remote-write-0-username"},
                "password": {"name": "llmstack-remote-write", "key": "remote-write-0-password"},
            },
            "queueConfig": {
                "capacity": 20000, "maxShards": 20, "minShards": 1, "maxSamplesPerSend": 5000,
                "batchSendDeadline": "5s", "minBackoff": "30ms", "maxBackoff": "10s",
            },
        },
        {
            "url": "https://thanos-receive.example.com/api/v1/receive",
            "authorization": {"type": "Bearer", "credentials": {"name": "llmstack-remote-write", "key": "remote-write-1-token"}},
            "queueConfig": {
                "capacity": 10000, "maxShards": 50, "minShards": 1, "maxSamplesPerSend": 2000,
                "batchSendDeadline": "5s", "minBackoff": "30ms", "maxBackoff": "5s",
            },
        },
    ]
    text = json.dumps(spec)
    assert PASSWORD not in text and TOKEN not in text


def test_operator_secret_data_holds_every_key_the_spec_refers_to():
    cfg = config()
    data = remote_write.operator_secret_data(cfg)
    assert data == {"remote-write-0-username": "llm-team", "remote-write-0-password": PASSWORD, "remote-write-1-token": TOKEN}
    referred = set(re.findall(r'"key": "([^"]+)"', json.dumps(remote_write.operator_remote_write(cfg, "s"))))
    assert referred == set(data)
    # Kubernetes Secret data keys: alphanumerics, '-', '_' and '.'.
    assert all(re.fullmatch(r"[-._a-zA-Z0-9]+", key) for key in data)


def test_operator_queue_config_carries_the_same_settings_as_prometheus_yml():
    cfg = config()
    camel = {"max_shards": "maxShards", "min_shards": "minShards", "max_samples_per_send": "maxSamplesPerSend",
             "batch_send_deadline": "batchSendDeadline", "min_backoff": "minBackoff", "max_backoff": "maxBackoff", "capacity": "capacity"}
    for ours, theirs in zip(remote_write.prometheus_remote_write(cfg), remote_write.operator_remote_write(cfg, "s")):
        assert {camel[k]: v for k, v in ours["queue_config"].items()} == theirs["queueConfig"]
        assert ours["url"] == theirs["url"] and ours.get("name") == theirs.get("name")


# --- the stack under Pulumi mocks ---------------------------------------------------------------------

CONTAINER = "docker:index/container:Container"


@pytest.fixture(scope="module")
def prod():
    return run_stack("prod", overrides={"prometheusRemoteWrite": json.dumps(ENTRIES), "prometheusClusterLabel": "gpu-eu-1"}, secrets=SECRETS)


def test_credentials_reach_prometheus_only_as_secret_uploads(prod):
    container = prod.one(CONTAINER, "prometheus-container")
    for value in (PASSWORD, TOKEN):
        assert not any(find_plaintext(r.inputs, value) for r in prod.resources), f"{value} in plaintext"
        assert contains_secret(container.inputs["uploads"], value)
    assert "uploads" in (prod.opts("prometheus-container").additional_secret_outputs or [])


def test_the_uploaded_config_sends_to_the_endpoints(prod):
    uploads = prod.one(CONTAINER, "prometheus-container").inputs["uploads"]
    # A list holding a secret is sent as one secret value: unwrap it to read the files.
    uploads = rpc.unwrap_rpc_secret(uploads) if rpc.is_rpc_secret(uploads) else uploads
    config_upload = next(u for u in uploads if u["file"] == topology.PROMETHEUS_CONFIG_FILE)
    doc = yaml.safe_load(config_upload["content"])
    assert [rw["url"] for rw in doc["remote_write"]] == [e["url"] for e in ENTRIES]
    assert doc["global"]["external_labels"] == {"cluster": "gpu-eu-1", "env": "prod"}
    files = {u["file"] for u in uploads}
    assert {"/etc/prometheus/secrets/remote-write-0-password", "/etc/prometheus/secrets/remote-write-1-token"} <= files


def test_the_mocks_check_can_see_a_plaintext_secret(prod):
    # The check above would pass vacuously if the value never reached the recorded inputs at all.
    assert find_plaintext({"content": PASSWORD}, PASSWORD)
