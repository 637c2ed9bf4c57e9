"""Grafana under Pulumi mocks, dev and prod: the server, provider, datasource, folder, dashboards,
contact points, routing and the forwarding rule group."""

import json
import os
import re

import pytest
from pulumi.runtime import rpc

from llmstack import dashboards, grafana_alerting, prometheus
from tools.stacks import ROOT, stack_config
from llmstack.alerts import alert_rules
from tests.harness import contains_secret, find_plaintext, run_stack

CONTAINER = "docker:index/container:Container"
VOLUME = "docker:index/volume:Volume"
IMAGE = "docker:index/remoteImage:RemoteImage"
PASSWORD = "random:index/randomPassword:RandomPassword"
PROVIDER = "pulumi:providers:grafana"
DATASOURCE = "grafana:oss/dataSource:DataSource"
FOLDER = "grafana:oss/folder:Folder"
DASHBOARD = "grafana:oss/dashboard:Dashboard"
CONTACT_POINT = "grafana:alerting/contactPoint:ContactPoint"
MUTE_TIMING = "grafana:alerting/muteTiming:MuteTiming"
POLICY = "grafana:alerting/notificationPolicy:NotificationPolicy"
RULE_GROUP = "grafana:alerting/ruleGroup:RuleGroup"
GRAFANA_TYPES = (DATASOURCE, FOLDER, DASHBOARD, CONTACT_POINT, MUTE_TIMING, POLICY, RULE_GROUP)

MOCK_PASSWORD = "mock-generated-password"  # what tests/harness.py answers for RandomPassword.result
SLACK = "https://hooks.slack.com/services/T000/B000/slacksecret"
PAGERDUTY = "pd-integration-key-0123456789"
WEBHOOK = "https://hooks.example.com/llm-alerts?token=webhooksecret"
WEBHOOK_PASSWORD = "webhook-basic-auth-password"
ALL_CHANNELS = {"alertSlackUrl": SLACK, "alertPagerdutyKey": PAGERDUTY, "alertWebhookUrl": WEBHOOK, "alertWebhookPassword": WEBHOOK_PASSWORD}


@pytest.fixture(scope="module")
def dev():
    return run_stack("dev")


@pytest.fixture(scope="module")
def prod():
    return run_stack("prod", secrets={"alertSlackUrl": SLACK, "alertPagerdutyKey": PAGERDUTY})


@pytest.fixture(scope="module")
def everything():
    return run_stack("prod", overrides={"alertWebhookUser": "alertbot"}, secrets=ALL_CHANNELS)


@pytest.fixture(scope="module")
def existing():
    return run_stack("dev", overrides={"grafanaUrl": "https://grafana.example.com"}, secrets={"grafanaAuth": "glsa_existingtoken_123"})


def revealed(value):
    """`value` with every secret unwrapped, for asserting on the structure around the secrets."""
    if rpc.is_rpc_secret(value):
        return revealed(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: revealed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revealed(v) for v in value]
    return value


def grafana_resources(rec):
    return [r for r in rec.resources if r.typ in GRAFANA_TYPES]


# --- what exists, and under which parent and provider ---------------------------------------------

@pytest.mark.parametrize("env", ["dev", "prod"])
def test_every_grafana_resource_exists_with_its_parent_and_the_explicit_provider(env, request):
    rec = request.getfixturevalue(env)
    provider = rec.one(PROVIDER, "grafana-provider")
    assert rec.parent_of("grafana-provider") == "grafana"
    assert rec.options["grafana"][0] == "llmstack:index:Grafana"
    assert rec.options["grafana-alerting"][0] == "llmstack:index:GrafanaAlerting"
    assert rec.parent_of("grafana-alerting") == "grafana"

    expected_parent = {
        "grafana-datasource": "grafana",
        "grafana-folder": "grafana",
        "grafana-dashboard-mistral-inference": "grafana",
        "grafana-dashboard-mistral-vs-ollama": "grafana",
        "grafana-dashboard-llm-fleet": "grafana",
        "grafana-alerting-notification-policy": "grafana-alerting",
        "grafana-alerting-rule-group": "grafana-alerting",
        "grafana-alerting-contact-point-work": "grafana-alerting",
    }
    if env == "prod":
        expected_parent["grafana-alerting-contact-point-page"] = "grafana-alerting"
    names = {r.name for r in grafana_resources(rec)}
    assert set(expected_parent) <= names
    for r in grafana_resources(rec):
        assert rec.parent_of(r.name) == expected_parent.get(r.name, "grafana-alerting"), r.name
        # The explicit provider, never the default one (which would talk to GRAFANA_URL, or nowhere).
        assert r.provider and "::grafana-provider::" in r.provider, r.name
        assert rec.opts(r.name).provider is not None and rec.opts(r.name).provider._name == "grafana-provider"
    assert provider.inputs["url"] == "http://127.0.0.1:3000"


