"""vLLM in the shared schema: the mapping, the scrape job, the promtool tests, a real Prometheus.

tests/promtool/vllm_test.yaml runs in tests/test_promtool.py against the dev stack's rules like every
other file. This module checks what that cannot: that the mapping records exactly the signals vLLM's
metrics carry, that the vllm job keeps exactly what the rules read from the fake's real exposition
(for each upstream shape the fake serves), that the promtool file's input series look exactly like
vLLM's output after that job (dev scrapes no vLLM), that every alert vLLM's records can raise fires
there, that the rendered rules of a stack with a vLLM target pass promtool, and that a real
Prometheus scraping the fake with the rendered job and rules records every signal.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmstack import alerts, config as cfgmod, engines, prometheus, signals, topology
from llmstack.alerts.base import runbook_anchor
from llmstack.engines import vllm
from tests.harness import ENGINE_NEUTRAL_ALERTS
from tests.promtool_inputs import input_series, load
from tests.integration.fakes.vllm import UPSTREAMS, FakeVllm
from tests.integration.promserver import PrometheusServer, wait_until
from tools.docs import alert_can_fire

PROMTOOL = shutil.which("promtool")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILE = os.path.join(ROOT, "tests", "promtool", "vllm_test.yaml")
MODEL = "Qwen/Qwen3-0.6B"
# The stack the promtool file's input series are shaped for (see its header).
TEST_TARGET = f"{MODEL}@vllm-server:8000"
TARGET_LABELS = {"engine": "vllm", "env": "dev", "instance": "vllm-server", "job": "vllm", "model": MODEL}


def configured(*targets: str, env: str = "dev", **overrides) -> cfgmod.StackConfig:
    return cfgmod.load_defaults(env, vllmTargets=json.dumps(list(targets)), **overrides)


CFG = configured(TEST_TARGET)
DEV = cfgmod.load_defaults("dev")


def promtool(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def job_config(cfg) -> dict:
    (job,) = [j.config for j in prometheus.scrape_jobs(cfg) if j.config["job_name"] == vllm.JOB]
    return job


def kept(job: dict, names: set[str]) -> set[str]:
    """What the job's metric relabelling keeps of `names`: the colon rename (a no-op on names that
    have their colon), then the keep on __name__ (RE2 is anchored, hence fullmatch)."""
    rename, keep = job["metric_relabel_configs"]
    assert rename["regex"] == "vllm_(.+)" and rename["replacement"] == "vllm:${1}"
    assert keep["action"] == "keep" and keep["source_labels"] == ["__name__"]
    renamed = {("vllm:" + n[len("vllm_"):]) if n.startswith("vllm_") else n for n in names}
    return {n for n in renamed if re.fullmatch(keep["regex"], n)}


def test_names_escaped_to_underscores_are_stored_with_their_colon():
    job = job_config(CFG)
    assert kept(job, {"vllm_num_requests_running"}) == {"vllm:num_requests_running"}


def exposed(fake: FakeVllm) -> dict[str, dict]:
    """Every sample name of the fake's /metrics, as prometheus_client's parser reads it, with the
    label names it carries."""
    out: dict[str, set] = {}
    for family in text_string_to_metric_families(fake.exposition()):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(k for k in sample.labels if k != "le")
    return out


def busy_fake(upstream: str, scenario: str = "healthy", **kwargs) -> FakeVllm:
    fake = FakeVllm(upstream=upstream, **kwargs)
    fake.set_scenario(scenario)
    fake.advance(60)
    return fake


# ---------------------------------------------------------------------------------------------
# The mapping: what vLLM really has, and only that
# ---------------------------------------------------------------------------------------------

EXPECTED_SIGNALS = {
    signals.REQUESTS_RATE, signals.ERRORS_RATE, signals.ERROR_RATIO, signals.ERROR_RATIO_1M,
    signals.LATENCY_AVG, signals.LATENCY_P50, signals.LATENCY_P95, signals.LATENCY_P99, signals.LATENCY_P95_1M,
    signals.TTFT_P95, signals.TTFT_P95_1M, signals.ITL_P95,
    signals.TOKENS_PROCESSED_RATE, signals.TOKENS_GENERATED_RATE,
    signals.QUEUE_DEPTH, signals.RUNNING, signals.KV_CACHE_UTILISATION, signals.PREEMPTIONS_RATE,
    signals.PREEMPTIONS_RATE_1M, signals.PREFIX_CACHE_HIT_RATIO, signals.RESTARTS,
    signals.SLO_LATENCY_REQUESTS_RATE, signals.SLO_LATENCY_SLOW_RATE,
}
# No in-flight gauge (the instrumentator runs without it) and no exported --max-num-seqs.
CANNOT = {signals.IN_FLIGHT, signals.CAPACITY}


def test_the_mapping_records_exactly_the_signals_vllm_has():
    (m,) = vllm.mappings(CFG)
    assert (m.name, m.job, m.engine) == ("vllm", "vllm", "vllm")
    assert set(m.signals) == EXPECTED_SIGNALS
    assert not CANNOT & set(m.signals)
    assert set(m.caveats) <= set(m.signals), "a caveat for a signal that is not recorded"
    assert m.enabled(CFG) and not m.enabled(DEV)


def test_every_selector_names_the_job_and_every_record_keeps_the_schema_labels():
    (m,) = vllm.mappings(CFG)
    for signal, expr in m.signals.items():
        selectors = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}", expr)
        assert selectors, signal.name
        for selector in selectors:
            assert 'job="vllm"' in selector, selector
        for grouping in re.findall(r"\b(?:sum|avg) by \(([^)]*)\)", expr):
            assert [g.strip() for g in grouping.split(",") if g.strip() != "le"] == list(signals.SCHEMA_LABELS), expr


def test_renamed_metrics_are_read_under_both_names():
    (m,) = vllm.mappings(CFG)
    assert {
        "vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc",
        "vllm:inter_token_latency_seconds_bucket", "vllm:time_per_output_token_seconds_bucket",
        "vllm:prefix_cache_hits_total", "vllm:gpu_prefix_cache_hits_total",
    } <= m.raw_metrics


# ---------------------------------------------------------------------------------------------
# The scrape job
# ---------------------------------------------------------------------------------------------


def test_no_vllm_job_without_targets():
    assert vllm.scrape_jobs(DEV) == []
    assert "job_name: vllm" not in prometheus.render_prometheus_yml(DEV)


def test_the_job_labels_each_target_with_its_instance_and_model():
    cfg = configured("m1@gpu1:8000", "m2@gpu1:8001/vllm/metrics", "m3@gpu2:8000", "m1@gpu1:8000", env="prod")
    doc = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
    (job,) = [j for j in doc["scrape_configs"] if j["job_name"] == "vllm"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [  # listed twice, scraped once; two on one host keep their port
        {"targets": ["gpu1:8000"], "labels": {"instance": "gpu1:8000", "model": "m1"}},
        {"targets": ["gpu1:8001"], "labels": {"instance": "gpu1:8001", "model": "m2", "__metrics_path__": "/vllm/metrics"}},
        {"targets": ["gpu2:8000"], "labels": {"instance": "gpu2", "model": "m3"}},
    ]
    # the target's engine wins over vLLM's own `engine` label (the engine core, kept as exported_engine)
    assert {r["target_label"]: r["replacement"] for r in job["relabel_configs"]} == {"engine": "vllm", "env": "prod"}


@pytest.mark.parametrize("upstream", UPSTREAMS)
def test_the_job_keeps_only_what_the_rules_read_from_real_vllm_output(upstream):
    names = exposed(busy_fake(upstream))
    stored = kept(job_config(CFG), set(names))
    (m,) = vllm.mappings(CFG)
    assert stored <= m.raw_metrics
    # dropped: the runtime families, the _created gauges, and every vllm:* the rules do not read
    assert {"process_cpu_seconds_total", "python_info", "vllm:prompt_tokens_created", "http_request_duration_seconds_bucket",
            "vllm:request_queue_time_seconds_bucket", "vllm:time_to_first_token_seconds_sum"} <= set(names) - stored
    # the names each release lacks are the renamed ones the `or`s fall back to
    missing = m.raw_metrics - stored
    assert missing == {
        "0.33.0": {"vllm:gpu_cache_usage_perc", "vllm:gpu_prefix_cache_queries_total", "vllm:gpu_prefix_cache_hits_total",
                   "vllm:time_per_output_token_seconds_bucket"},
        "0.10.1.1": {"vllm:inter_token_latency_seconds_bucket"},
        "0.8.5.post1": {"vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total",
                        "vllm:inter_token_latency_seconds_bucket"},
    }[upstream]


def test_across_the_releases_the_job_keeps_exactly_what_the_rules_read():
    names = set().union(*(exposed(busy_fake(u, "error_burst")) for u in UPSTREAMS))
    (m,) = vllm.mappings(CFG)
    assert kept(job_config(CFG), names) == m.raw_metrics


def test_the_fake_labels_its_series_as_vllm_does():
    names = exposed(busy_fake("0.33.0", data_parallel_size=2))
    assert names["vllm:num_requests_waiting"] == {"model_name", "engine"}
    assert names["vllm:request_success_total"] == {"model_name", "engine", "finished_reason"}
    assert names["vllm:admission_rejections_total"] == {"model_name", "reason"}
    assert names["http_requests_total"] == {"handler", "method", "status"}
    fake = busy_fake("0.33.0", "error_burst", data_parallel_size=2)
    samples = [s for f in text_string_to_metric_families(fake.exposition()) for s in f.samples]
    statuses = {s.labels["status"] for s in samples if s.name == "http_requests_total"}
    assert statuses == {"2xx", "5xx"}  # grouped, as the instrumentator does by default
    cores = {s.labels["engine"] for s in samples if s.name == "vllm:num_requests_running"}
    assert cores == {"0", "1"}


# ---------------------------------------------------------------------------------------------
# The promtool file: input series shaped like vLLM's output after the job
# ---------------------------------------------------------------------------------------------

FAKES = {u: FakeVllm(upstream=u) for u in UPSTREAMS}



@functools.lru_cache(maxsize=1)
def vllm_input_series() -> tuple:
    return input_series([TEST_FILE], engine="vllm")


def _family(name: str):
    """The fake's metric family a stored series belongs to, in any release that has it."""
    for fake in FAKES.values():
        families = {f.name: f for f in fake.registry.families()}
        for suffix in ("", "_bucket", "_sum", "_count"):
            base = name[: len(name) - len(suffix)] if suffix else name
            if name.endswith(suffix) and base in families:
                return families[base]
    raise AssertionError(f"vLLM exports no {name}")


