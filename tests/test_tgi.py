"""TGI (Hugging Face Text Generation Inference) in the shared schema: mapping, scrape job, promtool
tests, fake, and a real Prometheus.

tests/promtool/tgi_test.yaml runs in tests/test_promtool.py against the dev stack's rules like every
other promtool file. This module checks what that cannot: that its input series look exactly like
TGI's output after the tgi scrape job (the dev stack scrapes no TGI), that every alert TGI's records
can raise fires there, the rendered rules and job in promtool, and a real Prometheus scraping the
fake with the rendered job and recording rules.
"""

import functools
import json
import math
import os
import re
import shutil
import subprocess
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmstack import alerts, engines, prometheus, signals, topology
from llmstack.config import load_defaults
from llmstack.engines import tgi
from llmstack.alerts.base import runbook_anchor
from tests.harness import ENGINE_NEUTRAL_ALERTS
from tools.docs import alert_can_fire
from tests.promtool_inputs import input_series, load
from tests.integration.fakes.tgi import DURATION_BUCKETS, FakeTgi
from tests.integration.promserver import PrometheusServer, wait_until

PROMTOOL = shutil.which("promtool")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEST_FILE = os.path.join(ROOT, "tests", "promtool", "tgi_test.yaml")
DEV_RULES_DIR = os.path.join("assets", "prometheus", "dev", topology.PROMETHEUS_RULES_SUBDIR)
# The stack tgi_test.yaml's input series are shaped for (see its header comment).
MODEL = "HuggingFaceTB/SmolLM2-360M-Instruct"
TEST_TARGET = f"{MODEL}@tgi-server:8080"
TARGET_LABELS = {"engine": "tgi", "env": "dev", "instance": "tgi-server", "job": "tgi", "model": MODEL}
# Prometheus reaches a loopback client without a proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def configured(*targets: str, env: str = "dev", **overrides):
    return load_defaults(env, tgiTargets=json.dumps(list(targets)), **overrides)


CFG = configured(TEST_TARGET)
DEV = load_defaults("dev")


def mapping(cfg=CFG):
    (m,) = tgi.mappings(cfg)
    return m


def promtool(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def job_config(cfg) -> dict:
    (job,) = [j.config for j in prometheus.scrape_jobs(cfg) if j.config["job_name"] == tgi.JOB]
    return job


def kept(job: dict, names: set[str]) -> set[str]:
    """What the job's metric relabelling keeps of `names` (one keep on __name__; RE2 is anchored)."""
    (keep,) = job["metric_relabel_configs"]
    assert keep["action"] == "keep" and keep["source_labels"] == ["__name__"]
    return {n for n in names if re.fullmatch(keep["regex"], n)}


# ---------------------------------------------------------------------------------------------
# The mapping: what TGI really has, and only that
# ---------------------------------------------------------------------------------------------

EXPECTED_SIGNALS = {
    signals.REQUESTS_RATE, signals.ERRORS_RATE, signals.ERROR_RATIO, signals.ERROR_RATIO_1M,
    signals.LATENCY_AVG, signals.LATENCY_P50, signals.LATENCY_P95, signals.LATENCY_P99, signals.LATENCY_P95_1M,
    signals.ITL_P95, signals.TOKENS_PROCESSED_RATE, signals.TOKENS_GENERATED_RATE,
    signals.QUEUE_DEPTH, signals.RUNNING,
}
# No TTFT histogram, no in-flight gauge, no capacity in sequences, no exported token budget (the
# KV-cache ratio's denominator), no preemption, no prefix-cache counters.
NOT_PROVIDED = {
    signals.TTFT_P95, signals.TTFT_P95_1M, signals.IN_FLIGHT, signals.CAPACITY,
    signals.KV_CACHE_UTILISATION, signals.PREEMPTIONS_RATE, signals.PREFIX_CACHE_HIT_RATIO,
}


def test_the_mapping_records_exactly_the_signals_tgi_has():
    m = mapping()
    assert (m.name, m.job, m.engine) == ("tgi", "tgi", "tgi")
    assert set(m.signals) == EXPECTED_SIGNALS
    assert not set(m.signals) & NOT_PROVIDED
    assert set(m.caveats) <= set(m.signals)


def test_every_selector_names_the_tgi_job_and_every_record_keeps_the_schema_labels():
    for signal, expr in mapping().signals.items():
        for selector in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}", expr):
            assert 'job="tgi"' in selector, f"{signal.name}: {selector}"
        for grouping in re.findall(r"(?:sum|histogram_quantile\(\S+,\s*sum) by \(([^)]*)\)", expr):
            assert grouping.replace("le, ", "") == signals.BY, f"{signal.name}: {grouping}"


