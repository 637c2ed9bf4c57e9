"""Ollama exporters in the shared schema: mappings, scrape jobs, promtool tests, mocks.

The promtool files tests/promtool/ollama_*.yaml run in tests/test_promtool.py against the dev
stack's rules like every other. This module checks what that cannot: that their input series look
exactly like the exporters' output after the Ollama scrape jobs (dev scrapes no Ollama), that every
alert an exporter can express fires for it there, the absent alert of a stack with Ollama targets,
and the rendered jobs, in promtool, in a real Prometheus and in the program under mocks.
"""

import functools
import glob
import json
import math
import os
import re
import shutil
import subprocess

import pytest
import yaml

from llmstack import config as cfgmod
from llmstack import alerts, engines, prometheus, signals, topology
from llmstack.engines import ollama
from llmstack.alerts.base import runbook_anchor
from tools.docs import alert_can_fire
from tests.promtool_inputs import LABEL_RE, input_series, load
from tests.harness import ENGINE_NEUTRAL_ALERTS, run_stack, stack_config_values
from tests.integration.fakes.ollama import FakeOllamaMetrics
from tests.integration.promserver import PrometheusServer, wait_until

PROMTOOL = shutil.which("promtool")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OLLAMA_TEST_FILES = sorted(glob.glob(os.path.join(ROOT, "tests", "promtool", "ollama_*.yaml")))
# The stack the promtool files' input series are shaped for (see their header comments).
TEST_TARGETS = ["norskhelsenett@ollama-metrics:8080", "http@ollama-proxy:9000"]
TARGET_LABELS = ("engine", "env", "instance", "job")


def configured(targets, env: str = "dev", **overrides) -> cfgmod.StackConfig:
    """The committed stack's config with these ollamaTargets, as Pulumi would hand it over."""
    values = {**stack_config_values(env), **overrides, "ollamaTargets": json.dumps(targets)}
    return cfgmod.load(cfgmod.DictSource(values), env)


def ollama_mapping(cfg, exporter):
    return next(m for m in ollama.mappings(cfg) if m.job == ollama.job(exporter))


CFG = configured(TEST_TARGETS)
DEV = configured([])


def promtool(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def job_config(cfg, job: str) -> dict:
    return next(j.config for j in prometheus.scrape_jobs(cfg) if j.config["job_name"] == job)


def exposed_names(fake: FakeOllamaMetrics) -> set[str]:
    return {line.split("{")[0].split(" ")[0] for line in fake.exposition().splitlines() if line and not line.startswith("#")}


def kept(job: dict, names: set[str]) -> set[str]:
    """What the job's metric relabelling keeps of `names` (its only rule is a keep on __name__;
    RE2 is anchored, hence fullmatch)."""
    (keep,) = job["metric_relabel_configs"]
    assert keep["action"] == "keep" and keep["source_labels"] == ["__name__"]
    return {n for n in names if re.fullmatch(keep["regex"], n)}


# ---------------------------------------------------------------------------------------------
# Mappings: what each exporter really has, and only that
# ---------------------------------------------------------------------------------------------


def test_every_exporter_kind_of_the_config_has_a_mapping():
    for exporter in cfgmod.OLLAMA_EXPORTERS:
        m = ollama_mapping(CFG, exporter)
        assert (m.name, m.job, m.engine) == (f"ollama-{exporter}", f"ollama-{exporter}", "ollama")
        for expr in m.signals.values():
            for selector in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}", expr):
                assert f'job="{m.job}"' in selector, selector


EXPECTED_SIGNALS = {
    # no status label, queue, in-flight or TTFT metric; time per token and token counters instead
    "norskhelsenett": {
        signals.REQUESTS_RATE, signals.LATENCY_AVG, signals.LATENCY_P50, signals.LATENCY_P95, signals.LATENCY_P99,
        signals.LATENCY_P95_1M, signals.ITL_P95, signals.TOKENS_PROCESSED_RATE, signals.TOKENS_GENERATED_RATE,
        signals.SLO_LATENCY_REQUESTS_RATE, signals.SLO_LATENCY_SLOW_RATE,
    },
    # mistral.rs's HTTP counter and histogram with an ollama_ prefix, nothing else
    "http": {
        signals.REQUESTS_RATE, signals.ERRORS_RATE, signals.ERROR_RATIO, signals.ERROR_RATIO_1M,
        signals.LATENCY_AVG, signals.LATENCY_P50, signals.LATENCY_P95, signals.LATENCY_P99, signals.LATENCY_P95_1M,
        signals.RESTARTS, signals.SLO_LATENCY_REQUESTS_RATE, signals.SLO_LATENCY_SLOW_RATE,
    },
}