def test_provisioned_grafana_server(dev, prod):
    for rec, env in ((dev, "dev"), (prod, "prod")):
        assert rec.one(IMAGE, "grafana-image").inputs["name"] == "grafana/grafana:12.2.1"
        c = rec.one(CONTAINER, "grafana-container").inputs
        assert c["name"] == f"llmstack-{env}-grafana"
        assert c["image"].startswith("sha256:")
        assert c["ports"] == [{"internal": 3000, "external": 3000, "ip": "127.0.0.1", "protocol": "tcp"}]
        network = rec.one("docker:index/network:Network").inputs["name"]
        assert c["networksAdvanced"] == [{"name": network, "aliases": ["grafana"]}] and c["networkMode"] == "bridge"
        assert c["healthcheck"]["tests"] == ["CMD-SHELL", "curl -fsS http://127.0.0.1:3000/api/health >/dev/null"]
        assert c["wait"] is True
        assert c["volumes"] == [{"volumeName": f"llmstack-{env}-grafana-data", "containerPath": "/var/lib/grafana"}]
        assert {"label": "llmstack.component", "value": "grafana"} in c["labels"]
        assert c["logDriver"] == "json-file" and c["restart"] == "unless-stopped"
        for parent_child in ("grafana-image", "grafana-data", "grafana-admin-password", "grafana-container"):
            assert rec.parent_of(parent_child) == "grafana"
        assert "envs" in rec.opts("grafana-container").additional_secret_outputs
        # The provider is registered only once the (healthy) container exists.
        assert [d._name for d in rec.opts("grafana-provider").depends_on] == ["grafana-container"]


def test_anonymous_access_and_sign_up_are_off(dev):
    envs = dev.one(CONTAINER, "grafana-container").inputs["envs"]
    assert contains_secret(envs, "GF_AUTH_ANONYMOUS_ENABLED=false")
    assert contains_secret(envs, "GF_USERS_ALLOW_SIGN_UP=false")
    assert contains_secret(envs, "GF_SECURITY_ADMIN_USER=admin")


def test_grafana_data_volume_is_retained_and_protected_in_prod_only(dev, prod):
    assert prod.opts("grafana-data").retain_on_delete is True and prod.opts("grafana-data").protect is True
    assert not dev.opts("grafana-data").retain_on_delete and not dev.opts("grafana-data").protect
    assert {"label": "llmstack.data", "value": "true"} in prod.one(VOLUME, "grafana-data").inputs["labels"]


def test_datasource_points_at_the_stacks_prometheus(dev):
    ds = dev.one(DATASOURCE).inputs
    assert ds["uid"] == dashboards.DATASOURCE_UID and ds["type"] == "prometheus"
    assert ds["url"] == "http://prometheus:9090"
    assert ds["isDefault"] is True
    assert json.loads(ds["jsonDataEncoded"])["timeInterval"] == "15s"


def test_folder_and_dashboards_equal_the_committed_assets(dev):
    folder = dev.one(FOLDER).inputs
    assert folder["uid"] == dashboards.FOLDER_UID
    for slug in ("mistral-inference", "mistral-vs-ollama"):
        board = dev.one(DASHBOARD, f"grafana-dashboard-{slug}").inputs
        with open(os.path.join(ROOT, "assets", "dashboards", f"{slug}.json")) as fh:
            assert board["configJson"] == fh.read()
        assert board["folder"] == dashboards.FOLDER_UID


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_rule_group_forwards_every_alert(env, request):
    rec = request.getfixturevalue(env)
    group = rec.one(RULE_GROUP).inputs
    cfg = stack_config(env)
    assert group["folderUid"] == dashboards.FOLDER_UID
    assert group["intervalSeconds"] == 20  # the 15s evaluation interval on Grafana's 10s tick
    assert sorted(r["name"] for r in group["rules"]) == sorted(a.name for a in alert_rules(cfg))
    for rule in group["rules"]:
        assert all(isinstance(d["model"], str) for d in rule["datas"])
        assert json.loads(rule["datas"][0]["model"])["expr"] == f'ALERTS{{alertname="{rule["name"]}", alertstate="firing"}}'
        assert rule["datas"][1]["datasourceUid"] == "__expr__"
        assert rule["noDataState"] in ("OK", "Alerting") and rule["execErrState"] == "Error"


