"""The whole program under Pulumi mocks for the example cluster stack (Pulumi.k8s.yaml): what it
creates on the cluster, through which provider, and what stays secret."""

import json

import pytest
import yaml

from llmstack import kubernetes as render
from llmstack import prometheus
from llmstack.config import MISTRAL_IMAGE_REPO, duration_seconds, image_pin_problem
from llmstack.engines import mistralrs
from tests.harness import contains_secret, find_plaintext, run_stack
from tests import test_remote_write as rw  # the Docker tests' endpoints and credentials
from tools.stacks import stack_config

STS = "kubernetes:apps/v1:StatefulSet"
SERVICE = "kubernetes:core/v1:Service"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
SECRET = "kubernetes:core/v1:Secret"
NAMESPACE = "kubernetes:core/v1:Namespace"
SERVICE_MONITOR = "kubernetes:monitoring.coreos.com/v1:ServiceMonitor"
PROMETHEUS_RULE = "kubernetes:monitoring.coreos.com/v1:PrometheusRule"
RELEASE = "kubernetes:helm.sh/v3:Release"
PROVIDER = "pulumi:providers:kubernetes"
TOKEN = "hf_k8s_token_value_123"
KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: kube-secret-token-456}}]\n"


@pytest.fixture(scope="module")
def k8s():
    return run_stack("k8s")


@pytest.fixture(scope="module")
def with_secrets():
    return run_stack("k8s", secrets={"hfToken": TOKEN, "kubernetesKubeconfig": KUBECONFIG})


def container(rec):
    (c,) = rec.one(STS).inputs["spec"]["template"]["spec"]["containers"]
    return c


def test_the_server_image_is_the_pinned_cuda_release(k8s):
    image = container(k8s)["image"]
    assert image == f"{MISTRAL_IMAGE_REPO}:cuda128-sm90-0.9.2"
    assert image_pin_problem(image) is None


def test_the_server_runs_the_docker_stacks_command(k8s):
    cfg = stack_config("k8s")
    assert container(k8s)["args"] == mistralrs.serve_command(cfg.mistral, with_hf_token=False)
    assert "--cpu" not in container(k8s)["args"]