@pytest.mark.parametrize("exporter", cfgmod.OLLAMA_EXPORTERS)
def test_each_exporter_maps_exactly_the_signals_its_metrics_carry(exporter):
    assert set(ollama_mapping(CFG, exporter).signals) == EXPECTED_SIGNALS[exporter]


@pytest.mark.parametrize("exporter", cfgmod.OLLAMA_EXPORTERS)
def test_the_job_keeps_exactly_what_the_rules_read_from_real_exporter_output(exporter):
    fake = FakeOllamaMetrics(flavour=exporter)
    fake.set_scenario("healthy")
    fake.advance(60)
    exposed = exposed_names(fake)
    mapping = ollama_mapping(CFG, exporter)
    stored = kept(job_config(CFG, mapping.job), exposed)
    # every name a rule reads is in the exporter's output, and nothing else is stored
    assert stored == mapping.raw_metrics
    if exporter == "norskhelsenett":
        assert {"go_goroutines", "ollama_model_ram_mb", "ollama_time_per_token_seconds_sum"} <= exposed - stored


def test_a_stack_without_ollama_targets_records_ollama_rules_but_watches_no_ollama_job():
    groups = [g["name"] for g in prometheus.recording_groups(DEV)]
    assert groups[:3] == ["llm-schema-mistralrs", "llm-schema-ollama-norskhelsenett", "llm-schema-ollama-http"]
    by_name = {a.name: a for a in alerts.alert_rules(DEV)}
    up = 'up{job=~"llamacpp|mistral|ollama-http|ollama-norskhelsenett|tgi|vllm"}'
    assert by_name["LLMTargetDown"].expr.startswith(f"{up} == 0 or ")
    assert "ollama" not in by_name["LLMTargetAbsent"].expr
    absent = {a.name: a for a in alerts.alert_rules(CFG)}["LLMTargetAbsent"].expr
    assert 'absent(up{job="ollama-norskhelsenett", env="dev"})' in absent
    assert 'absent(up{job="ollama-http", env="dev"})' in absent


# ---------------------------------------------------------------------------------------------
# The rendered scrape jobs
# ---------------------------------------------------------------------------------------------


def test_no_ollama_job_without_targets():
    assert not [j for j in prometheus.scrape_jobs(DEV) if j.config["job_name"].startswith("ollama")]
    assert "ollama" not in prometheus.render_prometheus_yml(DEV)


def test_one_job_per_exporter_kind_with_engine_env_instance_and_the_keep_list():
    cfg = configured(["http@ollama-a:9000", "norskhelsenett@gpu1:8080", "http@ollama-b:9000"], "prod")
    doc = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
    jobs = {j["job_name"]: j for j in doc["scrape_configs"] if j["job_name"].startswith("ollama")}
    assert list(jobs) == ["ollama-norskhelsenett", "ollama-http"]
    http_fake = jobs["ollama-http"]
    assert http_fake["static_configs"] == [
        {"targets": ["ollama-a:9000"], "labels": {"instance": "ollama-a"}},
        {"targets": ["ollama-b:9000"], "labels": {"instance": "ollama-b"}},
    ]
    assert http_fake["metrics_path"] == "/metrics"
    # the exporter's own `model` stays: no target model label
    assert {r["target_label"]: r["replacement"] for r in http_fake["relabel_configs"]} == {"engine": "ollama", "env": "prod"}
    for name, job in jobs.items():
        assert kept(job, set(engines.raw_metrics_for_job(cfg, name)) | {"go_goroutines", "ollama_model_loaded"}) == engines.raw_metrics_for_job(cfg, name)