def test_rule_group_interval_is_a_multiple_of_grafanas_tick():
    for given, want in (("15s", 20), ("10s", 10), ("1m", 60), ("5s", 10), ("25s", 30)):
        cfg = stack_config("dev")
        cfg = cfg.__class__(**{**cfg.__dict__, "prometheus": cfg.prometheus.__class__(**{**cfg.prometheus.__dict__, "evaluation_interval": given})})
        assert grafana_alerting.rule_group_interval_seconds(cfg) == want, given


def test_prometheus_only_template_parts_are_rewritten_for_grafana():
    text = "p95 is {{ $value | humanizeDuration }} on {{ $labels.instance }} ({{ printf \"%.2f\" $value }})"
    out = grafana_alerting.grafana_annotation(text)
    assert "$value" not in out
    assert "{{ $labels.instance }}" in out
    assert out.count(grafana_alerting.VALUE_PLACEHOLDER) == 2


# --- secrets ----------------------------------------------------------------------------------------

def test_admin_password_is_secret_end_to_end(dev):
    envs = dev.one(CONTAINER, "grafana-container").inputs["envs"]
    assert contains_secret(envs, f"GF_SECURITY_ADMIN_PASSWORD={MOCK_PASSWORD}")
    assert contains_secret(dev.one(PROVIDER).inputs["auth"], f"admin:{MOCK_PASSWORD}")
    for r in dev.resources:
        if r.typ != PASSWORD:  # the generator's own output is marked secret by pulumi-random
            assert not find_plaintext(r.inputs, MOCK_PASSWORD), r.name


def test_contact_point_credentials_are_secret_everywhere(everything):
    points = {r.name: r.inputs for r in everything.of_type(CONTACT_POINT)}
    assert contains_secret(points["grafana-alerting-contact-point-work"]["slacks"], SLACK)
    assert contains_secret(points["grafana-alerting-contact-point-work"]["webhooks"], WEBHOOK)
    assert contains_secret(points["grafana-alerting-contact-point-work"]["webhooks"], WEBHOOK_PASSWORD)
    assert contains_secret(points["grafana-alerting-contact-point-page"]["pagerduties"], PAGERDUTY)
    assert contains_secret(points["grafana-alerting-contact-point-heartbeat"]["webhooks"], WEBHOOK)
    for needle in ALL_CHANNELS.values():
        for r in everything.resources:
            assert not find_plaintext(r.inputs, needle), (r.name, needle)
    assert sorted(everything.opts("grafana-alerting-contact-point-work").additional_secret_outputs) == ["slacks", "webhooks"]
    assert everything.opts("grafana-alerting-contact-point-page").additional_secret_outputs == ["pagerduties"]


def test_contact_points_come_from_config(dev, everything):
    work = dev.one(CONTACT_POINT, "grafana-alerting-contact-point-work").inputs
    assert work["name"] == "llmstack-dev-work"
    assert work["emails"] == [{"addresses": ["llm-dev-alerts@example.com"], "singleEmail": True}]
    assert "slacks" not in work and "webhooks" not in work
    assert [r.name for r in dev.of_type(CONTACT_POINT)] == ["grafana-alerting-contact-point-work"]

    work = revealed(everything.one(CONTACT_POINT, "grafana-alerting-contact-point-work").inputs)
    assert work["slacks"][0]["recipient"] == "#llm-inference"
    assert work["webhooks"][0]["basicAuthUser"] == "alertbot"
    page = everything.one(CONTACT_POINT, "grafana-alerting-contact-point-page").inputs
    assert page["name"] == "llmstack-prod-page" and set(page) >= {"pagerduties"} and "slacks" not in page
    heartbeat = everything.one(CONTACT_POINT, "grafana-alerting-contact-point-heartbeat").inputs
    assert set(heartbeat) - {"name"} == {"webhooks"}


# --- routing by severity -------------------------------------------------------------------------

def _matches(matcher, labels):
    value = labels.get(matcher["label"], "")
    op, want = matcher["match"], matcher["value"]
    if op in ("=", "!="):
        return (value == want) == (op == "=")
    return bool(re.fullmatch(want, value)) == (op == "=~")


def route(policy, labels):
    """(contact point, muted) for every route an alert with `labels` reaches (Alertmanager semantics)."""
    hits = []
    for child in policy.get("policies", []):
        if all(_matches(m, labels) for m in child["matchers"]):
            hits.append((child.get("contactPoint", policy["contactPoint"]), bool(child.get("muteTimings"))))
            if not child.get("continue"):
                break
    return hits or [(policy["contactPoint"], False)]


