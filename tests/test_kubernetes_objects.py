"""Every rendered Kubernetes object against its published schema, offline, and the PrometheusRule's
groups through promtool exactly as the Docker rule files go.

- Core objects: kubernetes-validate (pinned in requirements-dev.txt) with the OpenAPI schemas of
  Kubernetes KUBERNETES_VERSION, strict (an unknown field is an error).
- Operator objects: tests/crd/validate.mjs with the CRD schemas @kubernetes-models/prometheus-operator
  ships (pinned in package.json; scripts/test runs `npm ci`).
- Rules: `promtool check rules`, the engine and alert unit tests of tests/promtool against the same
  stack rendered for a cluster, and unit tests of the cluster-shaped resource records.
"""

import copy
import functools
import json
import os
import re
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

from llmstack import config as cfgmod
from llmstack import kubernetes as render
from llmstack import prometheus
from llmstack.alerts import probes as alert_probes
from tools.stacks import ROOT, stack_config, stack_values

KUBERNETES_VERSION = "1.33.0"
NODE = shutil.which("node")
PROMTOOL = shutil.which("promtool")
VALIDATOR = os.path.join(ROOT, "tests", "crd", "validate.mjs")
PROMTOOL_DIR = os.path.join(ROOT, "tests", "promtool")
# Docker-shaped (the stack's own cAdvisor and DCGM jobs, the blackbox probes): the cluster's resource
# records are tested below in their own shape, and a cluster runs no probes.
DOCKER_ONLY_TESTS = {"resources_test.yaml", "probes_test.yaml"}

CLUSTER = {
    "platform": "kubernetes",
    "kubernetesPrometheusUrl": "http://prometheus.monitoring.svc:9090",
    "grafanaUrl": "https://grafana.example.com",
}
SECRETS = {"grafanaAuth": "glsa_placeholder"}


def load(values: dict, env: str = "k8s", secrets: dict = SECRETS) -> cfgmod.StackConfig:
    return cfgmod.load(cfgmod.DictSource({**values, **secrets}, frozenset(secrets)), env)


def variants() -> dict:
    """The example stack and the other shapes its objects take."""
    base = stack_values("k8s")
    return {
        "k8s": stack_config("k8s"),
        "k8s+token+storage-class": load({**base, "kubernetesStorageClass": "fast-ssd", "retainDataOnDelete": "true"}, secrets={**SECRETS, "hfToken": "hf_x"}),
        "k8s-cpu": load({**base, "mistralImageFlavour": "cpu", "kubernetesGpusPerPod": "0", "mistralMemoryLimitMb": "0", "kubernetesNodeSelector": "[]", "kubernetesTolerations": "[]"}),
    }


VARIANTS = variants()