def test_errors_are_the_server_side_failures_only():
    m = mapping()
    assert 'err=~"generation|incomplete"' in m.signals[signals.ERRORS_RATE]
    # the request rate counts every request that ended, once; tgi_request_count double-counts
    # OpenAI-route requests, so no record reads it
    assert "tgi_request_count" not in m.raw_metrics
    assert {"tgi_request_success", "tgi_request_failure"} <= m.raw_metrics


def test_enabled_only_with_targets_and_the_rules_exist_either_way():
    assert mapping(CFG).enabled(CFG) and not mapping(DEV).enabled(DEV)
    assert "llm-schema-tgi" in [g["name"] for g in prometheus.recording_groups(DEV)]
    by_name = {a.name: a for a in alerts.alert_rules(DEV)}
    assert re.search(r'up\{job=~"[^"]*\btgi\b', by_name["LLMTargetDown"].expr)
    assert "tgi" not in by_name["LLMTargetAbsent"].expr
    absent = {a.name: a for a in alerts.alert_rules(CFG)}["LLMTargetAbsent"].expr
    assert 'absent(up{job="tgi", env="dev"})' in absent


# ---------------------------------------------------------------------------------------------
# The scrape job
# ---------------------------------------------------------------------------------------------


def test_no_tgi_job_without_targets():
    assert tgi.scrape_jobs(DEV) == []
    assert "job_name: tgi" not in prometheus.render_prometheus_yml(DEV)


def test_the_job_labels_each_target_with_its_instance_and_model():
    cfg = configured(f"{MODEL}@gpu1:8080", "meta-llama/Llama-3.1-8B-Instruct@gpu1:8081/tgi/metrics", f"{MODEL}@gpu2:80",
                     f"{MODEL}@gpu1:8080", env="prod")
    doc = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
    (job,) = [j for j in doc["scrape_configs"] if j["job_name"] == "tgi"]
    assert job["metrics_path"] == "/metrics"
    # listed twice, scraped once; host:port where two targets share a host
    assert job["static_configs"] == [
        {"targets": ["gpu1:8080"], "labels": {"instance": "gpu1:8080", "model": MODEL}},
        {"targets": ["gpu1:8081"], "labels": {"instance": "gpu1:8081", "model": "meta-llama/Llama-3.1-8B-Instruct", "__metrics_path__": "/tgi/metrics"}},
        {"targets": ["gpu2:80"], "labels": {"instance": "gpu2", "model": MODEL}},
    ]
    assert {r["target_label"]: r["replacement"] for r in job["relabel_configs"]} == {"engine": "tgi", "env": "prod"}
    assert kept(job, set(mapping(cfg).raw_metrics) | {"tgi_request_count", "tgi_batch_current_max_tokens"}) == mapping(cfg).raw_metrics


def _fetch(url: str) -> tuple[str, str]:
    with _OPENER.open(url, timeout=10) as response:
        return response.headers.get("Content-Type"), response.read().decode()


