"""The whole program under Pulumi mocks, for dev and prod: the Prometheus component as deployed."""

import pytest
import yaml

from llmstack import prometheus as p
from llmstack import topology
from tools.stacks import ROOT, stack_config
from tests.harness import run_stack

CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"


def container(rec):
    return rec.one(CONTAINER, "prometheus-container").inputs


def uploads(rec) -> dict:
    return {u["file"]: u["content"] for u in container(rec)["uploads"]}


def scrape_config(rec, job: str) -> dict:
    doc = yaml.safe_load(uploads(rec)[topology.PROMETHEUS_CONFIG_FILE])
    return next(j for j in doc["scrape_configs"] if j["job_name"] == job)


@pytest.fixture(scope="module")
def dev():
    return run_stack("dev")


@pytest.fixture(scope="module")
def prod():
    return run_stack("prod")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_container_volume_and_image_are_children_of_the_component(env, request):
    rec = request.getfixturevalue(env)
    assert rec.options["prometheus"][0] == "llmstack:index:Prometheus"
    for child in ("prometheus-image", "prometheus-tsdb", "prometheus-container"):
        assert rec.parent_of(child) == "prometheus"
    assert rec.one(IMAGE, "prometheus-image").inputs["name"] == "prom/prometheus:v3.5.0"
    assert rec.one(IMAGE, "prometheus-image").inputs["keepLocally"] is True
    assert container(rec)["image"].startswith("sha256:")


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_uploaded_files_are_byte_equal_to_the_renders(env, request):
    rec = request.getfixturevalue(env)
    cfg = stack_config(env)
    expected = {topology.PROMETHEUS_CONFIG_FILE: p.render_prometheus_yml(cfg)}
    for name, text in p.render_rule_files(cfg).items():
        expected[f"/etc/prometheus/rules/{name}"] = text
    assert uploads(rec) == expected
    # and to the committed copies a reviewer reads
    with open(f"{ROOT}/assets/prometheus/{env}/prometheus.yml") as fh:
        assert uploads(rec)[topology.PROMETHEUS_CONFIG_FILE] == fh.read()


def test_the_config_names_the_uploaded_rule_files(dev):
    doc = yaml.safe_load(uploads(dev)[topology.PROMETHEUS_CONFIG_FILE])
    uploaded = {f for f in uploads(dev) if f != topology.PROMETHEUS_CONFIG_FILE}
    assert {f"/etc/prometheus/{rule_file}" for rule_file in doc["rule_files"]} == uploaded


def test_scrape_target_comes_from_the_mistral_component():
    # MistralRs reports the port it listens on as its metrics port: change it and the target follows.
    rec = run_stack("dev", {"mistralPort": "8080"})
    job = scrape_config(rec, "mistral")
    assert job["static_configs"] == [{"targets": ["mistral:8080"]}]
    assert job["metrics_path"] == "/metrics"


def test_scrape_job_labels_model_and_env(dev, prod):
    labels = {r["target_label"]: r["replacement"] for r in scrape_config(prod, "mistral")["relabel_configs"]}
    assert labels == {"instance": "mistral-inference", "model": "mistralai/Mistral-7B-Instruct-v0.3", "engine": "mistralrs", "env": "prod"}
    assert {r["target_label"]: r["replacement"] for r in scrape_config(dev, "mistral")["relabel_configs"]}["env"] == "dev"


@pytest.mark.parametrize("env,time,size", [("dev", "7d", "2GB"), ("prod", "30d", "50GB")])
def test_command_sets_config_tsdb_retention_and_no_lifecycle_or_admin_api(env, time, size, request):
    cmd = container(request.getfixturevalue(env))["command"]
    assert cmd == [
        "--config.file=/etc/prometheus/prometheus.yml",
        "--storage.tsdb.path=/prometheus",
        f"--storage.tsdb.retention.time={time}",
        f"--storage.tsdb.retention.size={size}",
    ]


def test_lifecycle_and_admin_apis_only_on_request():
    cmd = container(run_stack("dev", {"prometheusLifecycleApi": "true", "prometheusAdminApi": "true"}))["command"]
    assert cmd[-2:] == ["--web.enable-lifecycle", "--web.enable-admin-api"]


def test_tsdb_lives_on_the_named_volume(dev):
    volume = dev.one(VOLUME, "prometheus-tsdb").inputs
    assert volume["name"] == "llmstack-dev-prometheus-data"
    assert {"label": "llmstack.data", "value": "true"} in volume["labels"]
    assert {"label": "llmstack.component", "value": "prometheus"} in volume["labels"]
    assert container(dev)["volumes"] == [{"volumeName": volume["name"], "containerPath": "/prometheus"}]


def test_tsdb_volume_is_retained_on_delete_and_protected_in_prod_only(dev, prod):
    assert prod.opts("prometheus-tsdb").retain_on_delete is True
    assert prod.opts("prometheus-tsdb").protect is True
    assert not dev.opts("prometheus-tsdb").retain_on_delete
    assert not dev.opts("prometheus-tsdb").protect


def test_a_replacement_removes_the_old_container_first(dev):
    assert dev.opts("prometheus-container").delete_before_replace is True


def test_published_on_loopback_by_default(dev, prod):
    for rec in (dev, prod):
        assert container(rec)["ports"] == [{"internal": 9090, "external": 9090, "ip": "127.0.0.1", "protocol": "tcp"}]
        assert {"label": "llmstack.public-bind-allowed", "value": "true"} not in container(rec)["labels"]


def test_publish_address_and_port_come_from_config():
    rec = run_stack("dev", {"prometheusPublishAddress": "0.0.0.0", "prometheusPublishPort": "19090", "allowPublicBind": "true"})
    assert container(rec)["ports"] == [{"internal": 9090, "external": 19090, "ip": "0.0.0.0", "protocol": "tcp"}]
    assert {"label": "llmstack.public-bind-allowed", "value": "true"} in container(rec)["labels"]


def test_network_alias_readiness_restart_and_logs(dev):
    c = container(dev)
    network = dev.one("docker:index/network:Network").inputs["name"]
    assert c["networksAdvanced"] == [{"name": network, "aliases": ["prometheus"]}]
    assert c["networkMode"] == "bridge"
    assert c["healthcheck"]["tests"] == ["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:9090/-/ready"]
    assert c["restart"] == "unless-stopped"
    assert c["logDriver"] == "json-file" and c["logOpts"] == {"max-size": "10m", "max-file": "5"}
    assert c["name"] == "llmstack-dev-prometheus"


def test_thresholds_from_config_reach_the_uploaded_rules():
    rec = run_stack("dev", {"alertLatencyP95CriticalSeconds": "45"})
    alerts = yaml.safe_load(uploads(rec)[f"/etc/prometheus/rules/{p.ALERTS_FILE}"])
    rule = next(r for r in alerts["groups"][0]["rules"] if r["alert"] == "LLMHighRequestLatencyCritical")
    assert "llm:request_latency_seconds:p95_5m > 45" in rule["expr"]
