"""Delivery through Alertmanager: the rendered alertmanager.yml passes amtool, routes every severity
and alert family where the routing definition says, holds no secret, and the stack runs it (mocks)."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from llmstack import alertmanager as am
from llmstack import alerts, prometheus, routing, topology
from llmstack.config import ConfigError, DictSource, load
from tests.harness import find_plaintext, run_stack
from tools.stacks import ROOT

AMTOOL = "amtool"
SECRETS = {
    "alertSlackUrl": "https://hooks.slack.com/services/T0/B0/slack-secret-value",
    "alertPagerdutyKey": "pd-routing-key-secret-value",
    "alertSmtpAuthPassword": "smtp-password-secret-value",
    "alertHeartbeatToken": "heartbeat-token-secret-value",
    "alertWebhookUrl": "https://hooks.example.com/webhook?token=webhook-secret-value",
}
BASE = {
    "mistralModelId": "Qwen/Qwen3-0.6B",
    "alertEmailAddresses": '["oncall@example.com"]',
    "alertSmtpSmarthost": "smtp.example.com:587",
    "alertSmtpFrom": "llm-alerts@example.com",
    "alertSmtpAuthUser": "llm-alerts",
    "alertHeartbeatUrl": "https://heartbeat.example.com/ping/llmstack-dev",
}
# name -> (extra values, secret keys)
VARIANTS = {
    "alertmanager-all": ({"alertDelivery": "alertmanager"}, ("alertSlackUrl", "alertPagerdutyKey", "alertSmtpAuthPassword", "alertHeartbeatToken")),
    "alertmanager-email-only": ({"alertDelivery": "alertmanager", "alertHeartbeatUrl": ""}, ("alertSmtpAuthPassword",)),
    "both": ({"alertDelivery": "both"}, tuple(SECRETS)),
    "both-pager-only": ({"alertDelivery": "both", "alertmanagerChannels": '["pagerduty"]'}, tuple(SECRETS)),
}


def config(variant: str):
    extra, secret_keys = VARIANTS[variant]
    values = {**BASE, **extra, **{k: SECRETS[k] for k in secret_keys}}
    return load(DictSource(values, secret_keys=frozenset(secret_keys)), "dev")


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def rendered(request, tmp_path_factory):
    cfg = config(request.param)
    path = tmp_path_factory.mktemp(request.param) / "alertmanager.yml"
    path.write_text(am.render_alertmanager_yml(cfg, alerts.alert_rules(cfg)))
    return request.param, cfg, path


def test_amtool_accepts_the_rendered_config(rendered):
    _, _, path = rendered
    done = subprocess.run([AMTOOL, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_amtool_check_can_fail(tmp_path):
    broken = tmp_path / "alertmanager.yml"
    broken.write_text("route:\n  receiver: nobody\nreceivers: []\n")
    assert subprocess.run([AMTOOL, "check-config", str(broken)], capture_output=True, timeout=60).returncode != 0


def test_no_secret_value_is_in_the_rendered_file(rendered):
    _, _, path = rendered
    text = path.read_text()
    for value in SECRETS.values():
        assert value not in text
    assert "_file:" in text  # the credentials are file references


def receivers_for(path, labels: dict) -> list[str]:
    args = [f"{k}={v}" for k, v in sorted(labels.items())]
    done = subprocess.run([AMTOOL, "config", "routes", "test", f"--config.file={path}", *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.strip().split(",")


def expected_receivers(cfg, alert) -> list[str]:
    plan = am.plan(cfg, alerts.alert_rules(cfg))
    names = {r.key: r.name for r in plan.receivers}
    work = names.get("work", names.get("page"))
    page = names.get("page", work)
    if alert.name == alerts.WATCHDOG:
        return [names.get("heartbeat", work)]
    if alert.severity == "critical":
        return [page] if page == work else [page, work]
    return [work]


def test_every_severity_and_alert_family_reaches_its_receivers(rendered):
    """amtool's own routing of each alert, against what the routing definition says."""
    _, cfg, path = rendered
    for alert in alerts.alert_rules(cfg):
        labels = {"alertname": alert.name, **alert.labels, "env": "dev", "instance": "mistral-inference"}
        assert receivers_for(path, labels) == expected_receivers(cfg, alert), alert.name


