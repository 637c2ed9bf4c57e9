"""Resource metrics: the cAdvisor and DCGM scrape jobs, the resource records and alerts.

tests/promtool/resources_test.yaml runs in tests/test_promtool.py against the dev stack's rules like
every other promtool file. This module checks what that cannot: that its input series look exactly
like the exporters' output after the stack's scrape jobs (dev has no DCGM job), that a real
Prometheus relabels and records the faithful fakes as the rules expect, that the dashboard's GPU
queries give "no data" (and no error) without a GPU, and the jobs as the program uploads them.
"""

import functools
import os
import re
import shutil
import subprocess

import pytest
import yaml

from llmstack import config as cfgmod
from llmstack import alerts, dashboards, prometheus, resources, signals, topology
from llmstack.alerts import resources as resource_alerts
from tools.stacks import ROOT, stack_config
from tests.harness import run_stack, stack_config_values
from tests.integration.fakes.resources import FakeCadvisor, FakeDcgm
from tests.integration.promserver import PrometheusServer, wait_until

PROMTOOL = shutil.which("promtool")
TEST_FILE = os.path.join(ROOT, "tests", "promtool", "resources_test.yaml")
DEV_RULES = os.path.join("assets", "prometheus", "dev", topology.PROMETHEUS_RULES_SUBDIR)
CONTAINER = "docker:index/container:Container"
ENVS = ("dev", "prod")
GIB = 1024 ** 3
MIB = 1024 ** 2