def test_the_promtool_file_loads_the_dev_rules():
    doc = load(TEST_FILE)
    assert doc["rule_files"] == ["../../assets/prometheus/dev/rules/llm-recording.yml", "../../assets/prometheus/dev/rules/llm-alerts.yml"]
    assert not [g["name"] for g in doc["tests"] if g["name"].startswith("fires:")], "the canonical fires: groups are mistral.rs's"


def test_input_series_are_what_the_job_stores_with_the_jobs_labels():
    produced = prometheus.produced_series(CFG)
    assert vllm_input_series()
    for group, name, labels in vllm_input_series():
        assert {k: labels.get(k) for k in TARGET_LABELS} == TARGET_LABELS, f"{group}: {name}"
        assert prometheus.is_produced(name, produced), f"{group}: {name} would be dropped at scrape time"
        own = set(labels) - set(TARGET_LABELS) - {"le"}
        if name == "up":
            assert own == set(), f"{group}: {labels}"
            continue
        family = _family(name)
        # vLLM's `engine` label is stored as exported_engine, under the target's engine="vllm"
        exported = {"engine" if k == "exported_engine" else k for k in own}
        assert exported == set(family.labelnames), f"{group}: {name} has {sorted(own)}, vLLM exports {family.labelnames}"
        assert ("le" in labels) == name.endswith("_bucket"), f"{group}: {name}"
        if name.startswith("http_"):
            assert labels["status"] in ("2xx", "4xx", "5xx"), f"{group}: statuses are grouped"
        else:
            assert labels["model_name"] == MODEL