# --- core objects --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_core_object_passes_the_kubernetes_schema(name):
    objects = render.core_objects(VARIANTS[name])
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "StatefulSet", "Service", "PodDisruptionBudget"} <= kinds
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize(
    "break_it",
    [
        lambda o: o["spec"].__setitem__("replicas", "two"),
        lambda o: o["spec"]["template"]["spec"]["containers"][0].__setitem__("startupProbes", {}),  # a typo: unknown field
        lambda o: o["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["httpGet"].pop("port"),
    ],
    ids=["wrong-type", "unknown-field", "missing-required"],
)
def test_the_kubernetes_schema_check_rejects_a_broken_statefulset(break_it):
    sts = copy.deepcopy(render.statefulset(VARIANTS["k8s"]))
    kubernetes_validate.validate(sts, KUBERNETES_VERSION, strict=True)
    break_it(sts)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(sts, KUBERNETES_VERSION, strict=True)


# --- operator objects ----------------------------------------------------------------------------


def validate_crds(objects: list) -> tuple[int, list]:
    assert NODE, "node is missing: the CRD check runs the pinned npm validator"
    assert os.path.isdir(os.path.join(ROOT, "node_modules", "@kubernetes-models", "prometheus-operator")), "run `npm ci` (scripts/test does)"
    done = subprocess.run([NODE, VALIDATOR], input=json.dumps(objects), capture_output=True, text=True, cwd=ROOT, timeout=120)
    return done.returncode, json.loads(done.stdout or "[]")


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_service_monitor_and_prometheus_rule_pass_the_crd_schemas(name):
    objects = render.operator_objects(VARIANTS[name])
    code, results = validate_crds(objects)
    assert code == 0, results
    assert [(r["kind"], r["errors"]) for r in results] == [
        ("monitoring.coreos.com/v1/ServiceMonitor", []),
        ("monitoring.coreos.com/v1/PrometheusRule", []),
    ]


# The CRD schemas leave unknown fields alone, as the API server does: it prunes them, silently.
# So a misspelt field (metricRelabelling) would vanish on the cluster. The package's TypeScript
# declarations list every field each type has; this walks an object against them.
MODELS_DIR = os.path.join(ROOT, "node_modules", "@kubernetes-models", "prometheus-operator", "monitoring.coreos.com", "v1")
_IMPORT = re.compile(r'import \{ (\w+) \} from "\./(\w+)\.js";')
_INTERFACE = re.compile(r"^export interface (\w+)(?: extends ([\w, ]+))? \{$", re.M)
_FIELD = re.compile(r'^    "([^"]+)"\??: (.+?);?$')


@functools.lru_cache(maxsize=None)
def declared_fields(type_file: str) -> dict:
    """field -> the local type file of its value (None: a scalar, a map, or another package's type)."""
    with open(os.path.join(MODELS_DIR, f"{type_file}.d.ts")) as fh:
        text = fh.read()
    imports = dict(_IMPORT.findall(text))
    head = _INTERFACE.search(text)
    assert head, type_file
    fields = {}
    for base in (head.group(2) or "").split(","):
        if base.strip() in imports:
            fields.update(declared_fields(imports[base.strip()]))
    for line in text[head.end():text.index("\n}", head.end())].splitlines():
        match = _FIELD.match(line)
        if match:
            type_name = re.sub(r"^Array<(\w+)>$", r"\1", match.group(2).strip())
            fields[match.group(1)] = imports.get(type_name)
    return fields


def unknown_fields(value, type_file: str, path: str = "") -> list:
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in unknown_fields(item, type_file, f"{path}[{i}]")]
    if not isinstance(value, dict):
        return []
    fields = declared_fields(type_file)
    found = []
    for key, item in value.items():
        if key not in fields:
            found.append(f"{path}.{key}")
        elif fields[key]:
            found += unknown_fields(item, fields[key], f"{path}.{key}")
    return found


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_operator_objects_have_no_field_the_crds_lack(name):
    for obj in render.operator_objects(VARIANTS[name]):
        assert unknown_fields(obj, obj["kind"]) == [], obj["kind"]


def test_the_field_check_finds_a_misspelt_field():
    sm, rule = copy.deepcopy(render.operator_objects(VARIANTS["k8s"]))
    assert "Endpoint" in declared_fields("ServiceMonitorSpec").values()  # it does descend
    sm["spec"]["endpoints"][0]["metricRelabelling"] = sm["spec"]["endpoints"][0].pop("metricRelabelings")
    sm["spec"]["endpoints"][0]["relabelings"][0]["target_label"] = "job"
    rule["spec"]["groups"][0]["rules"][0]["annotation"] = {}
    assert unknown_fields(sm, "ServiceMonitor") == [".spec.endpoints[0].relabelings[0].target_label", ".spec.endpoints[0].metricRelabelling"]
    assert unknown_fields(rule, "PrometheusRule") == [".spec.groups[0].rules[0].annotation"]


def test_the_crd_check_rejects_broken_objects():
    sm, rule = copy.deepcopy(render.operator_objects(VARIANTS["k8s"]))
    sm["spec"]["endpoints"][0]["relabelings"][0]["action"] = "relabel-everything"
    rule["spec"]["groups"][0]["rules"][0].pop("expr")
    unknown = {"apiVersion": "monitoring.coreos.com/v1", "kind": "Probe", "metadata": {"name": "x"}, "spec": {}}
    code, results = validate_crds([sm, rule])
    assert code == 1
    assert "relabelings/0/action" in " ".join(results[0]["errors"])
    assert "expr" in " ".join(results[1]["errors"])
    assert validate_crds([unknown])[0] == 2


# --- rules -----------------------------------------------------------------------------------------