SERIES_RE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>.*)\}$")
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def promtool(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def job_names(cfg) -> list[str]:
    return [j.config["job_name"] for j in prometheus.scrape_jobs(cfg)]


def job_config(cfg, job: str) -> dict:
    return next(j.config for j in prometheus.scrape_jobs(cfg) if j.config["job_name"] == job)


def exposed(fake) -> dict[str, set[str]]:
    """Metric name -> label names, as the fake's /metrics shows them."""
    out: dict[str, set[str]] = {}
    for line in fake.exposition().splitlines():
        if not line or line.startswith("#"):
            continue
        name = NAME_RE.match(line).group()
        labels = line[len(name):].split("}")[0]
        out.setdefault(name, set()).update(k for k, _ in LABEL_RE.findall(labels))
    return out


# ---------------------------------------------------------------------------------------------
# The scrape jobs, as rendered and as the program uploads them
# ---------------------------------------------------------------------------------------------


def uploaded_jobs(rec) -> dict:
    c = rec.one(CONTAINER, "prometheus-container").inputs
    doc = yaml.safe_load(next(u["content"] for u in c["uploads"] if u["file"] == topology.PROMETHEUS_CONFIG_FILE))
    return {j["job_name"]: j for j in doc["scrape_configs"]}


@pytest.fixture(scope="module")
def stacks():
    return {"dev": run_stack("dev"), "prod": run_stack("prod"), "prod-no-dcgm": run_stack("prod", {"dcgmExporterEnabled": "false"})}


def test_cadvisor_is_scraped_on_every_stack_and_dcgm_only_where_the_exporter_runs(stacks):
    jobs = {name: uploaded_jobs(rec) for name, rec in stacks.items()}
    assert "cadvisor" in jobs["dev"] and "dcgm" not in jobs["dev"]
    assert "cadvisor" in jobs["prod"] and "dcgm" in jobs["prod"]
    assert "cadvisor" in jobs["prod-no-dcgm"] and "dcgm" not in jobs["prod-no-dcgm"]
    # and the exporter containers run exactly where their jobs are
    for name, rec in stacks.items():
        running = {r.name for r in rec.of_type(CONTAINER)}
        assert ("dcgm-container" in running) == ("dcgm" in jobs[name]), name


@pytest.mark.parametrize("component,job", [("cadvisor", "cadvisor"), ("dcgm", "dcgm")])
def test_the_jobs_scrape_the_exporters_network_alias_and_label_the_env(stacks, component, job):
    rec = stacks["prod"]
    c = rec.one(CONTAINER, f"{component}-container").inputs
    alias = c["networksAdvanced"][0]["aliases"][0]
    _, port, path = topology.TARGETS[job]
    scraped = uploaded_jobs(rec)[job]
    assert scraped["static_configs"] == [{"targets": [f"{alias}:{port}"]}]
    assert scraped["metrics_path"] == path
    assert {r["target_label"]: r["replacement"] for r in scraped["relabel_configs"]} == {"env": "prod"}


@pytest.mark.parametrize("env", ENVS)
def test_the_uploaded_rules_hold_the_resource_group_on_every_stack(stacks, env):
    c = stacks[env].one(CONTAINER, "prometheus-container").inputs
    recording = next(u["content"] for u in c["uploads"] if u["file"].endswith(prometheus.RECORDING_FILE))
    groups = {g["name"]: g for g in yaml.safe_load(recording)["groups"]}
    records = [r["record"] for r in groups[resources.GROUP]["rules"]]
    # The GPU records too, without a GPU: they record nothing there (see the module doc).
    assert records == [r.signal.name for r in resources.records(stack_config(env))]
    assert signals.GPU_UTILISATION.name in records and signals.MODEL_LOAD_SECONDS.name in records


@pytest.mark.parametrize("overrides", [{}, {"dcgmExporterEnabled": "false"}], ids=["prod", "prod-without-dcgm"])
def test_promtool_check_config_accepts_the_rendered_config(overrides, tmp_path):
    cfg = cfgmod.load(cfgmod.DictSource({**stack_config_values("prod"), **overrides}), "prod")
    (tmp_path / topology.PROMETHEUS_RULES_SUBDIR).mkdir()
    for name, text in prometheus.render_rule_files(cfg).items():
        (tmp_path / topology.PROMETHEUS_RULES_SUBDIR / name).write_text(text)
    (tmp_path / "prometheus.yml").write_text(prometheus.render_prometheus_yml(cfg))
    done = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert ("dcgm" in job_names(cfg)) == (not overrides)


def test_keep_lists_are_exactly_what_the_records_read():
    cfg = stack_config("prod")
    assert resources.cadvisor_job(cfg).series == resources.raw_metrics(cfg, "cadvisor") == {
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_spec_memory_limit_bytes",
        "container_start_time_seconds",
        "machine_memory_bytes",
    }
    assert resources.dcgm_job(cfg).series == resources.raw_metrics(cfg, "dcgm") == {
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_XID_ERRORS",
    }


def test_the_exporters_expose_every_metric_the_records_read():
    cfg = stack_config("prod")
    cadvisor = FakeCadvisor(containers=("llmstack-prod-mistral",))
    cadvisor.advance(30)
    assert resources.raw_metrics(cfg, "cadvisor") <= set(exposed(cadvisor))
    assert resources.raw_metrics(cfg, "dcgm") <= set(exposed(FakeDcgm()))


def _cadvisor_keeps(cfg, name: str, labels: dict) -> bool:
    """The cadvisor job's keep rules on one series, as Prometheus applies them (RE2 regexes are
    anchored; these mean the same in Python's re; a missing label is "", joined by ";")."""
    series = {"__name__": name, **labels}
    return all(
        re.fullmatch(rc["regex"], rc.get("separator", ";").join(series.get(k, "") for k in rc["source_labels"]))
        for rc in job_config(cfg, "cadvisor")["metric_relabel_configs"]
        if rc.get("action") == "keep"
    )


def test_the_cadvisor_job_keeps_the_hosts_memory_and_only_the_stacks_containers():
    """The machine-level host memory has no `name`: it alone passes the container filter without one."""
    cfg = stack_config("dev")
    machine = {"boot_id": "b", "machine_id": "m", "system_uuid": "s"}
    ours, other = {"name": "llmstack-dev-mistral", "id": "/x", "image": "i"}, {"name": "some-other-app", "id": "/y", "image": "i"}
    assert _cadvisor_keeps(cfg, "machine_memory_bytes", machine)
    assert not _cadvisor_keeps(cfg, "machine_memory_bytes", {**machine, "name": "some-other-app"})
    assert not _cadvisor_keeps(cfg, "machine_cpu_cores", machine)  # other machine series: not read, not kept
    for metric in sorted(resources.raw_metrics(cfg, "cadvisor") - {resources.MACHINE_MEMORY}):
        assert _cadvisor_keeps(cfg, metric, ours), metric
        assert not _cadvisor_keeps(cfg, metric, other), metric
        assert not _cadvisor_keeps(cfg, metric, {"id": "/", "name": "", "image": ""}), metric  # the root cgroup


def test_the_container_regex_matches_only_this_stacks_containers():
    cfg = cfgmod.load_defaults("stag.ing")
    regex = re.compile(resources.container_name_regex(cfg))  # RE2 and Python agree on this one
    assert regex.fullmatch("llmstack-stag.ing-mistral").group(1) == "mistral"
    assert regex.fullmatch("llmstack-stag.ing-grafana").group(1) == "grafana"
    for other in ("llmstack-stagXing-mistral", "llmstack-prod-mistral", "llmstack-stag.ing-cadvisor", "", "mistral"):
        assert not regex.fullmatch(other), other


# ---------------------------------------------------------------------------------------------
# Records and alerts as data
# ---------------------------------------------------------------------------------------------


def test_every_record_keeps_the_labels_it_declares():
    for r in resources.records(stack_config("dev")):
        if r.signal in (signals.MODEL_LOAD_SECONDS,):
            continue  # a difference of two records that already carry those labels
        assert f"by ({r.labels})" in r.expr, r.signal.name


def test_the_dashboards_resource_queries_read_only_recorded_series():
    recorded = {r.signal.name for r in resources.records(stack_config("dev"))}
    resource_signals = {s.name for s in signals.ALL if s.name.startswith(("llm:gpu_", "llm:container_"))} | {signals.MODEL_LOAD_SECONDS.name}
    assert resource_signals <= recorded


def test_warning_and_critical_thresholds_come_from_config():
    custom = {a.name: a for a in resource_alerts.alert_rules(cfgmod.load_defaults(
        "dev",
        alertGpuMemoryWarningPercent="85", alertGpuMemoryCriticalPercent="99",
        alertContainerMemoryWarningPercent="70", alertContainerMemoryCriticalPercent="80",
        alertTsdbDiskWarningPercent="60", alertTsdbDiskCriticalPercent="75",
    ))}
    assert custom["LLMGpuMemoryNearFullWarning"].expr.endswith("> 0.85")
    assert custom["LLMGpuMemoryNearFullCritical"].expr.endswith("> 0.99")
    assert custom["LLMContainerMemoryNearLimitWarning"].expr.endswith("> 0.7")
    assert custom["LLMContainerMemoryNearLimitCritical"].expr.endswith("> 0.8")
    assert custom["LLMPrometheusTsdbNearRetentionSizeWarning"].expr.endswith("> 0.6")
    assert custom["LLMPrometheusTsdbNearRetentionSizeCritical"].expr.endswith("> 0.75")
    for family in ("LLMGpuMemoryNearFull", "LLMContainerMemoryNearLimit", "LLMPrometheusTsdbNearRetentionSize"):
        assert custom[family + "Warning"].severity == "warning" and custom[family + "Critical"].severity == "critical"
    assert custom["LLMGpuXidError"].severity == "critical"


def test_the_stack_alerts_include_the_resource_alerts_and_the_kv_cache_ones_once():
    cfg = stack_config("dev")
    names = [a.name for a in alerts.alert_rules(cfg)]
    assert len(names) == len(set(names))
    assert {a.name for a in resource_alerts.alert_rules(cfg)} <= set(names)
    # The KV-cache alerts are reused, not redefined: no resource alert reads the KV-cache series,
    # and the exhaustion list holds the very alerts of rules.py.
    assert not any(signals.KV_CACHE_UTILISATION.name in a.expr for a in resource_alerts.alert_rules(cfg))
    by_name = {a.name: a for a in alerts.alert_rules(cfg)}
    exhaustion = resource_alerts.exhaustion_alerts(cfg)
    kv = [a for a in exhaustion if a.name.startswith("LLMKVCacheExhaustion")]
    assert [a.name for a in kv] == ["LLMKVCacheExhaustionWarning", "LLMKVCacheExhaustionCritical"]
    assert all(by_name[a.name] == a for a in exhaustion)


def test_the_resources_doc_lists_every_exhaustion_alert():
    with open(os.path.join(ROOT, "docs", "resources.md")) as fh:
        text = fh.read()
    section = text.split("<!-- resource-alerts:start -->")[1].split("<!-- resource-alerts:end -->")[0]
    for a in resource_alerts.exhaustion_alerts(stack_config("dev")) + resource_alerts.alert_rules(stack_config("dev")):
        assert f"[`{a.name}`](runbooks.md#{a.name.lower()})" in section, a.name


# ---------------------------------------------------------------------------------------------
# The promtool file's input series are what the jobs store
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def input_series() -> tuple:
    with open(TEST_FILE) as fh:
        doc = yaml.safe_load(fh)
    out = []
    for group in doc["tests"]:
        for s in group.get("input_series") or []:
            m = SERIES_RE.match(s["series"])
            assert m, s["series"]
            out.append((group["name"], m["name"], dict(LABEL_RE.findall(m["labels"]))))
    return tuple(out)


def test_input_series_are_only_what_the_jobs_of_their_stack_keep():
    produced = {env: prometheus.produced_series(stack_config(env)) for env in ENVS}
    assert input_series()
    for group, name, labels in input_series():
        env = labels.get("env")
        assert env in ENVS, f"{group}: {name} has env={env!r}"
        assert prometheus.is_produced(name, produced[env]), f"{group}: {name} would be dropped on {env}"


def test_input_series_carry_the_exporters_labels_and_their_jobs():
    cadvisor = exposed(FakeCadvisor())
    machine_labels = cadvisor.pop(resources.MACHINE_MEMORY)
    cadvisor_labels = {k for names in cadvisor.values() for k in names}
    dcgm_labels = {k for names in exposed(FakeDcgm()).values() for k in names}
    for group, name, labels in input_series():
        job, env = labels["job"], labels["env"]
        where = f"{group}: {name} {labels}"
        if job == "cadvisor" and name == resources.MACHINE_MEMORY:
            # the host's memory: the machine labels only, then the job's env; no container
            assert set(labels) == machine_labels | {"job", "instance", "env"}, where
            assert labels["instance"] == "cadvisor:8080", where
        elif job == "cadvisor":
            # the exporter's own labels, then the job's: env, and container from name
            assert set(labels) - {"job", "instance", "env", "container"} <= cadvisor_labels, where
            assert {"id", "image", "name"} <= set(labels), where
            assert labels["instance"] == "cadvisor:8080", where
            match = re.fullmatch(resources.container_name_regex(stack_config(env)), labels["name"])
            assert match and labels["container"] == match.group(1), where
            assert re.fullmatch(r"/system\.slice/docker-[0-9a-f]{64}\.scope", labels["id"]), where
            assert ("cpu" in labels) == (name == "container_cpu_usage_seconds_total"), where
        elif job == "dcgm":
            assert set(labels) - {"job", "instance", "env"} <= dcgm_labels, where
            assert {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"} <= set(labels), where
            assert labels["instance"] == "dcgm-exporter:9400", where
            assert ({"err_code", "err_msg"} <= set(labels)) == (name == "DCGM_FI_DEV_XID_ERRORS"), where
        elif job == "prometheus":
            assert labels == {"env": env, "instance": "localhost:9090", "job": "prometheus"}, where
        else:
            assert (job, name) == ("mistral", "up"), where
            assert labels == {"engine": "mistralrs", "env": "dev", "instance": "mistral-inference", "job": "mistral", "model": "Qwen/Qwen3-0.6B"}, where


# ---------------------------------------------------------------------------------------------
# A real Prometheus scraping the faithful fakes with the rendered jobs and rules
# ---------------------------------------------------------------------------------------------


def test_a_real_prometheus_keeps_relabels_and_records_the_exporters_as_rendered(tmp_path):
    containers = ("llmstack-prod-mistral", "llmstack-prod-prometheus", "llmstack-prod-grafana",
                  "llmstack-dev-mistral", "some-other-app")
    cadvisor = FakeCadvisor(containers=containers, memory_limit_bytes={"llmstack-prod-mistral": 64 * GIB},
                            model_container="llmstack-prod-mistral", machine_memory_bytes=256 * GIB)
    dcgm = FakeDcgm(gpus=2)
    server = None
    try:
        for fake in (cadvisor, dcgm):
            fake.start()
        cadvisor.run_clock(0.25, max_ticks=2000)
        fast = {"scrapeInterval": "1s", "scrapeTimeout": "1s", "evaluationInterval": "1s"}
        cfg = cfgmod.load(cfgmod.DictSource({**stack_config_values("prod"), **fast}), "prod")
        (tmp_path / "rules").mkdir()
        for name, text in prometheus.render_rule_files(cfg).items():
            (tmp_path / "rules" / name).write_text(text)
        doc = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
        # Only the exporters' jobs, each pointed at its fake: the other in-network targets do not exist here.
        address = {"cadvisor": f"127.0.0.1:{cadvisor.port}", "dcgm": f"127.0.0.1:{dcgm.port}"}
        doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"] in address]
        for job in doc["scrape_configs"]:
            job["static_configs"] = [{"targets": [address[job["job_name"]]]}]
        doc["rule_files"] = [f"rules/{prometheus.RECORDING_FILE}"]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(doc))
        server = PrometheusServer(str(tmp_path / "prometheus.yml"), str(tmp_path / "data"), str(tmp_path / "prometheus.log"))
        server.start()

        def recorded():
            cpu = server.query(signals.CONTAINER_CPU.name)
            gpu = server.query(signals.GPU_MEMORY_TOTAL.name)
            return (cpu, gpu) if len(cpu) == 3 and len(gpu) == 2 else None

        cpu, gpu = wait_until(recorded, timeout=90, what="container CPU and GPU memory records")

        # Only what the records read is stored, and only this stack's containers, as components.
        for job in ("cadvisor", "dcgm"):
            stored = {r["metric"]["__name__"] for r in server.query(f'group by (__name__) ({{job="{job}"}})')}
            assert stored - {"up"} - {n for n in stored if n.startswith("scrape_")} == resources.raw_metrics(cfg, job), job
        kept = server.query('group by (name, container, env) (container_memory_working_set_bytes{job="cadvisor"})')
        assert {(r["metric"]["name"], r["metric"]["container"], r["metric"]["env"]) for r in kept} == {
            ("llmstack-prod-mistral", "mistral", "prod"),
            ("llmstack-prod-prometheus", "prometheus", "prod"),
            ("llmstack-prod-grafana", "grafana", "prod"),
        }
        assert {r["metric"]["container"] for r in cpu} == {"mistral", "prometheus", "grafana"}
        assert all(float(r["value"][1]) > 0 for r in cpu)

        # The records in the schema's units, per GPU; the memory limit where there is one, else the host's memory.
        assert {(r["metric"]["gpu"], float(r["value"][1])) for r in gpu} == {("0", 81920 * MIB), ("1", 81920 * MIB)}
        used = server.query(signals.GPU_MEMORY_USED.name)
        assert {float(r["value"][1]) for r in used} == {round(0.6 * 81920) * MIB}
        assert {float(r["value"][1]) for r in server.query(signals.GPU_UTILISATION.name)} == {0.65}
        assert set(used[0]["metric"]) == {"__name__", "env", "gpu", "UUID", "modelName"}
        limits = server.query(signals.CONTAINER_MEMORY_LIMIT.name)
        assert {(r["metric"]["container"], float(r["value"][1])) for r in limits} == {
            ("mistral", 64 * GIB), ("prometheus", 256 * GIB), ("grafana", 256 * GIB)}
        # The host's memory is kept without a container (one series, its machine labels and the job's).
        [machine] = server.query(f'{resources.MACHINE_MEMORY}{{job="cadvisor"}}')
        assert set(machine["metric"]) == {"__name__", "boot_id", "machine_id", "system_uuid", "env", "instance", "job"}
        assert float(machine["value"][1]) == 256 * GIB
        xid = server.query(signals.GPU_LAST_XID.name)
        assert {(r["metric"]["err_msg"], float(r["value"][1])) for r in xid} == {("No Error", 0.0)}
    finally:
        if server is not None:
            server.stop()
        for fake in (cadvisor, dcgm):
            fake.close()


# ---------------------------------------------------------------------------------------------
# The dashboard's GPU panels on a stack without a GPU: no data, never an error
# ---------------------------------------------------------------------------------------------

GPU_RECORDS = {s.name for s in signals.ALL if s.name.startswith("llm:gpu_")}


def gpu_panel_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL as Grafana sends it) for every dashboard query over a GPU record."""
    out = []
    for build in dashboards.DASHBOARDS.values():
        for panel in build()["panels"]:
            for target in panel.get("targets", []):
                if set(NAME_RE.findall(re.sub(r'"[^"]*"', "", target["expr"]))) & GPU_RECORDS:
                    expr = re.sub(r"\$\{\w+\}|\$\w+", ".*", target["expr"].replace("$__rate_interval", "1m"))
                    out.append((panel["title"], expr))
    return out


def _dev_series(with_gpu: bool) -> list[dict]:
    """A dev stack's series: cAdvisor and the mistral target, plus, as a control, a DCGM exporter."""
    series = [
        {"series": 'up{engine="mistralrs", env="dev", instance="mistral-inference", job="mistral", model="Qwen/Qwen3-0.6B"}', "values": "1x40"},
        {"series": 'container_memory_working_set_bytes{container="mistral", env="dev", id="/system.slice/docker-5d334b5ce40398f86b8b6f3d12a8a93e9cd2c71c193ea97cf1eae1855088e905.scope", image="ghcr.io/ericlbuehler/mistral.rs:cpu-0.9.2", instance="cadvisor:8080", job="cadvisor", name="llmstack-dev-mistral"}', "values": f"{2 * GIB}x40"},
    ]
    if with_gpu:
        gpu = 'DCGM_FI_DRIVER_VERSION="570.133.20", Hostname="7c6d2e1f0a9b", UUID="GPU-fd89a7a7-1b34-677a-010b-893b94294bce", device="nvidia0", env="dev", gpu="0", instance="dcgm-exporter:9400", job="dcgm", modelName="NVIDIA H100 80GB HBM3", pci_bus_id="00000000:18:00.0"'
        for name, value in (("DCGM_FI_DEV_GPU_UTIL", 65), ("DCGM_FI_DEV_FB_USED", 49152), ("DCGM_FI_DEV_FB_FREE", 32768),
                            ("DCGM_FI_DEV_GPU_TEMP", 62), ("DCGM_FI_DEV_POWER_USAGE", 350.25)):
            series.append({"series": f"{name}{{{gpu}}}", "values": f"{value}x40"})
    return series