def test_the_routes_test_can_fail(rendered):
    _, cfg, path = rendered
    names = [r.name for r in am.plan(cfg, alerts.alert_rules(cfg)).receivers]
    assert receivers_for(path, {"alertname": "LLMTargetDown", "severity": "critical"}) != ["nobody"]
    assert names  # the plan has receivers to compare against


def test_a_critical_inhibits_the_warning_of_its_family_on_the_same_thing_only():
    cfg = config("alertmanager-all")
    plan = am.plan(cfg, alerts.alert_rules(cfg))
    by_source = {i.source: i for i in plan.inhibitions}
    latency = by_source[(("alertname", "=", "LLMHighRequestLatencyCritical"),)]
    assert latency.target == (("alertname", "=", "LLMHighRequestLatencyWarning"),)
    assert latency.equal == ("engine", "env", "instance", "model")
    gpu = by_source[(("alertname", "=", "LLMGpuMemoryNearFullCritical"),)]
    assert gpu.equal == ("env", "gpu", "UUID")  # one GPU's critical never silences another GPU's warning
    down = by_source[(("alertname", "=", "LLMTargetDown"),)]
    assert down.equal == ("env", "instance")
    assert "LLMQueueSaturated" in down.target[0][2] and "LLMTargetAbsent" not in down.target[0][2]


def test_each_channel_belongs_to_one_path_only():
    for variant in VARIANTS:
        cfg = config(variant)
        owned = {path: set(routing.owned_channels(cfg, path)) for path in routing.paths(cfg)}
        if len(owned) == 2:
            assert not owned[routing.GRAFANA] & owned[routing.ALERTMANAGER], variant
            assert owned[routing.GRAFANA] and owned[routing.ALERTMANAGER], variant


def test_prometheus_sends_to_the_stacks_alertmanager_or_to_existing_ones_with_credentials_from_files():
    own = yaml.safe_load(prometheus.render_prometheus_yml(config("alertmanager-all")))
    assert own["alerting"] == {"alertmanagers": [{"static_configs": [{"targets": [topology.address("alertmanager")]}]}]}
    values = {**BASE, "alertDelivery": "alertmanager", "alertmanagerUrls": '["https://am1.example.com:9093", "https://am2.example.com/am"]',
              "alertmanagerBasicAuthUser": "prom", "alertmanagerBasicAuthPassword": "am-password-secret", "alertHeartbeatUrl": "",
              "alertEmailAddresses": "[]"}
    cfg = load(DictSource(values, secret_keys=frozenset({"alertmanagerBasicAuthPassword"})), "dev")
    text = prometheus.render_prometheus_yml(cfg)
    assert "am-password-secret" not in text
    targets = yaml.safe_load(text)["alerting"]["alertmanagers"]
    assert [t["static_configs"][0]["targets"] for t in targets] == [["am1.example.com:9093"], ["am2.example.com"]]
    assert targets[1]["path_prefix"] == "/am" and all(t["scheme"] == "https" for t in targets)
    assert targets[0]["basic_auth"] == {"username": "prom", "password_file": f"{topology.PROMETHEUS_SECRETS_DIR}/alertmanager-password"}
    assert am.prometheus_secret_files(cfg) == {f"{topology.PROMETHEUS_SECRETS_DIR}/alertmanager-password": "am-password-secret"}
    assert not am.runs_own(cfg)


def test_channels_nothing_delivers_are_refused():
    values = {**BASE, "alertDelivery": "alertmanager", "alertmanagerUrls": '["https://am1.example.com:9093"]', "alertHeartbeatUrl": ""}
    with pytest.raises(ConfigError, match="alertmanagerUrls route by their own config"):
        load(DictSource(values), "dev")


