"""llama.cpp's llama-server in the shared schema: the mapping, the scrape job, the fake, the promtool
tests and a real Prometheus.

tests/promtool/llamacpp_test.yaml runs in tests/test_promtool.py against the dev stack's rules like
every other file. This module checks what that cannot: that its input series are exactly what the
llamacpp job stores for a stack that scrapes llama.cpp (dev scrapes none), that the job keeps exactly
what the rules read from the fake's exposition, the rules of such a stack in promtool, and the
rendered job and rules in Debian's Prometheus scraping the fake.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmstack import alerts, config as cfgmod, engines, prometheus, signals, topology
from llmstack.alerts.base import runbook_anchor
from llmstack.engines import llamacpp
from tests.promtool_inputs import input_series, load
from tests.harness import run_stack
from tests.integration.fakes.llamacpp import COUNTERS, GAUGES, SCENARIOS, UNSUFFIXED_COUNTERS, FakeLlamaCpp, round6
from tests.integration.promserver import PrometheusServer, wait_until
from tools.docs import alert_can_fire

PROMTOOL = shutil.which("promtool")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILE = os.path.join(ROOT, "tests", "promtool", "llamacpp_test.yaml")
MODEL = "Qwen/Qwen2.5-0.5B-Instruct-GGUF"
# The stack the promtool file's input series are shaped for (see its header comment), plus the two
# servers on one host of its third group.
TEST_TARGETS = [
    f"{MODEL}@llama-server:8080",
    f"{MODEL}@gpu1:8080",
    "bartowski/Llama-3.2-1B-Instruct-GGUF@gpu1:8081",
]
TARGET_LABELS = ("engine", "env", "instance", "job", "model")


def configured(targets, env: str = "dev", **overrides) -> cfgmod.StackConfig:
    return cfgmod.load_defaults(env, llamacppTargets=json.dumps(targets), **overrides)


CFG = configured(TEST_TARGETS)
DEV = cfgmod.load_defaults("dev")


def promtool(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def job_config(cfg) -> dict:
    (job,) = [j.config for j in prometheus.scrape_jobs(cfg) if j.config["job_name"] == llamacpp.JOB]
    return job


def parsed(text: str) -> dict[str, tuple[str, str, list]]:
    """Sample name -> (family type, HELP, samples) of an exposition, as prometheus_client parses it."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            entry = out.setdefault(sample.name, (family.type, family.documentation, []))
            entry[2].append(sample)
    return out


def kept(job: dict, names: set[str]) -> set[str]:
    """What the job's metric relabelling keeps of `names` (one keep rule on __name__; RE2 anchors it)."""
    (keep,) = job["metric_relabel_configs"]
    assert keep["action"] == "keep" and keep["source_labels"] == ["__name__"]
    return {n for n in names if re.fullmatch(keep["regex"], n)}


# ---------------------------------------------------------------------------------------------
# The mapping: what llama-server exports, and only that
# ---------------------------------------------------------------------------------------------

# llama-server has token counters, slot and deferred-task gauges and a cached-prompt-token counter; no
# request counter, status, histogram, slot count, KV-cache gauge or preemption.
EXPECTED_SIGNALS = {
    signals.TOKENS_PROCESSED_RATE,
    signals.TOKENS_GENERATED_RATE,
    signals.IN_FLIGHT,
    signals.QUEUE_DEPTH,
    signals.RUNNING,
    signals.PREFIX_CACHE_HIT_RATIO,
}


def test_the_mapping_maps_exactly_the_signals_llama_server_exports():
    (m,) = llamacpp.mappings(CFG)
    assert set(m.signals) == EXPECTED_SIGNALS
    assert (m.name, m.job, m.engine) == ("llamacpp", "llamacpp", "llamacpp")
    # every signal that means something a little different here says so
    assert set(m.caveats) == EXPECTED_SIGNALS


def test_every_selector_names_the_job_and_every_record_sums_by_the_schema_labels():
    (m,) = llamacpp.mappings(CFG)
    for signal, expr in m.signals.items():
        selectors = re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}", expr)
        assert selectors, signal.name
        for selector in selectors:
            assert 'job="llamacpp"' in selector, selector
        # each raw selector sits inside a sum by the schema labels
        assert expr.count(f"sum by ({signals.BY})") == len(selectors), signal.name
    assert m.raw_metrics == {
        "llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total", "llamacpp:tokens_predicted_total",
        "llamacpp:requests_processing", "llamacpp:requests_deferred",
    }