def _stored_names(text: str) -> set[str]:
    """The sample names Prometheus stores from an exposition: as printed."""
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_the_job_keeps_exactly_what_the_rules_read_from_the_fakes_exposition():
    with FakeTgi() as fake:
        fake.set_scenario("error_burst")
        fake.advance(60)
        content_type, text = _fetch(fake.url)
        health = urllib.request.Request(f"http://127.0.0.1:{fake.port}/health")
        with _OPENER.open(health, timeout=10) as response:
            assert (response.status, response.read()) == (200, b"")
    assert content_type == "text/plain; charset=utf-8"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    stored = _stored_names(text)
    # prometheus_client's parser names a counter's samples <name>_total; TGI prints, and Prometheus
    # stores, the bare name
    parsed = {s.name.removesuffix("_total") if f.type == "counter" else s.name for f in families.values() for s in f.samples}
    assert parsed == stored
    assert {n for n, f in families.items() if f.type == "counter"} == {
        "tgi_request_count", "tgi_request_success", "tgi_request_failure", "tgi_batch_inference_count",
        "tgi_batch_inference_success", "tgi_batch_inference_failure", "tgi_batch_concat",
    }
    assert "# TYPE tgi_request_count counter\ntgi_request_count " in text.replace("# HELP tgi_request_count Total number of requests\n", "")
    assert not any(n.endswith("_total") for n in stored)
    assert families["tgi_request_skipped_tokens"].type == "summary"
    assert {s.labels.get("err") for s in families["tgi_request_failure"].samples} == {"generation"}
    assert not any("model" in s.labels for f in families.values() for s in f.samples), "TGI sets no model label"
    assert "tgi_batch_max_total_tokens" not in families  # set before the recorder exists: never served
    bounds = [float(s.labels["le"]) for s in families["tgi_request_duration"].samples if s.name.endswith("_bucket")]
    assert bounds == list(DURATION_BUCKETS) + [math.inf]
    assert len(DURATION_BUCKETS) == 35 and math.isclose(DURATION_BUCKETS[-1], 0.0001 * 1.5**35)
    # every name a rule reads is in TGI's output, and nothing else is stored
    assert kept(job_config(CFG), stored) == mapping().raw_metrics
    assert {"tgi_request_count", "tgi_batch_current_max_tokens", "tgi_request_duration_sum"} <= stored


def test_series_appear_with_their_first_event():
    fake = FakeTgi()
    assert fake.exposition() == ""
    fake.set_scenario("healthy")
    fake.advance(10)
    names = {f.name for f in text_string_to_metric_families(fake.exposition())}
    assert "tgi_request_failure" not in names and {"tgi_queue_size", "tgi_batch_current_size"} <= names
    fake.set_scenario("idle")
    fake.advance(10)
    text = fake.exposition()
    assert "tgi_batch_current_size 0.0" in text and "tgi_queue_size 0.0" in text
    fake.restart_process()
    assert fake.exposition() == ""