def test_each_replica_gets_the_configured_gpus_node_selector_and_tolerations(k8s):
    spec = k8s.one(STS).inputs["spec"]
    assert spec["replicas"] == 2
    resources = container(k8s)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == "1" and resources["requests"]["nvidia.com/gpu"] == "1"
    assert resources["limits"]["memory"] == "65536Mi"
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def test_gpu_count_and_placement_follow_config():
    rec = run_stack(
        "k8s",
        {
            "kubernetesGpusPerPod": "4",
            "kubernetesNodeSelector": ["pool=h100", "zone=a"],
            "kubernetesTolerations": ["dedicated=llm:NoExecute"],
        },
    )
    pod = rec.one(STS).inputs["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "4"
    assert pod["nodeSelector"] == {"pool": "h100", "zone": "a"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoExecute"}]


def test_a_cpu_server_requests_no_gpu():
    rec = run_stack("k8s", {"mistralImageFlavour": "cpu", "kubernetesGpusPerPod": None, "mistralMemoryLimitMb": None})
    c = container(rec)
    assert "resources" not in c
    assert "--cpu" in c["args"] and c["image"].endswith(":cpu-0.9.2")


def test_the_model_cache_is_a_claim_per_replica_that_survives_pod_replacement(k8s):
    spec = k8s.one(STS).inputs["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert container(k8s)["volumeMounts"] == [{"name": claim["metadata"]["name"], "mountPath": "/data"}]
    assert spec["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    kept = run_stack("k8s", {"retainDataOnDelete": "true", "kubernetesStorageClass": "fast-ssd"}).one(STS).inputs["spec"]
    assert kept["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert kept["volumeClaimTemplates"][0]["spec"]["storageClassName"] == "fast-ssd"


def test_startup_probe_allows_the_model_download_then_readiness_and_liveness_take_over(k8s):
    c = container(k8s)
    startup = c["startupProbe"]
    budget = startup["periodSeconds"] * startup["failureThreshold"]
    assert budget >= duration_seconds(stack_config("k8s").kubernetes.startup_timeout) == 1800
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert c[probe]["httpGet"] == {"path": "/health", "port": "http"}
    # Once started, a hung server is found within a minute, not after the download budget.
    live = c["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] <= 60
    longer = container(run_stack("k8s", {"kubernetesStartupTimeout": "2h"}))["startupProbe"]
    assert longer["periodSeconds"] * longer["failureThreshold"] >= 7200


def test_the_service_has_a_named_metrics_port_to_the_server(k8s):
    svc = k8s.one(SERVICE).inputs
    ports = {p["name"]: p for p in svc["spec"]["ports"]}
    assert ports["metrics"]["targetPort"] == "http" and ports["metrics"]["port"] == 1234
    assert container(k8s)["ports"] == [{"name": "http", "containerPort": 1234, "protocol": "TCP"}]
    pod_labels = k8s.one(STS).inputs["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_the_pdb_allows_one_voluntary_eviction_of_these_pods(k8s):
    spec = k8s.one(PDB).inputs["spec"]
    assert spec == {"maxUnavailable": 1, "selector": {"matchLabels": k8s.one(STS).inputs["spec"]["selector"]["matchLabels"]}}


def test_the_service_monitor_selects_the_service_with_the_operators_labels(k8s):
    sm = k8s.one(SERVICE_MONITOR).inputs
    svc = k8s.one(SERVICE).inputs
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["namespaceSelector"] == {"matchNames": [svc["metadata"]["namespace"]]}
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    other = run_stack("k8s", {"kubernetesOperatorSelector": ["prometheus=team-llm"]})
    for typ in (SERVICE_MONITOR, PROMETHEUS_RULE):
        labels = other.one(typ).inputs["metadata"]["labels"]
        assert labels["prometheus"] == "team-llm" and "release" not in labels


def test_the_service_monitor_relabels_as_the_docker_job_does(k8s):
    cfg = stack_config("k8s")
    (job,) = mistralrs.scrape_jobs(cfg)
    (endpoint,) = k8s.one(SERVICE_MONITOR).inputs["spec"]["endpoints"]
    # The metric relabelling (the mistral_ rename and the keep-list) is the Docker job's, field for field.
    assert endpoint["metricRelabelings"] == [
        {render._CAMEL[k]: v for k, v in rule.items()} for rule in job.config["metric_relabel_configs"]
    ]
    assert endpoint["metricRelabelings"][0]["replacement"] == "mistral_${1}"
    # The target labels too, but `instance` names the pod: each replica is a server of its own.
    rules = {r["targetLabel"]: r for r in endpoint["relabelings"]}
    assert rules["job"] == {"targetLabel": "job", "replacement": "mistral"}
    assert rules["instance"] == {"sourceLabels": ["__meta_kubernetes_pod_name"], "targetLabel": "instance"}
    for rule in job.config["relabel_configs"]:
        if rule["target_label"] != "instance":
            assert rules[rule["target_label"]] == {"targetLabel": rule["target_label"], "replacement": rule["replacement"]}
    assert endpoint["interval"] == cfg.prometheus.scrape_interval


def test_the_prometheus_rule_holds_the_same_groups_as_the_rule_files(k8s):
    cfg = stack_config("k8s")
    groups = k8s.one(PROMETHEUS_RULE).inputs["spec"]["groups"]
    files = prometheus.render_rule_files(cfg)
    from_files = [g for name in (prometheus.RECORDING_FILE, prometheus.ALERTS_FILE) for g in yaml.safe_load(files[name])["groups"]]
    assert json.loads(json.dumps(groups)) == from_files
    names = [g["name"] for g in groups]
    assert "llm-resources" in names and prometheus.ALERT_GROUP in names


def test_every_kubernetes_resource_goes_through_the_explicit_provider(k8s):
    (provider,) = k8s.of_type(PROVIDER)
    kube = [r for r in k8s.resources if r.typ.startswith("kubernetes:")]
    assert {r.typ for r in kube} == {NAMESPACE, STS, SERVICE, PDB, SERVICE_MONITOR, PROMETHEUS_RULE}
    for r in kube:
        assert r.provider == f"urn:pulumi:k8s::llmstack::pulumi:pulumi:Stack$pulumi:providers:kubernetes::{provider.name}::{provider.name}-id", r.name
    assert provider.inputs.get("context") == "gpu-cluster"


def test_no_docker_resource_on_a_cluster_and_no_kubernetes_resource_on_docker(k8s):
    assert not [r for r in k8s.resources if r.typ.startswith("docker:")]
    dev = run_stack("dev")
    assert not [r for r in dev.resources if r.typ.startswith(("kubernetes:", "pulumi:providers:kubernetes"))]


def test_grafana_is_the_clusters_with_the_same_dashboards(k8s):
    ds = k8s.one("grafana:oss/dataSource:DataSource").inputs
    assert ds["url"] == "http://kube-prometheus-stack-prometheus.monitoring.svc:9090"
    assert {r.name for r in k8s.of_type("grafana:oss/dashboard:Dashboard")} == {
        r.name for r in run_stack("dev").of_type("grafana:oss/dashboard:Dashboard")
    }
    assert not [r for r in k8s.resources if r.typ == "random:index/randomPassword:RandomPassword"]


def test_the_hf_token_and_kubeconfig_stay_secret_end_to_end(with_secrets):
    secret = with_secrets.one(SECRET).inputs
    assert contains_secret(secret["stringData"], TOKEN)
    env = {e["name"]: e for e in container(with_secrets)["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": secret["metadata"]["name"], "key": "token"}
    assert "--token-source" in container(with_secrets)["args"] and "env:HF_TOKEN" in container(with_secrets)["args"]
    (provider,) = with_secrets.of_type(PROVIDER)
    assert contains_secret(provider.inputs["kubeconfig"], "kube-secret-token-456")
    for r in with_secrets.resources:
        assert not find_plaintext(r.inputs, TOKEN), r.name
        assert not find_plaintext(r.inputs, "kube-secret-token-456"), r.name
    opts = with_secrets.opts("mistral-hf-token")
    assert set(opts.additional_secret_outputs) >= {"stringData", "data"}


def test_without_a_token_there_is_no_secret(k8s):
    assert not k8s.of_type(SECRET)
    assert "HF_TOKEN" not in {e["name"] for e in container(k8s)["env"]}


def test_kube_prometheus_stack_is_a_pinned_release_behind_its_flag(k8s):
    assert not k8s.of_type(RELEASE)
    rec = run_stack("k8s", {"kubernetesInstallPrometheusStack": "true"})
    release = rec.one(RELEASE).inputs
    assert release["chart"] == "kube-prometheus-stack" and release["version"] == "67.8.0"
    assert release["repositoryOpts"] == {"repo": "https://prometheus-community.github.io/helm-charts"}
    # Its Prometheus selects release=<release name>: the default operator selector.
    assert release["name"] == "kube-prometheus-stack"
    assert rec.one(SERVICE_MONITOR).inputs["metadata"]["labels"]["release"] == release["name"]
    assert release["values"]["kubelet"]["serviceMonitor"]["cAdvisor"] is True


def test_the_installed_prometheus_remote_writes_with_credentials_from_a_secret():
    rec = run_stack("k8s", {"kubernetesInstallPrometheusStack": "true", "prometheusRemoteWrite": json.dumps(rw.ENTRIES),
                            "prometheusClusterLabel": "gpu-eu-1"}, secrets=rw.SECRETS)
    spec = rec.one(RELEASE).inputs["values"]["prometheus"]["prometheusSpec"]
    assert spec["externalLabels"] == {"cluster": "gpu-eu-1", "env": "k8s"}
    assert [e["url"] for e in spec["remoteWrite"]] == [e["url"] for e in rw.ENTRIES]
    assert spec["remoteWrite"][0]["basicAuth"]["password"]["name"] == render.REMOTE_WRITE_SECRET
    secret = rec.one(SECRET)
    assert secret.inputs["metadata"]["name"] == render.REMOTE_WRITE_SECRET
    for value in (rw.PASSWORD, rw.TOKEN):
        assert not any(find_plaintext(r.inputs, value) for r in rec.resources), f"{value} in plaintext"
        assert contains_secret(secret.inputs["stringData"], value)


def test_remote_write_without_the_install_is_refused():
    with pytest.raises(Exception, match="prometheusRemoteWrite: is set, but on platform kubernetes"):
        run_stack("k8s", {"prometheusRemoteWrite": json.dumps(rw.ENTRIES)}, secrets=rw.SECRETS)