def test_the_mapping_is_enabled_only_with_targets_and_the_down_alert_watches_its_job_anyway():
    (m,) = llamacpp.mappings(CFG)
    assert m.enabled(CFG) and not m.enabled(DEV)
    by_name = {a.name: a for a in alerts.alert_rules(DEV)}
    assert re.search(r'up\{job=~"[^"]*\bllamacpp\b', by_name["LLMTargetDown"].expr)
    assert "llamacpp" not in by_name["LLMTargetAbsent"].expr
    assert 'absent(up{job="llamacpp", env="dev"})' in {a.name: a for a in alerts.alert_rules(CFG)}["LLMTargetAbsent"].expr


def test_only_the_target_alerts_can_fire_for_llamacpp():
    (m,) = llamacpp.mappings(CFG)
    can_fire = {a.name for a in alerts.alert_rules(CFG) if alert_can_fire(a, m)}
    # no latency, TTFT, error, capacity (so no queue alert), KV-cache or preemption record
    assert can_fire == {"LLMTargetDown", "LLMTargetAbsent", "LLMTargetFlapping", "LLMFleetReplicasDown"}


# ---------------------------------------------------------------------------------------------
# The scrape job
# ---------------------------------------------------------------------------------------------


def test_no_llamacpp_job_without_targets():
    assert llamacpp.scrape_jobs(DEV) == []
    assert "llamacpp" not in yaml.safe_load(prometheus.render_prometheus_yml(DEV))["scrape_configs"].__repr__()