def test_grafana_alone_leaves_prometheus_without_an_alerting_section():
    assert "alerting" not in yaml.safe_load(prometheus.render_prometheus_yml(load(DictSource(dict(BASE, alertHeartbeatUrl="")), "dev")))


def test_the_committed_example_render_shows_file_references_not_values():
    with open(os.path.join(ROOT, "assets", "alertmanager", "example", "alertmanager.yml")) as fh:
        text = fh.read()
    assert "api_url_file: /etc/alertmanager/secrets/slack-api-url" in text
    assert "routing_key_file: /etc/alertmanager/secrets/pagerduty-routing-key" in text


# --- the stack under mocks ---------------------------------------------------------------------------

CONTAINER = "docker:index/container:Container"
STACK = {"alertDelivery": "alertmanager", "alertSmtpSmarthost": "smtp.example.com:587", "alertSmtpFrom": "llm-alerts@example.com",
         "alertHeartbeatUrl": "https://heartbeat.example.com/ping/llmstack-prod"}


@pytest.fixture(scope="module")
def prod():
    return run_stack("prod", overrides=STACK, secrets={"alertSlackUrl": SECRETS["alertSlackUrl"], "alertPagerdutyKey": SECRETS["alertPagerdutyKey"]})


def test_the_stack_runs_a_pinned_alertmanager_with_its_data_on_a_protected_volume(prod):
    image = prod.one("docker:index/remoteImage:RemoteImage", "alertmanager-image").inputs["name"]
    assert image == "prom/alertmanager:v0.25.0"
    volume = prod.one("docker:index/volume:Volume", "alertmanager-data").inputs
    assert volume["name"] == "llmstack-prod-alertmanager-data"
    assert prod.opts("alertmanager-data").protect and prod.opts("alertmanager-data").retain_on_delete
    container = prod.one(CONTAINER, "alertmanager-container").inputs
    assert container["volumes"][0]["containerPath"] == topology.ALERTMANAGER_DATA_PATH
    assert container["ports"] == [{"internal": 9093, "external": 9093, "ip": "127.0.0.1", "protocol": "tcp"}]
    assert "wget" in container["healthcheck"]["tests"][1]
    assert prod.parent_of("alertmanager-container") == "alertmanager"


def test_credentials_reach_the_alertmanager_only_as_secret_files(prod):
    container = prod.one(CONTAINER, "alertmanager-container")
    for value in (SECRETS["alertSlackUrl"], SECRETS["alertPagerdutyKey"]):
        assert not find_plaintext(container.inputs, value)
    assert "uploads" in (prod.opts("alertmanager-container").additional_secret_outputs or [])


def test_grafana_delivers_nothing_when_alertmanager_does(prod):
    assert not [r for r in prod.resources if r.typ.startswith("grafana:alerting/")]


def test_both_paths_share_channels_out_once():
    rec = run_stack("prod", overrides={**STACK, "alertDelivery": "both"}, secrets={k: SECRETS[k] for k in ("alertSlackUrl", "alertPagerdutyKey", "alertWebhookUrl")})
    contact_points = [r for r in rec.resources if r.typ == "grafana:alerting/contactPoint:ContactPoint"]
    grafana_blocks = {block for cp in contact_points for block in cp.inputs if block in ("slacks", "emails", "webhooks", "pagerduties") and cp.inputs[block]}
    assert grafana_blocks == {"webhooks"}  # slack, e-mail and PagerDuty go through Alertmanager
    assert rec.one(CONTAINER, "alertmanager-container")


def test_default_stacks_keep_grafana_delivery_and_no_alertmanager():
    rec = run_stack("dev")
    assert not [r for r in rec.resources if r.name.startswith("alertmanager")]
    assert [r for r in rec.resources if r.typ == "grafana:alerting/notificationPolicy:NotificationPolicy"]