def test_histograms_have_exactly_vllms_buckets():
    seen: dict = {}
    for group, name, labels in vllm_input_series():
        if name.endswith("_bucket"):
            key = (group, name, tuple(sorted((k, v) for k, v in labels.items() if k != "le")))
            seen.setdefault(key, []).append(float(labels["le"]))
    assert {name for _, name, _ in seen} == {
        "vllm:e2e_request_latency_seconds_bucket", "vllm:time_to_first_token_seconds_bucket",
        "vllm:inter_token_latency_seconds_bucket", "vllm:time_per_output_token_seconds_bucket",
    }
    for (group, name, _), bounds in seen.items():
        assert sorted(bounds) == list(_family(name).buckets) + [math.inf], f"{group}: {name}"


# ---------------------------------------------------------------------------------------------
# Alert parity: every alert vLLM's records can raise fires for it in vllm_test.yaml
# ---------------------------------------------------------------------------------------------

FIRES_RE = re.compile(r"^vllm: (?P<alert>\w+) fires on .+ \(onset [0-9a-z]+\)$")


def test_every_alert_vllm_can_raise_fires_for_it():
    (m,) = vllm.mappings(CFG)
    expected = {
        a.name for a in alerts.alert_rules(CFG)
        # the absent alert needs a stack with a vLLM target (test_the_absent_alert_watches_a_configured_vllm_job);
        # the other engine-neutral ones are shown once for every engine
        if alert_can_fire(a, m) and a.name not in ENGINE_NEUTRAL_ALERTS
    }
    assert {"LLMHighRequestLatencyCritical", "LLMHighErrorRatioCritical", "LLMKVCacheExhaustionCritical", "LLMTargetDown"} <= expected
    assert "LLMQueueSaturated" not in expected  # no capacity record
    found = set()
    for group in load(TEST_FILE)["tests"]:
        match = FIRES_RE.match(group["name"])
        if not match:
            continue
        firing = [c for c in group["alert_rule_test"] if c["alertname"] == match["alert"] and c.get("exp_alerts")]
        assert firing, f"{group['name']} does not expect {match['alert']} to fire"
        for case in firing:
            for alert in case["exp_alerts"]:
                assert alert["exp_labels"]["engine"] == "vllm"
                assert "vllm" in alert["exp_annotations"]["description"], "the text names the engine"
        found.add(match["alert"])
    assert found == expected