def test_instances_stay_apart_where_targets_share_a_host_and_a_custom_path_is_scraped():
    cfg = configured(["norskhelsenett@gpu1:8080", "norskhelsenett@gpu1:8081/proxy/metrics", "norskhelsenett@gpu1:8080"])
    job = job_config(cfg, "ollama-norskhelsenett")
    # listed twice, scraped once
    assert job["static_configs"] == [
        {"targets": ["gpu1:8080"], "labels": {"instance": "gpu1:8080"}},
        {"targets": ["gpu1:8081"], "labels": {"instance": "gpu1:8081", "__metrics_path__": "/proxy/metrics"}},
    ]


def _write_config(cfg, directory) -> str:
    rules_dir = os.path.join(directory, topology.PROMETHEUS_RULES_SUBDIR)
    os.makedirs(rules_dir, exist_ok=True)
    for name, text in prometheus.render_rule_files(cfg).items():
        with open(os.path.join(rules_dir, name), "w") as fh:
            fh.write(text)
    path = os.path.join(directory, "prometheus.yml")
    with open(path, "w") as fh:
        fh.write(prometheus.render_prometheus_yml(cfg))
    return path


@pytest.mark.parametrize("targets", [TEST_TARGETS, [], ["http@10.0.0.7:9000/custom/metrics"]], ids=["both", "none", "custom-path"])
def test_promtool_check_config_accepts_the_rendered_config(targets, tmp_path):
    done = promtool("check", "config", _write_config(configured(targets), str(tmp_path)))
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# The promtool files: input series shaped like each exporter's output after its job
# ---------------------------------------------------------------------------------------------

FAKES = {exporter: FakeOllamaMetrics(flavour=exporter) for exporter in cfgmod.OLLAMA_EXPORTERS}



@functools.lru_cache(maxsize=1)
def ollama_input_series() -> tuple:
    return input_series(OLLAMA_TEST_FILES, engine="ollama")


def test_there_are_ollama_promtool_files_with_series_of_both_exporters():
    assert [os.path.basename(p) for p in OLLAMA_TEST_FILES] == ["ollama_alerts_test.yaml", "ollama_recording_test.yaml"]
    assert {labels["job"] for _, _, labels in ollama_input_series()} == {"ollama-norskhelsenett", "ollama-http"}


def _family(exporter: str, name: str):
    """The exporter's metric family a stored series belongs to (histograms: name_bucket/_sum/_count)."""
    registry = FAKES[exporter].registry
    families = {f.name for f in registry.families()}
    for suffix in ("", "_bucket", "_sum", "_count"):
        base = name[: len(name) - len(suffix)]
        if name.endswith(suffix) and base in families:
            return registry[base]
    raise AssertionError(f"{exporter} exports no {name}")


def test_ollama_input_series_are_what_the_jobs_store_with_the_jobs_labels():
    produced = prometheus.produced_series(CFG)
    instances = ollama.instances(CFG.prometheus.ollama_targets)
    for group, name, labels in ollama_input_series():
        exporter = labels["job"].removeprefix("ollama-")
        (target,) = [t for t in CFG.prometheus.ollama_targets if t.exporter == exporter]
        expected = {"engine": "ollama", "env": "dev", "instance": instances[target], "job": f"ollama-{exporter}"}
        assert {k: labels.get(k) for k in TARGET_LABELS} == expected, f"{group}: {name}"
        assert prometheus.is_produced(name, produced), f"{group}: {name} would be dropped at scrape time"
        own = set(labels) - set(TARGET_LABELS) - {"le"}
        if name == "up":
            assert own == set(), f"{group}: {labels}"
            continue
        family = _family(exporter, name)
        assert own == set(family.labelnames), f"{group}: {name} has {sorted(own)}, {exporter} exports {family.labelnames}"
        assert ("le" in labels) == name.endswith("_bucket"), f"{group}: {name}"