@pytest.mark.parametrize("scenario", FakeTgi.SCENARIOS)
def test_each_scenario_shows_in_the_series_the_rules_read(scenario):
    fake = FakeTgi()
    fake.set_scenario("healthy")
    fake.advance(30)
    fake.set_scenario(scenario)
    before = {(f.name, s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(fake.exposition()) for s in f.samples}
    fake.advance(60)
    after = {(f.name, s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(fake.exposition()) for s in f.samples}

    def grew(name, **labels):
        return sum(v - before.get(k, 0.0) for k, v in after.items() if k[1] == name and labels.items() <= dict(k[2]).items())

    def now(name):
        return after[(name, name, ())]

    shape = FakeTgi.SHAPES[scenario]
    requests = grew("tgi_request_success_total") + grew("tgi_request_failure_total")
    assert requests == shape.rps * 60
    assert grew("tgi_request_count_total") == 2 * requests  # chat completions count twice
    assert grew("tgi_request_failure_total", err="generation") == round(shape.error_ratio * requests)
    assert (now("tgi_queue_size"), now("tgi_batch_current_size")) == (shape.waiting, shape.running)
    if scenario == "latency_regression":
        assert grew("tgi_request_duration_sum") / grew("tgi_request_duration_count") > 30
    if scenario == "healthy":
        assert grew("tgi_request_duration_sum") / grew("tgi_request_duration_count") < 3


# ---------------------------------------------------------------------------------------------
# tgi_test.yaml: input series shaped like TGI's output after the job
# ---------------------------------------------------------------------------------------------

FAKE = FakeTgi()



@functools.lru_cache(maxsize=1)
def tgi_input_series() -> tuple:
    return input_series([TEST_FILE], engine="tgi")


def _family(name: str):
    registry = FAKE.registry
    families = {f.name for f in registry.families()}
    for suffix in ("", "_bucket", "_sum", "_count"):
        base = name[: len(name) - len(suffix)] if suffix else name
        if name.endswith(suffix) and base in families:
            return registry[base]
    raise AssertionError(f"TGI exports no {name}")


def test_the_promtool_file_loads_the_dev_rules_and_names_no_canonical_group():
    doc = load(TEST_FILE)
    assert doc["rule_files"] == ["../../assets/prometheus/dev/rules/llm-recording.yml", "../../assets/prometheus/dev/rules/llm-alerts.yml"]
    assert not [g["name"] for g in doc["tests"] if g["name"].startswith("fires:")]
    assert tgi_input_series()


def test_tgi_input_series_are_what_the_job_stores_with_the_jobs_labels():
    produced = prometheus.produced_series(CFG)
    target_labels = set(TARGET_LABELS)
    for group, name, labels in tgi_input_series():
        assert {k: labels.get(k) for k in target_labels} == TARGET_LABELS, f"{group}: {name}"
        assert prometheus.is_produced(name, produced), f"{group}: {name} would be dropped at scrape time"
        own = set(labels) - target_labels - {"le"}
        if name == "up":
            assert own == set(), f"{group}: {labels}"
            continue
        assert name in mapping().raw_metrics, f"{group}: {name} is not read by any record"
        family = _family(name)
        assert own == set(family.labelnames), f"{group}: {name} has {sorted(own)}, TGI exports {family.labelnames}"
        assert ("le" in labels) == name.endswith("_bucket"), f"{group}: {name}"


def test_tgi_histograms_have_exactly_tgis_buckets_as_tgi_prints_them():
    seen: dict = {}
    for group, name, labels in tgi_input_series():
        if name.endswith("_bucket"):
            key = (group, name, tuple(sorted((k, v) for k, v in labels.items() if k != "le")))
            seen.setdefault(key, []).append(labels["le"])
    assert {name for _, name, _ in seen} == {"tgi_request_duration_bucket", "tgi_request_mean_time_per_token_duration_bucket"}
    for (group, name, _), bounds in seen.items():
        # Rust prints the shortest round-trip form, as Python's repr does: 0.00015000000000000001
        assert bounds == [repr(b) for b in _family(name).buckets] + ["+Inf"], f"{group}: {name}"


FIRES_RE = re.compile(r"^tgi: (?P<alert>\w+) fires on .+ \(onset [0-9a-z]+\)$")


def test_every_alert_tgis_records_can_raise_fires_for_it():
    found = set()
    for group in load(TEST_FILE)["tests"]:
        m = FIRES_RE.match(group["name"])
        if not m:
            continue
        firing = [c for c in group["alert_rule_test"] if c["alertname"] == m["alert"] and c.get("exp_alerts")]
        assert firing, f"{group['name']} does not expect {m['alert']} to fire"
        for case in firing:
            for alert in case["exp_alerts"]:
                assert alert["exp_labels"]["engine"] == "tgi"
                assert "tgi" in alert["exp_annotations"]["description"], "the text names the engine"
        found.add(m["alert"])
    expected = {a.name for a in alerts.alert_rules(CFG) if alert_can_fire(a, mapping()) and a.name not in ENGINE_NEUTRAL_ALERTS}
    assert expected == {
        "LLMHighRequestLatencyWarning", "LLMHighRequestLatencyCritical",
        "LLMHighErrorRatioWarning", "LLMHighErrorRatioCritical", "LLMTargetDown",
    }
    assert found == expected
    cannot = {a.name for a in alerts.alert_rules(CFG) if not alert_can_fire(a, mapping())}
    assert {"LLMHighTimeToFirstToken", "LLMQueueSaturated", "LLMKVCacheExhaustionWarning", "LLMSequencesPreempted"} <= cannot


# ---------------------------------------------------------------------------------------------
# promtool on a render with a tgi target
# ---------------------------------------------------------------------------------------------


def _layout(cfg, tmp_path, rewrite=lambda text: text) -> str:
    """tgi_test.yaml and cfg's rules, in the repository's relative layout; returns the tests dir."""
    tests_dir = tmp_path / "tests" / "promtool"
    tests_dir.mkdir(parents=True)
    rules_dir = tmp_path / DEV_RULES_DIR
    rules_dir.mkdir(parents=True)
    for name, text in prometheus.render_rule_files(cfg).items():
        (rules_dir / name).write_text(rewrite(text))
    shutil.copy(TEST_FILE, tests_dir)
    return str(tests_dir)


def test_promtool_tests_pass_against_the_rules_of_a_stack_that_scrapes_tgi(tmp_path):
    done = promtool("test", "rules", os.path.basename(TEST_FILE), cwd=_layout(CFG, tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_checks_the_rendered_rules_and_config(tmp_path):
    rules_dir = tmp_path / topology.PROMETHEUS_RULES_SUBDIR
    rules_dir.mkdir()
    for name, text in prometheus.render_rule_files(CFG).items():
        (rules_dir / name).write_text(text)
        done = promtool("check", "rules", str(rules_dir / name))
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"
    (tmp_path / "prometheus.yml").write_text(prometheus.render_prometheus_yml(CFG))
    done = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr


def test_counting_client_failures_as_errors_makes_the_tests_fail(tmp_path):
    """The tests can fail: a mapping that counts every tgi_request_failure as an error is caught."""
    tests_dir = _layout(CFG, tmp_path, lambda text: text.replace('err=~"generation|incomplete"', 'err=~".+"'))
    assert 'err=~".+"' in (tmp_path / DEV_RULES_DIR / prometheus.RECORDING_FILE).read_text()
    done = promtool("test", "rules", os.path.basename(TEST_FILE), cwd=tests_dir)
    assert done.returncode != 0
    assert "llm:request_errors:rate5m" in done.stdout + done.stderr


TGI_UP = f'up{{engine="tgi", env="dev", instance="tgi-server", job="tgi", model="{MODEL}"}}'
MISTRAL_UP = 'up{engine="mistralrs", env="dev", instance="mistral-inference", job="mistral", model="Qwen/Qwen3-0.6B"}'
PROM_UP = 'up{env="dev", instance="localhost:9090", job="prometheus"}'


def test_the_absent_alert_watches_a_configured_tgi_job(tmp_path):
    def case(cfg, expected):
        doc = {
            "rule_files": [prometheus.RECORDING_FILE, prometheus.ALERTS_FILE],
            "evaluation_interval": "15s",
            "tests": [{
                "name": "tgi: LLMTargetAbsent fires on the tgi target disappearing (onset 10m)",
                "interval": "15s",
                "input_series": [{"series": s, "values": "1x39 stale _x80" if s == TGI_UP else "1x120"} for s in (TGI_UP, MISTRAL_UP, PROM_UP)],
                "alert_rule_test": [
                    {"alertname": "LLMTargetAbsent", "eval_time": "13m", "exp_alerts": expected},
                    {"alertname": "LLMTargetAbsent", "eval_time": "10m45s", "exp_alerts": []},  # the minute is not over yet
                ],
            }],
        }
        work = tmp_path / cfg.env / str(bool(cfg.engines.tgi_targets))
        work.mkdir(parents=True)
        for name, text in prometheus.render_rule_files(cfg).items():
            (work / name).write_text(text)
        (work / "tests.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        return promtool("test", "rules", "tests.yaml", cwd=str(work))

    fires = [{
        "exp_labels": {"env": "dev", "job": "tgi", "severity": "critical"},
        "exp_annotations": {
            "summary": "Prometheus has no tgi target in dev",
            "description": "There has been no up series for the tgi job in dev for 1m: Prometheus is not configured "
                           "to scrape it, or has had no sample from it for 5 minutes, so nothing about it is monitored.",
            "runbook_url": f"{CFG.alerting.runbook_base_url}#{runbook_anchor('LLMTargetAbsent')}",
        },
    }]
    done = case(CFG, fires)
    assert done.returncode == 0, done.stdout + done.stderr
    # a stack whose config names no TGI never watched it
    done = case(DEV, [])
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# A real Prometheus (Debian's 2.42, on loopback) scraping the fake with the rendered job and rules
# ---------------------------------------------------------------------------------------------


def test_a_real_prometheus_records_every_tgi_signal_from_the_fake(tmp_path):
    fake = FakeTgi()
    server = None
    try:
        fake.start()
        fake.set_scenario("error_burst")
        fake.advance(5)  # the gauges exist from the first request on
        fake.run_clock(0.25, max_ticks=2000)
        address = f"127.0.0.1:{fake.port}"
        cfg = configured(f"{MODEL}@{address}", scrapeInterval="1s", scrapeTimeout="1s", evaluationInterval="1s")
        rules_dir = tmp_path / topology.PROMETHEUS_RULES_SUBDIR
        rules_dir.mkdir()
        for name, text in prometheus.render_rule_files(cfg).items():
            (rules_dir / name).write_text(text)
        doc = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
        # Only the tgi job as rendered: the other jobs' in-network targets do not exist here.
        doc["scrape_configs"] = [j for j in doc["scrape_configs"] if j["job_name"] == tgi.JOB]
        doc.pop("alerting", None)
        assert doc["scrape_configs"][0]["static_configs"][0]["targets"] == [address]
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(doc))
        server = PrometheusServer(str(tmp_path / "prometheus.yml"), str(tmp_path / "data"), str(tmp_path / "prometheus.log"))
        server.start()

        def target_up():
            found = [t for t in server.targets() if t["labels"].get("job") == tgi.JOB]
            return found if len(found) == 1 and found[0]["health"] == "up" else None

        (target,) = wait_until(target_up, timeout=60, what="the tgi target up")
        assert {k: target["labels"][k] for k in ("engine", "env", "instance", "job", "model")} == {
            "engine": "tgi", "env": "dev", "instance": "127.0.0.1", "job": "tgi", "model": MODEL,
        }
        wanted = {s.name for s in mapping(cfg).signals}

        def recorded():
            have = {name for name in wanted if server.query(f'{name}{{engine="tgi"}}')}
            return have if have == wanted else None

        try:
            wait_until(recorded, timeout=90, what="every TGI record")
        except TimeoutError:
            missing = {name for name in wanted if not server.query(f'{name}{{engine="tgi"}}')}
            raise AssertionError(f"no data for {sorted(missing)}\n{server.log_tail()}")
        (sample,) = server.query('llm:requests:rate5m{engine="tgi"}')
        assert sample["metric"] == {"__name__": "llm:requests:rate5m", "engine": "tgi", "env": "dev", "instance": "127.0.0.1", "model": MODEL}
        assert float(server.query('llm:request_errors:rate5m{engine="tgi"}')[0]["value"][1]) > 0, "the burst's generation errors"
        stored = {r["metric"]["__name__"] for r in server.query('group by (__name__) ({job="tgi"})')}
        builtin = {n for n in stored if n == "up" or n.startswith("scrape_")}
        assert stored - builtin == engines.raw_metrics_for_job(cfg, tgi.JOB) == mapping(cfg).raw_metrics
    finally:
        if server is not None:
            server.stop()
        fake.close()