# ---------------------------------------------------------------------------------------------
# promtool on the rules of a stack that scrapes vLLM
# ---------------------------------------------------------------------------------------------


def _write_rules(cfg, directory) -> dict[str, str]:
    files = prometheus.render_rule_files(cfg)
    for name, text in files.items():
        (directory / name).write_text(text)
    return files


def test_promtool_check_rules_accepts_the_rules_of_a_stack_with_vllm(tmp_path):
    files = _write_rules(CFG, tmp_path)
    assert "llm-schema-vllm" in files[prometheus.RECORDING_FILE]
    assert 'absent(up{job="vllm", env="dev"})' in files[prometheus.ALERTS_FILE]
    for name in files:
        done = promtool("check", "rules", str(tmp_path / name))
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"


def test_promtool_check_config_accepts_the_rendered_config(tmp_path):
    rules_dir = tmp_path / topology.PROMETHEUS_RULES_SUBDIR
    rules_dir.mkdir()
    _write_rules(CFG, rules_dir)
    (tmp_path / "prometheus.yml").write_text(prometheus.render_prometheus_yml(CFG))
    done = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def _run_promtool_tests(cfg, tmp_path, tests: dict) -> subprocess.CompletedProcess:
    """`tests` (a promtool test file's content, rule files by base name) against cfg's rules."""
    _write_rules(cfg, tmp_path)
    doc = dict(tests, rule_files=[os.path.basename(f) for f in tests["rule_files"]])
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return promtool("test", "rules", "tests.yaml", cwd=str(tmp_path))