def test_ollama_histograms_have_exactly_the_exporters_buckets():
    seen: dict = {}
    for group, name, labels in ollama_input_series():
        if name.endswith("_bucket"):
            exporter = labels["job"].removeprefix("ollama-")
            key = (group, exporter, name, tuple(sorted((k, v) for k, v in labels.items() if k != "le")))
            seen.setdefault(key, []).append(float(labels["le"]))
    assert {name for _, _, name, _ in seen} == {
        "ollama_request_duration_seconds_bucket", "ollama_time_per_token_seconds_bucket", "ollama_http_request_duration_seconds_bucket",
    }
    for (group, exporter, name, _), bounds in seen.items():
        expected = list(_family(exporter, name).buckets) + [math.inf]
        assert sorted(bounds) == expected, f"{group}: {name}"


# ---------------------------------------------------------------------------------------------
# Alert parity: every alert an exporter can express fires for it in ollama_alerts_test.yaml
# ---------------------------------------------------------------------------------------------

FIRES_RE = re.compile(r"^(?P<job>ollama-[a-z]+) fires: (?P<alert>\w+) \(onset [0-9a-z]+\): .+$")


def _firing_groups() -> set[tuple[str, str]]:
    found = set()
    for group in load(os.path.join(ROOT, "tests", "promtool", "ollama_alerts_test.yaml"))["tests"]:
        m = FIRES_RE.match(group["name"])
        if not m:
            continue
        jobs = {labels["job"] for s in group["input_series"] for labels in [dict(LABEL_RE.findall(s["series"]))] if labels.get("engine") == "ollama"}
        assert jobs == {m["job"]}, f"{group['name']}: series of {jobs}"
        firing = [c for c in group["alert_rule_test"] if c["alertname"] == m["alert"] and c.get("exp_alerts")]
        assert firing, f"{group['name']} does not expect {m['alert']} to fire"
        for case in firing:
            for alert in case["exp_alerts"]:
                assert alert["exp_labels"]["engine"] == "ollama"
                assert "ollama" in alert["exp_annotations"]["description"], "the text names the engine"
        found.add((m["job"], m["alert"]))
    return found


def test_every_alert_an_ollama_exporter_can_express_fires_for_it():
    expected = {
        (m.job, a.name)
        for m in engines.mappings(CFG)
        if m.engine == "ollama"
        for a in alerts.alert_rules(CFG)
        # the absent alert needs a stack with Ollama targets (test_the_absent_alert_watches_configured_ollama_jobs);
        # the other engine-neutral ones are shown once for every engine
        if alert_can_fire(a, m) and a.name not in ENGINE_NEUTRAL_ALERTS
    }
    assert expected >= {("ollama-http", "LLMHighErrorRatioCritical"), ("ollama-norskhelsenett", "LLMTargetDown")}
    assert ("ollama-norskhelsenett", "LLMHighErrorRatioWarning") not in expected  # no status label
    assert _firing_groups() == expected


def _run_promtool_tests(cfg, tmp_path, tests: dict) -> subprocess.CompletedProcess:
    """`tests` (a promtool test file's content, rule files by base name) against cfg's rules."""
    for name, text in prometheus.render_rule_files(cfg).items():
        (tmp_path / name).write_text(text)
    doc = dict(tests, rule_files=[os.path.basename(f) for f in tests["rule_files"]])
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return promtool("test", "rules", "tests.yaml", cwd=str(tmp_path))