def test_the_job_labels_every_target_with_its_instance_and_model():
    cfg = configured(TEST_TARGETS + [f"{MODEL}@llama-server:8080", f"{MODEL}@10.0.0.7:9000/llama/metrics"], "prod")
    job = job_config(cfg)
    assert job["metrics_path"] == "/metrics"
    # listed twice, scraped once; host:port where two targets share a host; a path of its own
    assert job["static_configs"] == [
        {"targets": ["llama-server:8080"], "labels": {"instance": "llama-server", "model": MODEL}},
        {"targets": ["gpu1:8080"], "labels": {"instance": "gpu1:8080", "model": MODEL}},
        {"targets": ["gpu1:8081"], "labels": {"instance": "gpu1:8081", "model": "bartowski/Llama-3.2-1B-Instruct-GGUF"}},
        {"targets": ["10.0.0.7:9000"], "labels": {"instance": "10.0.0.7", "model": MODEL, "__metrics_path__": "/llama/metrics"}},
    ]
    assert {r["target_label"]: r["replacement"] for r in job["relabel_configs"]} == {"engine": "llamacpp", "env": "prod"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_the_job_keeps_exactly_what_the_rules_read_from_the_fakes_exposition(scenario):
    fake = FakeLlamaCpp()
    fake.set_scenario(scenario)
    fake.advance(60)
    exposed = set(parsed(fake.exposition()))
    (m,) = llamacpp.mappings(CFG)
    stored = kept(job_config(CFG), exposed)
    assert stored == m.raw_metrics
    assert {"llamacpp:n_tokens_max", "llamacpp:prompt_seconds_total", "llamacpp:n_busy_slots_per_decode"} <= exposed - stored


# ---------------------------------------------------------------------------------------------
# The fake: upstream's families, types, HELP, (no) labels and value format
# ---------------------------------------------------------------------------------------------


def test_the_fake_serves_every_upstream_family_from_the_start_without_labels():
    fake = FakeLlamaCpp()
    fake.set_scenario("idle")  # a server that has seen no request yet
    families = parsed(fake.exposition())
    expected = {name: ("counter", help_text) for name, help_text in COUNTERS}
    expected.update({name: ("gauge", help_text) for name, help_text in GAUGES})
    assert set(families) == set(expected)
    for name, (mtype, help_text, samples) in families.items():
        if name in UNSUFFIXED_COUNTERS:
            # served under `# TYPE llamacpp:n_tokens_max_total counter`, which the parser cannot pair with it
            assert "# TYPE llamacpp:n_tokens_max_total counter" in fake.exposition()
        else:
            assert (mtype, help_text) == expected[name], name
        assert [s.labels for s in samples] == [{}], name
        assert [s.value for s in samples] == [0.0], name


def test_the_fakes_values_have_six_significant_digits_like_a_cpp_stream():
    assert round6(1234567) == 1.23457e6 and round6(980) == 980 and round6(12.3456789) == 12.3457
    fake = FakeLlamaCpp()
    fake.advance(3 * 3600)
    value = parsed(fake.exposition())["llamacpp:prompt_tokens_cached_total"][2][0].value
    assert value > 1e6 and value == round6(value) and value == round6(fake.cached_n)


def test_the_throughput_gauges_cover_the_time_since_the_previous_scrape():
    with FakeLlamaCpp() as fake:
        fake.advance(30)

        def gauge(name: str) -> float:
            with urllib.request.urlopen(fake.url, timeout=10) as resp:
                assert resp.headers["Content-Type"] == "text/plain; version=0.0.4"
                return parsed(resp.read().decode())[name][2][0].value

        assert gauge("llamacpp:predicted_tokens_seconds") == 40.0
        assert gauge("llamacpp:predicted_tokens_seconds") == 0.0  # nothing generated since the last scrape
        fake.set_scenario("latency_regression")
        fake.advance(30)
        assert gauge("llamacpp:predicted_tokens_seconds") == 4.0


def test_without_metrics_the_server_answers_501():
    with FakeLlamaCpp(metrics_enabled=False) as fake:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(fake.url, timeout=10)
        assert err.value.code == 501
        assert json.loads(err.value.read())["error"]["type"] == "not_supported_error"


def test_the_scenarios_show_what_llama_cpp_can_show():
    def after(scenario: str) -> dict[str, float]:
        fake = FakeLlamaCpp()
        fake.set_scenario(scenario)
        fake.advance(300)
        return {name: entry[2][0].value for name, entry in parsed(fake.exposition()).items()}

    healthy, errors, queue, kv, idle = (after(s) for s in ("healthy", "error_burst", "queue_saturation", "kv_cache_exhaustion", "idle"))
    assert healthy["llamacpp:requests_deferred"] == 0 and queue["llamacpp:requests_deferred"] > 0
    assert queue["llamacpp:requests_processing"] == 4  # every slot
    assert errors["llamacpp:tokens_predicted_total"] < healthy["llamacpp:tokens_predicted_total"]
    assert errors["llamacpp:prompt_tokens_total"] == healthy["llamacpp:prompt_tokens_total"]
    assert kv["llamacpp:n_tokens_max"] == 4096 > healthy["llamacpp:n_tokens_max"]
    assert kv["llamacpp:prompt_tokens_cached_total"] == 0
    assert idle["llamacpp:prompt_tokens_total"] == 0 and idle["llamacpp:requests_processing"] == 0


# ---------------------------------------------------------------------------------------------
# The promtool file: input series shaped like the fake's output after the job
# ---------------------------------------------------------------------------------------------




@functools.lru_cache(maxsize=1)
def llamacpp_input_series() -> tuple:
    return input_series([TEST_FILE], engine="llamacpp")


def test_the_input_series_are_what_the_job_stores_with_the_jobs_labels():
    produced = prometheus.produced_series(CFG)
    targets = {(c["labels"]["instance"], c["labels"]["model"]) for c in job_config(CFG)["static_configs"]}
    exposed = set(parsed(FakeLlamaCpp().exposition()))
    series = llamacpp_input_series()
    assert {name for _, name, _ in series} == llamacpp.mapping(CFG).raw_metrics | {"up"}
    for group, name, labels in series:
        assert set(labels) == set(TARGET_LABELS), f"{group}: {name} {labels}"  # llama.cpp labels none of them
        assert (labels["engine"], labels["env"], labels["job"]) == ("llamacpp", "dev", "llamacpp"), f"{group}: {name}"
        assert (labels["instance"], labels["model"]) in targets, f"{group}: {name} {labels}"
        assert prometheus.is_produced(name, produced), f"{group}: {name} would be dropped at scrape time"
        assert name == "up" or name in exposed, f"{group}: llama-server exports no {name}"


def _run_promtool_tests(cfg, tmp_path, tests: dict) -> subprocess.CompletedProcess:
    """`tests` (a promtool test file's content, rule files by base name) against cfg's rules."""
    for name, text in prometheus.render_rule_files(cfg).items():
        (tmp_path / name).write_text(text)
    doc = dict(tests, rule_files=[os.path.basename(f) for f in tests["rule_files"]])
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return promtool("test", "rules", "tests.yaml", cwd=str(tmp_path))


@pytest.mark.parametrize("cfg", [CFG, DEV], ids=["scraping-llamacpp", "dev"])
def test_the_promtool_tests_hold(cfg, tmp_path):
    done = _run_promtool_tests(cfg, tmp_path, load(TEST_FILE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_queue_mapping_makes_the_promtool_tests_fail(tmp_path):
    """The tests can fail: a queue depth read from the busy slots is caught."""
    for name, text in prometheus.render_rule_files(CFG).items():
        broken = text.replace('sum by (engine, env, instance, model) (llamacpp:requests_deferred{job="llamacpp"})\n',
                              'sum by (engine, env, instance, model) (llamacpp:requests_processing{job="llamacpp"})\n')
        assert name != prometheus.RECORDING_FILE or broken != text
        (tmp_path / name).write_text(broken)
    doc = load(TEST_FILE)
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(dict(doc, rule_files=[prometheus.RECORDING_FILE, prometheus.ALERTS_FILE])))
    done = promtool("test", "rules", "tests.yaml", cwd=str(tmp_path))
    assert done.returncode != 0
    assert "llm:queue_depth" in done.stdout + done.stderr


def test_the_target_down_alert_fires_for_llamacpp_in_the_promtool_file():
    groups = [g for g in load(TEST_FILE)["tests"] if g["name"].startswith("llamacpp: LLMTargetDown fires")]
    assert len(groups) == 1
    firing = [a for c in groups[0]["alert_rule_test"] for a in c.get("exp_alerts") or []]
    assert firing and all(a["exp_labels"]["engine"] == "llamacpp" and a["exp_labels"]["job"] == "llamacpp" for a in firing)
    assert not [g for g in load(TEST_FILE)["tests"] if g["name"].startswith("fires:")], "the canonical fires: groups are mistral.rs's"


UP = {
    "llamacpp": f'up{{engine="llamacpp", env="dev", instance="llama-server", job="llamacpp", model="{MODEL}"}}',
    "mistral": 'up{engine="mistralrs", env="dev", instance="mistral-inference", job="mistral", model="Qwen/Qwen3-0.6B"}',
    "prometheus": 'up{env="dev", instance="localhost:9090", job="prometheus"}',
}


def test_the_absent_alert_watches_the_llamacpp_job_of_a_stack_that_scrapes_it(tmp_path):
    case = {
        "name": "llamacpp: LLMTargetAbsent fires on the llamacpp target disappearing (onset 10m)",
        "interval": "15s",
        "input_series": [{"series": s, "values": "1x39 stale _x80" if job == "llamacpp" else "1x120"} for job, s in UP.items()],
        "alert_rule_test": [
            {"alertname": "LLMTargetAbsent", "eval_time": "10m45s", "exp_alerts": []},
            {
                "alertname": "LLMTargetAbsent",
                "eval_time": "13m",
                "exp_alerts": [{
                    "exp_labels": {"env": "dev", "job": "llamacpp", "severity": "critical"},
                    "exp_annotations": {
                        "summary": "Prometheus has no llamacpp target in dev",
                        "description": "There has been no up series for the llamacpp job in dev for 1m: Prometheus is not configured "
                                       "to scrape it, or has had no sample from it for 5 minutes, so nothing about it is monitored.",
                        "runbook_url": f"{CFG.alerting.runbook_base_url}#{runbook_anchor('LLMTargetAbsent')}",
                    },
                }],
            },
        ],
    }
    tests = {"rule_files": [prometheus.RECORDING_FILE, prometheus.ALERTS_FILE], "evaluation_interval": "15s", "tests": [case]}
    done = _run_promtool_tests(CFG, tmp_path, tests)
    assert done.returncode == 0, done.stdout + done.stderr
    # a stack without llama.cpp targets never watched it
    quiet = dict(tests, tests=[dict(case, alert_rule_test=[{"alertname": "LLMTargetAbsent", "eval_time": "13m", "exp_alerts": []}])])
    done = _run_promtool_tests(DEV, tmp_path, quiet)
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# The rendered files in promtool, and the program under mocks
# ---------------------------------------------------------------------------------------------


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


def test_promtool_checks_the_rules_and_config_of_a_stack_that_scrapes_llamacpp(tmp_path):
    path = _write_config(CFG, str(tmp_path))
    for name in prometheus.render_rule_files(CFG):
        done = promtool("check", "rules", os.path.join(str(tmp_path), topology.PROMETHEUS_RULES_SUBDIR, name))
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    done = promtool("check", "config", path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mocks_upload_the_llamacpp_job_when_configured():
    rec = run_stack("dev", {"llamacppTargets": [f"{MODEL}@llama-server:8080"]})
    container = rec.one("docker:index/container:Container", "prometheus-container").inputs
    uploads = {u["file"]: u["content"] for u in container["uploads"]}
    doc = yaml.safe_load(uploads[topology.PROMETHEUS_CONFIG_FILE])
    (job,) = [j for j in doc["scrape_configs"] if j["job_name"] == "llamacpp"]
    assert job["static_configs"] == [{"targets": ["llama-server:8080"], "labels": {"instance": "llama-server", "model": MODEL}}]


# ---------------------------------------------------------------------------------------------
# A real Prometheus (Debian's 2.42, on loopback) scraping the fake with the rendered job and rules
# ---------------------------------------------------------------------------------------------


def test_a_real_prometheus_records_every_llamacpp_signal_from_the_fake(tmp_path):
    fake = FakeLlamaCpp()
    server = None
    try:
        fake.start()
        fake.set_scenario("healthy")
        fake.run_clock(0.25, max_ticks=2000)
        cfg = configured([f"{MODEL}@127.0.0.1:{fake.port}"], scrapeInterval="1s", scrapeTimeout="1s", evaluationInterval="1s")
        path = _write_config(cfg, str(tmp_path))
        # Only the llamacpp job, as rendered: the other jobs' in-network targets do not exist here.
        with open(path) as fh:
            doc = yaml.safe_load(fh)
        doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"] == llamacpp.JOB]
        assert doc["scrape_configs"][0]["static_configs"][0]["targets"] == [f"127.0.0.1:{fake.port}"]
        doc.pop("alerting", None)
        with open(path, "w") as fh:
            yaml.safe_dump(doc, fh)
        server = PrometheusServer(path, str(tmp_path / "data"), str(tmp_path / "prometheus.log"))
        server.start()

        def target_up():
            found = server.targets()
            return found if len(found) == 1 and found[0]["health"] == "up" else None

        (target,) = wait_until(target_up, timeout=60, what="the llamacpp target up")
        assert {k: target["labels"][k] for k in TARGET_LABELS} == {
            "engine": "llamacpp", "env": "dev", "instance": "127.0.0.1", "job": "llamacpp", "model": MODEL,
        }
        (m,) = llamacpp.mappings(cfg)
        expected = {signal.name for signal in m.signals}

        def records():
            # per-instance records only (the fleet ones carry no instance)
            found = {r["metric"]["__name__"]: r for r in server.query('{__name__=~"llm:.+", engine="llamacpp", instance!=""}')}
            return found if set(found) == expected and found["llm:tokens_generated:rate5m"]["value"][1] != "0" else None

        found = wait_until(records, timeout=90, what="every llamacpp record")
        for name, r in found.items():
            assert {k: r["metric"][k] for k in signals.SCHEMA_LABELS} == {
                "engine": "llamacpp", "env": "dev", "instance": "127.0.0.1", "model": MODEL,
            }, name
        assert float(found["llm:sequences_running"]["value"][1]) == 2
        assert float(found["llm:queue_depth"]["value"][1]) == 0
        assert float(found["llm:prefix_cache_hit_ratio:rate5m"]["value"][1]) == pytest.approx(0.6, abs=0.02)
        stored = {r["metric"]["__name__"] for r in server.query('group by (__name__) ({job="llamacpp"})')}
        assert stored - {n for n in stored if n == "up" or n.startswith("scrape_")} == m.raw_metrics
    finally:
        if server is not None:
            server.stop()
        fake.close()