CRITICAL = {"alertname": "LLMHighLatencyP95Critical", "severity": "critical", "alertstate": "firing"}
WARNING = {"alertname": "LLMHighLatencyP95", "severity": "warning", "alertstate": "firing"}
WATCHDOG_FIRING = {"alertname": "Watchdog", "severity": "none", "alertstate": "firing"}
WATCHDOG_NO_DATA = {"alertname": "Watchdog", "severity": "none"}  # no series: the rule's labels only
DATASOURCE_ERROR = {"alertname": "DatasourceError", "severity": "none", "rulename": "Watchdog"}


def test_routing_with_pagerduty_and_slack(prod):
    policy = prod.one(POLICY).inputs
    page, work = "llmstack-prod-page", "llmstack-prod-work"
    assert route(policy, CRITICAL) == [(page, False), (work, False)]
    assert route(policy, WARNING) == [(work, False)]
    assert route(policy, WATCHDOG_FIRING) == [(work, True)]  # no webhook: the heartbeat is muted
    assert route(policy, WATCHDOG_NO_DATA) == [(page, False)]  # the pipeline went silent
    assert route(policy, DATASOURCE_ERROR) == [(work, False)]
    assert prod.one(MUTE_TIMING).inputs == {"name": "llmstack-prod-always", "intervals": [{}]}


def test_routing_without_pagerduty_sends_critical_to_the_work_channel(dev):
    policy = dev.one(POLICY).inputs
    work = "llmstack-dev-work"
    assert route(policy, CRITICAL) == [(work, False)]
    assert route(policy, WARNING) == [(work, False)]
    assert route(policy, WATCHDOG_NO_DATA) == [(work, False)]


def test_watchdog_heartbeat_goes_to_the_webhook_alone(everything):
    policy = everything.one(POLICY).inputs
    assert route(policy, WATCHDOG_FIRING) == [("llmstack-prod-heartbeat", False)]
    assert route(policy, CRITICAL) == [("llmstack-prod-page", False), ("llmstack-prod-work", False)]
    assert everything.of_type(MUTE_TIMING) == []


def test_pagerduty_alone_takes_warnings_too():
    rec = run_stack("dev", overrides={"alertEmailAddresses": []}, secrets={"alertPagerdutyKey": PAGERDUTY})
    policy = rec.one(POLICY).inputs
    assert [r.name for r in rec.of_type(CONTACT_POINT)] == ["grafana-alerting-contact-point-page"]
    assert route(policy, WARNING) == [("llmstack-dev-page", False)]
    assert route(policy, CRITICAL) == [("llmstack-dev-page", False)]


def test_grouping_and_timings_come_from_config():
    rec = run_stack("dev", overrides={"alertGroupWait": "1m", "alertGroupInterval": "10m", "alertRepeatInterval": "12h"})
    policy = rec.one(POLICY).inputs
    assert (policy["groupWait"], policy["groupInterval"], policy["repeatInterval"]) == ("1m", "10m", "12h")
    assert policy["groupBies"] == ["alertname", "severity"]
    # The policy names contact points and the mute timing, so it must be created after them.
    assert {d._name for d in rec.opts("grafana-alerting-notification-policy").depends_on} == {
        "grafana-alerting-contact-point-work", "grafana-alerting-mute-always"}


# --- an existing Grafana ------------------------------------------------------------------------------

def test_existing_grafana_provisions_no_server(existing):
    assert not [r for r in existing.resources if r.name in ("grafana-image", "grafana-data", "grafana-container")]
    assert existing.of_type(PASSWORD) == []
    provider = existing.one(PROVIDER).inputs
    assert provider["url"] == "https://grafana.example.com"
    assert contains_secret(provider["auth"], "glsa_existingtoken_123")
    for r in existing.resources:
        assert not find_plaintext(r.inputs, "glsa_existingtoken_123"), r.name
    # Every Grafana resource is still managed, through the same explicit provider.
    assert {r.typ for r in grafana_resources(existing)} >= {DATASOURCE, FOLDER, DASHBOARD, CONTACT_POINT, POLICY, RULE_GROUP}
    assert all("::grafana-provider::" in r.provider for r in grafana_resources(existing))
    assert existing.one(DATASOURCE).inputs["isDefault"] is False


def test_datasource_points_at_the_stacks_prometheus_in_both_modes():
    provisioned = run_stack("dev").one("grafana:oss/dataSource:DataSource").inputs
    assert provisioned["url"] == "http://prometheus:9090"
    existing = run_stack(
        "dev",
        {"grafanaUrl": "https://grafana.example.com", "prometheusPublishAddress": "10.0.0.5", "allowPublicBind": "true"},
        secrets={"grafanaAuth": "glsa_token"},
    ).one("grafana:oss/dataSource:DataSource").inputs
    assert existing["url"] == "http://10.0.0.5:9090"