def promtool(*args: str, cwd: str) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_promtool_check_rules_accepts_the_prometheus_rules_groups(tmp_path):
    path = tmp_path / "prometheus-rule.yml"
    path.write_text(yaml.safe_dump({"groups": render.prometheus_rule(stack_config("k8s"))["spec"]["groups"]}, sort_keys=True))
    done = promtool("check", "rules", str(path), cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def dev_on_a_cluster() -> cfgmod.StackConfig:
    """The dev stack's own knobs (model, max-seqs, thresholds) on platform kubernetes: the config the
    promtool unit tests were written for, rendered for a cluster."""
    values = {k: v for k, v in stack_values("dev").items() if k not in cfgmod.DOCKER_ONLY}
    return load({**values, **CLUSTER}, env="dev")


def test_the_cluster_rules_are_the_docker_rules_but_for_the_resource_shape():
    docker, cluster = stack_config("dev"), dev_on_a_cluster()
    docker_groups = {g["name"]: g for g in prometheus.recording_groups(docker) + prometheus.alerting_groups(docker)}
    cluster_groups = {g["name"]: g for g in render.rule_groups(cluster)}
    # A cluster runs no blackbox probes; every other group is there, and only the resource records'
    # raw selectors differ: they produce the same series names, in the same order.
    assert set(docker_groups) - set(cluster_groups) == {"llm-probes"}
    assert set(cluster_groups) <= set(docker_groups)
    for name, group in cluster_groups.items():
        if name == "llm-resources":
            assert [r["record"] for r in group["rules"]] == [r["record"] for r in docker_groups[name]["rules"]]
        elif name == prometheus.ALERT_GROUP:
            probe_alerts = {a.name for a in alert_probes.alert_rules(docker)}
            expected = [r for r in docker_groups[name]["rules"] if r["alert"] not in probe_alerts]
            assert probe_alerts and len(group["rules"]) == len(expected)
            for got, want in zip(group["rules"], expected):
                if "tsdb" in want["expr"]:
                    # Their text quotes the Docker Prometheus's retention knobs; on a cluster the
                    # Prometheus is the cluster's (docs/kubernetes.md).
                    got, want = {k: got[k] for k in ("alert", "expr", "labels")}, {k: want[k] for k in ("alert", "expr", "labels")}
                assert got == want
        else:
            assert group == docker_groups[name], name


def _cluster_layout(tmp_path) -> str:
    """tests/promtool beside the cluster's rules, where the tests look for the dev rules."""
    cfg = dev_on_a_cluster()
    rules_dir = tmp_path / "assets" / "prometheus" / "dev" / "rules"
    rules_dir.mkdir(parents=True)
    groups = render.prometheus_rule(cfg)["spec"]["groups"]
    recording = [g for g in groups if g["name"] != prometheus.ALERT_GROUP]
    alerting = [g for g in groups if g["name"] == prometheus.ALERT_GROUP]
    (rules_dir / prometheus.RECORDING_FILE).write_text(yaml.safe_dump({"groups": recording}, sort_keys=True))
    (rules_dir / prometheus.ALERTS_FILE).write_text(yaml.safe_dump({"groups": alerting}, sort_keys=True))
    tests_dir = tmp_path / "tests" / "promtool"
    tests_dir.mkdir(parents=True)
    return str(tests_dir)


# The alerting file with a firing and a quiet case per alert, replayed on the cluster's rules as they
# are. The other files test groups the test above shows are the Docker ones byte for byte (the CI
# time of a second promtool pass over every file buys nothing on top of that identity).
CLUSTER_TESTS = ["mistral_alerts_test.yaml", "fleet_test.yaml"]
assert not set(CLUSTER_TESTS) & DOCKER_ONLY_TESTS


@pytest.mark.parametrize("name", CLUSTER_TESTS)
def test_the_promtool_unit_tests_pass_against_the_prometheus_rule(name, tmp_path):
    tests_dir = _cluster_layout(tmp_path)
    shutil.copy(os.path.join(PROMTOOL_DIR, name), tests_dir)
    done = promtool("test", "rules", name, cwd=tests_dir)
    assert done.returncode == 0, done.stdout + done.stderr


# --- the cluster's resource label shape --------------------------------------------------------------

NS = "llmstack-k8s"
KUBELET = f'job="kubelet", metrics_path="/metrics/cadvisor", namespace="{NS}"'


def _resource_test(cfg: cfgmod.StackConfig, with_limit: bool) -> dict:
    """Series shaped as a cluster exposes them: the kubelet's cAdvisor (namespace, pod, container, and
    the operator's node label), kube-state-metrics, the GPU operator's DCGM exporter (its labels kept
    as exported_* by a ServiceMonitor without honorLabels, or as they are by one with it)."""
    series = [
        # Two server pods at 1 and 0.5 cores; the pod cgroup (container="") and the sandbox ("POD")
        # are aggregates, and another namespace is someone else's.
        (f'container_cpu_usage_seconds_total{{{KUBELET}, pod="mistral-0", container="mistral", node="gpu-1", cpu="total"}}', "0+15x60"),
        (f'container_cpu_usage_seconds_total{{{KUBELET}, pod="mistral-1", container="mistral", node="gpu-2", cpu="total"}}', "0+7.5x60"),
        (f'container_cpu_usage_seconds_total{{{KUBELET}, pod="mistral-0", container="", node="gpu-1", cpu="total"}}', "0+150x60"),
        (f'container_cpu_usage_seconds_total{{{KUBELET}, pod="mistral-0", container="POD", node="gpu-1", cpu="total"}}', "0+150x60"),
        ('container_cpu_usage_seconds_total{job="kubelet", metrics_path="/metrics/cadvisor", namespace="other", pod="x-0", container="mistral", node="gpu-1", cpu="total"}', "0+150x60"),
        (f'container_memory_working_set_bytes{{{KUBELET}, pod="mistral-0", container="mistral", node="gpu-1"}}', "1000000000x60"),
        (f'container_memory_working_set_bytes{{{KUBELET}, pod="mistral-1", container="mistral", node="gpu-2"}}', "2000000000x60"),
        ('machine_memory_bytes{job="kubelet", metrics_path="/metrics/cadvisor", node="gpu-1", boot_id="a", machine_id="a", system_uuid="a"}', "200000000000x60"),
        ('machine_memory_bytes{job="kubelet", metrics_path="/metrics/cadvisor", node="gpu-2", boot_id="b", machine_id="b", system_uuid="b"}', "100000000000x60"),
        # Both pods started at 10s; mistral-0 answered first at 60s, mistral-1 at 120s.
        (f'container_start_time_seconds{{{KUBELET}, pod="mistral-0", container="mistral", node="gpu-1"}}', "10x60"),
        (f'container_start_time_seconds{{{KUBELET}, pod="mistral-1", container="mistral", node="gpu-2"}}', "10x60"),
        ('up{job="mistral", instance="mistral-0", env="k8s", engine="mistralrs", model="m/m", namespace="llmstack-k8s", pod="mistral-0"}', "0 0 0 0 1x56"),
        ('up{job="mistral", instance="mistral-1", env="k8s", engine="mistralrs", model="m/m", namespace="llmstack-k8s", pod="mistral-1"}', "0 0 0 0 0 0 0 0 1x52"),
        # GPUs: GPU-a held by mistral-0 (GPU operator's ServiceMonitor: exported_namespace), GPU-b by
        # mistral-1 under a ServiceMonitor that honours labels, GPU-c by another namespace.
        ('DCGM_FI_DEV_GPU_UTIL{job="nvidia-dcgm-exporter", namespace="gpu-operator", pod="nvidia-dcgm-exporter-x", gpu="0", UUID="GPU-a", modelName="NVIDIA H100 80GB HBM3", Hostname="gpu-1", exported_namespace="llmstack-k8s", exported_pod="mistral-0", exported_container="mistral"}', "50x60"),
        ('DCGM_FI_DEV_GPU_UTIL{job="nvidia-dcgm-exporter", namespace="llmstack-k8s", pod="mistral-1", container="mistral", gpu="0", UUID="GPU-b", modelName="NVIDIA H100 80GB HBM3", Hostname="gpu-2"}', "25x60"),
        ('DCGM_FI_DEV_GPU_UTIL{job="nvidia-dcgm-exporter", namespace="gpu-operator", pod="nvidia-dcgm-exporter-x", gpu="1", UUID="GPU-c", modelName="NVIDIA H100 80GB HBM3", Hostname="gpu-1", exported_namespace="other", exported_pod="x-0", exported_container="x"}', "99x60"),
        ('DCGM_FI_DEV_FB_USED{job="nvidia-dcgm-exporter", namespace="gpu-operator", gpu="0", UUID="GPU-a", modelName="NVIDIA H100 80GB HBM3", Hostname="gpu-1", exported_namespace="llmstack-k8s", exported_pod="mistral-0", exported_container="mistral"}', "1024x60"),
        ('DCGM_FI_DEV_FB_FREE{job="nvidia-dcgm-exporter", namespace="gpu-operator", gpu="0", UUID="GPU-a", modelName="NVIDIA H100 80GB HBM3", Hostname="gpu-1", exported_namespace="llmstack-k8s", exported_pod="mistral-0", exported_container="mistral"}', "3072x60"),
    ]
    if with_limit:
        series.append((f'kube_pod_container_resource_limits{{job="kube-state-metrics", namespace="{NS}", pod="mistral-0", container="mistral", node="gpu-1", resource="memory", unit="byte"}}', "68719476736x60"))
        limit = 68719476736
    else:
        limit = 200000000000  # the larger node's memory: max over the pods of their node's memory
    gpu = {"env": "k8s", "gpu": "0", "modelName": "NVIDIA H100 80GB HBM3"}

    def sample(labels: dict, value: float) -> dict:
        return {"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}", "value": value}

    checks = [
        ("llm:container_cpu_cores:rate5m", [sample({"env": "k8s", "container": "mistral"}, 1.5)]),
        ("llm:container_memory_working_set_bytes", [sample({"env": "k8s", "container": "mistral"}, 3e9)]),
        ("llm:container_memory_limit_bytes", [sample({"env": "k8s", "container": "mistral"}, limit)]),
        ("llm:gpu_utilisation:ratio", [sample({**gpu, "UUID": "GPU-a"}, 0.5), sample({**gpu, "UUID": "GPU-b"}, 0.25)]),
        ("llm:gpu_memory_total_bytes", [sample({**gpu, "UUID": "GPU-a"}, 4096 * 1048576)]),
        (
            "llm:model_load_seconds",
            [
                sample({"env": "k8s", "engine": "mistralrs", "instance": "mistral-0", "model": "m/m"}, 50),
                sample({"env": "k8s", "engine": "mistralrs", "instance": "mistral-1", "model": "m/m"}, 110),
            ],
        ),
    ]
    return {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "15s",
        "tests": [
            {
                "name": f"cluster resource shape ({'with' if with_limit else 'without'} a memory limit)",
                "interval": "15s",
                "input_series": [{"series": s, "values": v} for s, v in series],
                "promql_expr_test": [
                    {"expr": f"{name}", "eval_time": "9m", "exp_samples": [{"labels": name + e["labels"], "value": e["value"]} for e in exp]}
                    for name, exp in checks
                ],
            }
        ],
    }


@pytest.mark.parametrize("with_limit", [True, False], ids=["memory-limit", "no-memory-limit"])
def test_the_cluster_shaped_series_give_the_same_llm_records(with_limit, tmp_path):
    cfg = stack_config("k8s")
    groups = [g for g in render.rule_groups(cfg) if g["name"] == "llm-resources"]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=True))
    (tmp_path / "test.yml").write_text(yaml.safe_dump(_resource_test(cfg, with_limit), sort_keys=False))
    done = promtool("test", "rules", "test.yml", cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_cluster_shape_test_can_fail(tmp_path):
    """With the sandbox filter gone from the records, the CPU check must catch the aggregates."""
    cfg = stack_config("k8s")
    groups = [g for g in render.rule_groups(cfg) if g["name"] == "llm-resources"]
    text = yaml.safe_dump({"groups": groups}, sort_keys=True).replace(', container!="POD"', "")
    (tmp_path / "rules.yml").write_text(text)
    (tmp_path / "test.yml").write_text(yaml.safe_dump(_resource_test(cfg, True), sort_keys=False))
    done = promtool("test", "rules", "test.yml", cwd=str(tmp_path))
    assert done.returncode != 0
    assert "llm:container_cpu_cores:rate5m" in done.stdout + done.stderr


def test_the_committed_manifests_pass_both_schema_checks():
    with open(os.path.join(ROOT, "assets", "kubernetes", "k8s", "manifests.yaml")) as fh:
        objects = [o for o in yaml.safe_load_all(fh) if o]
    operator = [o for o in objects if o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert {o["kind"] for o in operator} == {"ServiceMonitor", "PrometheusRule"}
    for obj in objects:
        if obj not in operator:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    code, results = validate_crds(operator)
    assert code == 0, results