def _run_gpu_panel_queries(tmp_path, with_gpu: bool) -> subprocess.CompletedProcess:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    for name, text in prometheus.render_rule_files(stack_config("dev")).items():
        (rules_dir / name).write_text(text)
    # Without a GPU: no sample and no error. With one (the control): one series per query.
    tests = [
        {"expr": expr, "eval_time": "5m", "exp_samples": []} if not with_gpu
        else {"expr": f"count({expr})", "eval_time": "5m", "exp_samples": [{"labels": "{}", "value": 1}]}
        for _, expr in gpu_panel_queries()
    ]
    doc = {
        "rule_files": [f"rules/{prometheus.RECORDING_FILE}"],
        "evaluation_interval": "15s",
        "tests": [{"interval": "15s", "input_series": _dev_series(with_gpu), "promql_expr_test": tests}],
    }
    (tmp_path / "gpu_panels_test.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return promtool("test", "rules", "gpu_panels_test.yaml", cwd=str(tmp_path))


def test_there_are_gpu_panels():
    titles = {title for title, _ in gpu_panel_queries()}
    assert {"GPU utilisation", "GPU memory: used and total", "GPU temperature", "GPU power"} <= titles


def test_gpu_panel_queries_give_no_data_and_no_error_without_a_gpu(tmp_path):
    done = _run_gpu_panel_queries(tmp_path, with_gpu=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_gpu_panel_queries_do_give_data_with_a_gpu(tmp_path):
    # The control: the same queries against the same rules find the GPU once DCGM series exist, so
    # the test above can fail.
    done = _run_gpu_panel_queries(tmp_path, with_gpu=True)
    assert done.returncode == 0, done.stdout + done.stderr