def test_the_vllm_promtool_tests_pass_against_the_rules_of_a_stack_with_vllm(tmp_path):
    done = _run_promtool_tests(CFG, tmp_path, load(TEST_FILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_reading_only_the_new_names_makes_the_recording_tests_fail(tmp_path):
    """The tests can fail: without the fallback to the pre-0.9 KV-cache gauge, v0.8.5 records none."""
    files = prometheus.render_rule_files(CFG)
    text = files[prometheus.RECORDING_FILE]
    fallback = ' or avg by (engine, env, instance, model) (vllm:gpu_cache_usage_perc{job="vllm"})'
    assert fallback in text
    (tmp_path / prometheus.RECORDING_FILE).write_text(text.replace(fallback, ""))
    (tmp_path / prometheus.ALERTS_FILE).write_text(files[prometheus.ALERTS_FILE])
    doc = load(TEST_FILE)
    doc["rule_files"] = [prometheus.RECORDING_FILE, prometheus.ALERTS_FILE]
    doc["tests"] = [g for g in doc["tests"] if "v0.8.5" in g["name"]]
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    done = promtool("test", "rules", "tests.yaml", cwd=str(tmp_path))
    assert done.returncode != 0
    assert "llm:kv_cache_utilisation:ratio" in done.stdout + done.stderr


VLLM_UP = 'up{engine="vllm", env="dev", instance="vllm-server", job="vllm", model="Qwen/Qwen3-0.6B"}'
MISTRAL_UP = 'up{engine="mistralrs", env="dev", instance="mistral-inference", job="mistral", model="Qwen/Qwen3-0.6B"}'
PROM_UP = 'up{env="dev", instance="localhost:9090", job="prometheus"}'


def test_the_absent_alert_watches_a_configured_vllm_job(tmp_path):
    gone = {
        "name": "vllm: LLMTargetAbsent fires on the vllm target disappearing (onset 10m)",
        "interval": "15s",
        "input_series": [{"series": s, "values": "1x39 stale _x80" if s == VLLM_UP else "1x120"} for s in (VLLM_UP, MISTRAL_UP, PROM_UP)],
        "alert_rule_test": [
            {
                "alertname": "LLMTargetAbsent",
                "eval_time": "13m",
                "exp_alerts": [{
                    "exp_labels": {"env": "dev", "job": "vllm", "severity": "critical"},
                    "exp_annotations": {
                        "summary": "Prometheus has no vllm target in dev",
                        "description": "There has been no up series for the vllm job in dev for 1m: Prometheus is not configured "
                                       "to scrape it, or has had no sample from it for 5 minutes, so nothing about it is monitored.",
                        "runbook_url": f"{CFG.alerting.runbook_base_url}#{runbook_anchor('LLMTargetAbsent')}",
                    },
                }],
            },
            {"alertname": "LLMTargetAbsent", "eval_time": "10m45s", "exp_alerts": []},  # the minute is not over yet
        ],
    }
    tests = {"rule_files": [prometheus.RECORDING_FILE, prometheus.ALERTS_FILE], "evaluation_interval": "15s", "tests": [gone]}
    done = _run_promtool_tests(CFG, tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr
    # a stack without a vLLM target never watched it
    quiet = dict(tests, tests=[dict(gone, alert_rule_test=[{"alertname": "LLMTargetAbsent", "eval_time": "13m", "exp_alerts": []}])])
    done = _run_promtool_tests(DEV, tmp_path, quiet)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# A real Prometheus (Debian's 2.42, on loopback) scraping the fake with the rendered job and rules
# ---------------------------------------------------------------------------------------------


class FakeAtCustomPath(FakeVllm):
    """A vLLM behind a path prefix, as `MODEL@HOST:PORT/PATH` configures."""

    PATH = "/vllm/metrics"

    def _routes(self):
        return {self.PATH: self._metrics_response}


def test_a_real_prometheus_records_every_vllm_signal_from_the_fake(tmp_path):
    """The latest release with two engine cores, and v0.8.5.post1 (the pre-0.9 names) behind a path
    prefix: one job, two targets, and every record the mapping has for each."""
    latest = FakeVllm(model=MODEL, upstream="0.33.0", data_parallel_size=2)
    old = FakeAtCustomPath(model="Qwen/Qwen2.5-0.5B-Instruct", upstream="0.8.5.post1")
    fakes = {"0.33.0": latest, "0.8.5.post1": old}
    server = None
    try:
        for fake in fakes.values():
            fake.start()
            fake.set_scenario("healthy")
            fake.advance(30)  # traffic before the first scrape, so every series exists
            fake.run_clock(0.25, max_ticks=2400)
        cfg = configured(
            f"{MODEL}@127.0.0.1:{latest.port}", f"{old.model}@127.0.0.1:{old.port}{FakeAtCustomPath.PATH}",
            scrapeInterval="1s", scrapeTimeout="1s", evaluationInterval="1s",
        )
        rules_dir = tmp_path / topology.PROMETHEUS_RULES_SUBDIR
        rules_dir.mkdir()
        _write_rules(cfg, rules_dir)
        doc = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
        # Only the vllm job, as rendered: the other jobs' in-network targets do not exist here.
        doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"] == vllm.JOB]
        assert doc["scrape_configs"] == [job_config(cfg)]
        doc.pop("alerting", None)
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(doc))
        server = PrometheusServer(str(tmp_path / "prometheus.yml"), str(tmp_path / "data"), str(tmp_path / "prometheus.log"))
        server.start()

        def targets_up():
            found = [t for t in server.targets() if t["labels"].get("job") == vllm.JOB]
            return found if len(found) == 2 and all(t["health"] == "up" for t in found) else None

        targets = {t["labels"]["instance"]: t for t in wait_until(targets_up, timeout=60, what="both vllm targets up")}
        instances = {u: f"127.0.0.1:{f.port}" for u, f in fakes.items()}
        assert set(targets) == set(instances.values())
        assert targets[instances["0.8.5.post1"]]["scrapeUrl"] == f"http://127.0.0.1:{old.port}{FakeAtCustomPath.PATH}"
        for upstream, fake in fakes.items():
            labels = targets[instances[upstream]]["labels"]
            assert {k: labels[k] for k in ("engine", "env", "job", "model")} == {"engine": "vllm", "env": "dev", "job": "vllm", "model": fake.model}

        (m,) = vllm.mappings(cfg)

        def all_records():
            missing = []
            for signal in m.signals:
                got = {r["metric"].get("instance") for r in server.query(f'{signal.name}{{engine="vllm"}}')}
                missing += [f"{signal.name} for {u}" for u, i in instances.items() if i not in got]
            return not missing or None

        try:
            wait_until(all_records, timeout=120, what="every vllm record for both targets")
        except TimeoutError:
            raise AssertionError(f"{all_records() or ''}\n{server.log_tail()}")

        # vLLM's engine index is stored as exported_engine; the records sum the cores, and average the KV share
        cores = server.query(f'count by (exported_engine) (vllm:num_requests_running{{instance="{instances["0.33.0"]}"}})')
        assert {r["metric"]["exported_engine"] for r in cores} == {"0", "1"}
        running = server.query(f'llm:sequences_running{{instance="{instances["0.33.0"]}"}}')
        assert [float(r["value"][1]) for r in running] == [2 * FakeVllm.SHAPES["healthy"].running]
        kv = server.query(f'llm:kv_cache_utilisation:ratio{{instance="{instances["0.33.0"]}"}}')
        assert [float(r["value"][1]) for r in kv] == [FakeVllm.SHAPES["healthy"].kv_usage]
        rate = server.query(f'llm:requests:rate5m{{instance="{instances["0.33.0"]}"}}')
        assert rate and {r["metric"]["model"] for r in rate} == {MODEL}
        # what is stored is what the rules read of each release, and nothing else
        for upstream, fake in fakes.items():
            stored = {r["metric"]["__name__"] for r in server.query(f'group by (__name__) ({{job="vllm", instance="{instances[upstream]}"}})')}
            builtin = {n for n in stored if n == "up" or n.startswith("scrape_")}
            assert stored - builtin == kept(job_config(cfg), set(exposed(fake))), upstream
    finally:
        if server is not None:
            server.stop()
        for fake in fakes.values():
            fake.close()