@pytest.mark.parametrize("path", OLLAMA_TEST_FILES, ids=os.path.basename)
def test_the_ollama_promtool_tests_hold_for_a_stack_that_scrapes_ollama(path, tmp_path):
    done = _run_promtool_tests(CFG, tmp_path, load(path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_narrower_endpoint_filter_makes_the_recording_tests_fail(tmp_path):
    """The tests can fail: a mapping that counts native chat requests only misses the /v1/ ones."""
    for name, text in prometheus.render_rule_files(CFG).items():
        broken = text.replace('endpoint=~"chat|embed|embeddings|generate|/v1/.*"', 'endpoint=~"chat"')
        assert name != prometheus.RECORDING_FILE or broken != text
        (tmp_path / name).write_text(broken)
    doc = load(os.path.join(ROOT, "tests", "promtool", "ollama_recording_test.yaml"))
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(dict(doc, rule_files=[prometheus.RECORDING_FILE])))
    done = promtool("test", "rules", "tests.yaml", cwd=str(tmp_path))
    assert done.returncode != 0
    assert "llm:requests:rate5m" in done.stdout + done.stderr


MISTRAL_UP = 'up{engine="mistralrs", env="dev", instance="mistral-inference", job="mistral", model="Qwen/Qwen3-0.6B"}'
PROM_UP = 'up{env="dev", instance="localhost:9090", job="prometheus"}'
NH_UP = 'up{engine="ollama", env="dev", instance="ollama-metrics", job="ollama-norskhelsenett"}'
HTTP_UP = 'up{engine="ollama", env="dev", instance="ollama-proxy", job="ollama-http"}'


def _absent_case(gone: str) -> dict:
    job = {NH_UP: "ollama-norskhelsenett", HTTP_UP: "ollama-http"}[gone]
    return {
        "name": f"{job} fires: LLMTargetAbsent (onset 10m): the {job} target disappears (stale marker)",
        "interval": "15s",
        "input_series": [
            {"series": s, "values": "1x39 stale _x80" if s == gone else "1x120"} for s in (MISTRAL_UP, PROM_UP, NH_UP, HTTP_UP)
        ],
        "alert_rule_test": [
            {
                "alertname": "LLMTargetAbsent",
                "eval_time": "13m",
                "exp_alerts": [{
                    "exp_labels": {"env": "dev", "job": job, "severity": "critical"},
                    "exp_annotations": {
                        "summary": f"Prometheus has no {job} target in dev",
                        "description": f"There has been no up series for the {job} job in dev for 1m: Prometheus is not configured "
                                       "to scrape it, or has had no sample from it for 5 minutes, so nothing about it is monitored.",
                        "runbook_url": f"{cfgmod.load_defaults().alerting.runbook_base_url}#{runbook_anchor('LLMTargetAbsent')}",
                    },
                }],
            },
            # the minute is not over yet
            {"alertname": "LLMTargetAbsent", "eval_time": "10m45s", "exp_alerts": []},
        ],
    }


def test_the_absent_alert_watches_configured_ollama_jobs(tmp_path):
    tests = {
        "rule_files": [prometheus.RECORDING_FILE, prometheus.ALERTS_FILE],
        "evaluation_interval": "15s",
        "tests": [
            _absent_case(NH_UP),
            _absent_case(HTTP_UP),
            {
                "name": "healthy: every configured target is there",
                "interval": "15s",
                "input_series": [{"series": s, "values": "1x80"} for s in (MISTRAL_UP, PROM_UP, NH_UP, HTTP_UP)],
                "alert_rule_test": [{"alertname": "LLMTargetAbsent", "eval_time": "20m", "exp_alerts": []}],
            },
        ],
    }
    done = _run_promtool_tests(CFG, tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr
    # and the same loss goes unnoticed by a stack whose config has no Ollama target: it never watched it
    quiet = dict(tests, tests=[dict(_absent_case(HTTP_UP), alert_rule_test=[{"alertname": "LLMTargetAbsent", "eval_time": "13m", "exp_alerts": []}])])
    done = _run_promtool_tests(DEV, tmp_path, quiet)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# The program under mocks
# ---------------------------------------------------------------------------------------------


def _uploaded_config(rec) -> dict:
    container = rec.one("docker:index/container:Container", "prometheus-container").inputs
    uploads = {u["file"]: u["content"] for u in container["uploads"]}
    return uploads


def test_mocks_upload_the_ollama_job_when_configured():
    overrides = {"ollamaTargets": ["http@ollama-exporter:9000"]}
    uploads = _uploaded_config(run_stack("dev", overrides))
    doc = yaml.safe_load(uploads[topology.PROMETHEUS_CONFIG_FILE])
    (job,) = [j for j in doc["scrape_configs"] if j["job_name"].startswith("ollama")]
    assert job["job_name"] == "ollama-http"
    assert job["static_configs"] == [{"targets": ["ollama-exporter:9000"], "labels": {"instance": "ollama-exporter"}}]
    cfg = configured(overrides["ollamaTargets"])
    assert uploads[topology.PROMETHEUS_CONFIG_FILE] == prometheus.render_prometheus_yml(cfg)
    alerts = uploads[f"{topology.PROMETHEUS_CONFIG_DIR}/{topology.PROMETHEUS_RULES_SUBDIR}/{prometheus.ALERTS_FILE}"]
    assert 'absent(up{job="ollama-http", env="dev"})' in alerts
    assert 'absent(up{job="ollama-norskhelsenett"' not in alerts


def test_mocks_upload_no_ollama_job_by_default():
    doc = yaml.safe_load(_uploaded_config(run_stack("dev"))[topology.PROMETHEUS_CONFIG_FILE])
    assert [j["job_name"] for j in doc["scrape_configs"] if j["job_name"].startswith("ollama")] == []


# ---------------------------------------------------------------------------------------------
# A real Prometheus (Debian's 2.42, on loopback) scraping the exporter fakes with the rendered jobs
# ---------------------------------------------------------------------------------------------


class FakeAtCustomPath(FakeOllamaMetrics):
    """An exporter behind a path prefix, as `EXPORTER@HOST:PORT/PATH` configures."""

    PATH = "/ollama/metrics"

    def _routes(self):
        return {self.PATH: self._metrics_response}


def test_a_real_prometheus_scrapes_both_exporters_as_rendered(tmp_path):
    http_fake = FakeOllamaMetrics(flavour="http")
    nh = FakeAtCustomPath(flavour="norskhelsenett")
    server = None
    try:
        for fake in (http_fake, nh):
            fake.start()
            fake.set_scenario("healthy")
            fake.run_clock(0.25, max_ticks=2000)
        cfg = configured(
            [f"http@127.0.0.1:{http_fake.port}", f"norskhelsenett@127.0.0.1:{nh.port}{FakeAtCustomPath.PATH}"],
            scrapeInterval="1s", scrapeTimeout="1s", evaluationInterval="1s",
        )
        path = _write_config(cfg, str(tmp_path))
        # Only the Ollama jobs: the others' in-network targets do not exist here.
        with open(path) as fh:
            doc = yaml.safe_load(fh)
        doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"].startswith("ollama")]
        with open(path, "w") as fh:
            yaml.safe_dump(doc, fh)
        server = PrometheusServer(path, str(tmp_path / "data"), str(tmp_path / "prometheus.log"))
        server.start()

        def targets_up():
            found = {t["labels"]["job"]: t for t in server.targets()}
            return found if len(found) == 2 and all(t["health"] == "up" for t in found.values()) else None

        targets = wait_until(targets_up, timeout=60, what="both Ollama targets up")
        assert targets["ollama-norskhelsenett"]["scrapeUrl"] == f"http://127.0.0.1:{nh.port}{FakeAtCustomPath.PATH}"
        for job, fake in (("ollama-http", http_fake), ("ollama-norskhelsenett", nh)):
            labels = targets[job]["labels"]
            # both on 127.0.0.1, so host:port tells them apart
            assert {k: labels[k] for k in TARGET_LABELS} == {"engine": "ollama", "env": "dev", "instance": f"127.0.0.1:{fake.port}", "job": job}

        def records():
            found = server.query('llm:requests:rate5m{engine="ollama"} > 0')
            return found if len(found) == 2 else None

        found = wait_until(records, timeout=90, what="llm:requests:rate5m for both exporters")
        assert {r["metric"]["model"] for r in found} == {"llama3.2:3b"}
        assert server.query("rate(ollama_http_requests_total[5m]) > 0"), "the comparison dashboard's request-rate query, as written against raw series"
        for job in ("ollama-http", "ollama-norskhelsenett"):
            stored = {r["metric"]["__name__"] for r in server.query(f'group by (__name__) ({{job="{job}"}})')}
            builtin = {n for n in stored if n == "up" or n.startswith("scrape_")}
            assert stored - builtin == engines.raw_metrics_for_job(cfg, job), job
    finally:
        if server is not None:
            server.stop()
        for fake in (http_fake, nh):
            fake.close()
