"""promtool on everything the stack gives Prometheus: config, rule files, rule unit tests.

The rendered files are checked as the code renders them now (tests/test_artifacts.py separately
checks the committed copies are the same), with Debian's promtool 2.42, so the rules stay loadable by
a Prometheus at least that old. The unit tests in tests/promtool run against the dev stack's rules.
"""

import functools
import glob
import math
import os
import re
import shutil
import subprocess

import pytest
import yaml

from llmstack import alerts, engines, prometheus, topology
from llmstack.signals import SLO_BURN_RATES, SLO_FLEET_BURN_RATES
from llmstack.config import duration_seconds
from tools.stacks import ROOT, STACK_FILES, stack_config
from tools import detection_times
from tools.detection_times import measured_detections, reads_recording_rules
from tools.sections import replace_section
from tests.promtool_inputs import input_series
from tests.integration.fakes.mistral import FakeMistral

PROMTOOL = shutil.which("promtool")
TEST_DIR = os.path.join(ROOT, "tests", "promtool")
TEST_FILES = sorted(glob.glob(os.path.join(TEST_DIR, "*.yaml")))
DEV_RULES_DIR = os.path.join("assets", "prometheus", "dev", topology.PROMETHEUS_RULES_SUBDIR)
ENVS = sorted(STACK_FILES)


def promtool(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    assert PROMTOOL, "promtool is missing: scripts/test installs Debian's prometheus package"
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def load_tests(path: str) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def test_there_are_promtool_test_files():
    names = {os.path.basename(p) for p in TEST_FILES}
    assert {"mistral_alerts_test.yaml", "mistral_recording_test.yaml"} <= names


@pytest.mark.parametrize("env", ENVS)
def test_promtool_check_config_accepts_the_rendered_config(env, tmp_path):
    cfg = stack_config(env)
    rule_files = prometheus.render_rule_files(cfg)
    (tmp_path / topology.PROMETHEUS_RULES_SUBDIR).mkdir()
    for name, text in rule_files.items():
        (tmp_path / topology.PROMETHEUS_RULES_SUBDIR / name).write_text(text)
    (tmp_path / "prometheus.yml").write_text(prometheus.render_prometheus_yml(cfg))
    done = promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    # check config also loads every rule file it names; make sure it found all of them
    assert f"SUCCESS: {len(rule_files)} rule files found" in done.stdout + done.stderr


@pytest.mark.parametrize("env", ENVS)
def test_promtool_check_rules_accepts_every_rule_file(env, tmp_path):
    for name, text in prometheus.render_rule_files(stack_config(env)).items():
        path = tmp_path / name
        path.write_text(text)
        done = promtool("check", "rules", str(path))
        assert done.returncode == 0, f"{name}: {done.stdout}{done.stderr}"


def _rendered_layout(tmp_path) -> str:
    """tests/promtool and the dev rules, rendered now, in the same relative layout as the repo."""
    tests_dir = tmp_path / "tests" / "promtool"
    tests_dir.mkdir(parents=True)
    rules_dir = tmp_path / DEV_RULES_DIR
    rules_dir.mkdir(parents=True)
    for name, text in prometheus.render_rule_files(stack_config("dev")).items():
        (rules_dir / name).write_text(text)
    for path in TEST_FILES:
        shutil.copy(path, tests_dir)
    return str(tests_dir)


@pytest.mark.parametrize("path", TEST_FILES, ids=os.path.basename)
def test_promtool_unit_tests_pass_against_the_dev_rules(path, tmp_path):
    tests_dir = _rendered_layout(tmp_path)
    doc = load_tests(path)
    # promtool only warns about a rule file it cannot find, so check they resolve to the dev rules
    for rule_file in doc["rule_files"]:
        resolved = os.path.normpath(os.path.join(tests_dir, rule_file))
        assert os.path.isfile(resolved), f"{rule_file} does not resolve"
        assert os.path.relpath(resolved, str(tmp_path)).startswith(DEV_RULES_DIR)
    done = promtool("test", "rules", os.path.basename(path), cwd=tests_dir)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_rule_makes_the_unit_tests_fail(tmp_path):
    """The unit tests can fail: with the queue alert's condition inverted, its tests must catch it."""
    tests_dir = _rendered_layout(tmp_path)
    alerts = tmp_path / DEV_RULES_DIR / prometheus.ALERTS_FILE
    text = alerts.read_text()
    assert "llm:queue_depth > 0" in text
    alerts.write_text(text.replace("llm:queue_depth > 0", "llm:queue_depth < 0"))
    doc = load_tests(os.path.join(TEST_DIR, "mistral_alerts_test.yaml"))
    doc["tests"] = [g for g in doc["tests"] if "LLMQueueSaturated" in g["name"]]  # only the queue's groups: faster
    with open(os.path.join(tests_dir, "queue_only.yaml"), "w") as fh:
        yaml.safe_dump(doc, fh)
    done = promtool("test", "rules", "queue_only.yaml", cwd=tests_dir)
    assert done.returncode != 0
    assert "LLMQueueSaturated" in done.stdout + done.stderr


# ---------------------------------------------------------------------------------------------
# Coverage: every alert has a firing case and quiet cases
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _cases() -> tuple:
    """(group name, alertname, fires?) for every alert_rule_test in tests/promtool."""
    return tuple(
        (group.get("name", ""), case["alertname"], bool(case.get("exp_alerts")))
        for path in TEST_FILES
        for group in load_tests(path).get("tests") or []
        for case in group.get("alert_rule_test") or []
    )


ALERTS = alerts.alert_rules(stack_config("dev"))
# The Watchdog fires always, by design; it cannot have a quiet case.
ALWAYS_FIRING = {"Watchdog"}


@pytest.mark.parametrize("alert", [a.name for a in ALERTS])
def test_every_alert_has_a_firing_case(alert):
    assert any(name == alert and fires for _, name, fires in _cases()), f"no test shows {alert} firing"


@pytest.mark.parametrize("alert", [a.name for a in ALERTS if a.name not in ALWAYS_FIRING])
def test_every_alert_has_quiet_cases_for_a_spike_and_a_healthy_system(alert):
    quiet_groups = [group for group, name, fires in _cases() if name == alert and not fires]
    assert quiet_groups, f"no test shows {alert} staying quiet (an alert_rule_test with exp_alerts: [])"
    assert any(g.startswith("spike: ") for g in quiet_groups), f"no `spike:` group keeps {alert} quiet"
    assert any(g.startswith("healthy") for g in quiet_groups), f"the healthy group does not check {alert}"


@pytest.mark.parametrize("alert", [a.name for a in ALERTS if a.name not in ALWAYS_FIRING])
def test_every_alert_has_one_canonical_firing_incident(alert):
    fires = [g for g, name, f in _cases() if name == alert and f and g.startswith(f"fires: {alert} (onset ")]
    assert len(set(fires)) == 1, f"{alert}: expected one `fires: {alert} (onset ...)` group, got {fires}"


def test_coverage_check_notices_a_new_alert_without_tests():
    names = {name for _, name, _ in _cases()}
    assert "LLMSomethingNew" not in names  # what the tests above would report for an untested alert


# ---------------------------------------------------------------------------------------------
# Input series look like mistral.rs output after the scrape job
# ---------------------------------------------------------------------------------------------

UPSTREAM_BUCKETS = {
    "mistral_http_request_duration_seconds": FakeMistral.HTTP_REQUEST_DURATION_BUCKETS,
    "mistralrs_time_to_first_token_seconds": FakeMistral.TTFT_BUCKETS,
    "mistralrs_inter_token_latency_seconds": FakeMistral.ITL_BUCKETS,
}
TARGET_LABELS = {"engine": "mistralrs", "env": "dev", "instance": "mistral-inference", "job": "mistral", "model": "Qwen/Qwen3-0.6B"}


@functools.lru_cache(maxsize=1)
def _input_series() -> tuple:
    return input_series(TEST_FILES)


# Engines the dev stack does not scrape: each engine's own tests (tests/test_<engine>.py) check its
# series against a stack that does.
UNSCRAPED_ON_DEV = {m.engine for m in engines.mappings(stack_config("dev")) if not m.enabled(stack_config("dev"))}


def test_input_series_are_only_what_the_scrape_job_keeps():
    produced = prometheus.produced_series(stack_config("dev"))
    for group, name, labels in _input_series():
        if labels.get("engine") in UNSCRAPED_ON_DEV:
            continue
        if labels.get("job") == "dcgm":
            continue  # dev has no GPU: tests/test_resources.py checks these against prod
        assert prometheus.is_produced(name, produced), f"{group}: {name} would be dropped at scrape time"


def test_histograms_have_exactly_the_upstream_buckets():
    seen = {}
    for group, name, labels in _input_series():
        family = name[: -len("_bucket")] if name.endswith("_bucket") else None
        if family in UPSTREAM_BUCKETS:
            key = (group, family, tuple(sorted((k, v) for k, v in labels.items() if k != "le")))
            seen.setdefault(key, []).append(float(labels["le"]))
    assert seen, "no histogram input series found"
    for (group, family, _), bounds in seen.items():
        assert sorted(bounds) == sorted(list(UPSTREAM_BUCKETS[family]) + [math.inf]), f"{group}: {family}"


def test_mistral_series_carry_the_scrape_jobs_labels():
    for group, name, labels in _input_series():
        if name.startswith("llm:"):
            # a recorded rate fed as input (slo_slow_test.yaml says why): the schema's labels, no job
            assert labels == {k: v for k, v in TARGET_LABELS.items() if k != "job"}, f"{group}: {name} {labels}"
            continue
        if labels.get("job") in ("prometheus", "cadvisor", "dcgm"):
            continue  # not the mistral target's series: tests/test_resources.py checks the exporters'
        if labels.get("engine") in UNSCRAPED_ON_DEV:
            continue  # their jobs' labels: tests/test_<engine>.py
        if labels.get("job", "").startswith("probe-"):
            continue  # the probe jobs' labels: tests/test_probes.py
        for key, value in TARGET_LABELS.items():
            assert labels.get(key) == value, f"{group}: {name} {labels}"
        if name.startswith(("mistral_http_", "mistralrs_time_to_first_token", "mistralrs_inter_token")):
            # mistral.rs's own labels; its `model` label survives as exported_model
            assert {"method", "path", "exported_model"} <= set(labels), f"{group}: {name}"
            if not name.endswith("_in_flight"):
                assert "status" in labels, f"{group}: {name}"
        assert not name.startswith("http_"), "stored names are the renamed mistral_http_*"


# ---------------------------------------------------------------------------------------------
# Detection times (docs/alerts.md's table comes from the same measurement)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def detections():
    return measured_detections()


def test_every_alert_but_the_watchdog_has_a_measured_detection_time(detections):
    assert set(detections) == {a.name for a in ALERTS} - ALWAYS_FIRING


# The error-budget pages answer "is the month's budget going too fast?", not "is it down?": they wait
# until 2% of the budget is gone (llmstack/alerts/slo.py), about 10 minutes into a total outage at
# the dev objective. The threshold pages (LLMHighErrorRatioCritical, LLMTargetDown) page outages
# within 3 minutes.
BURN_RATES = tuple(sig.name for sig in (*SLO_BURN_RATES.values(), *SLO_FLEET_BURN_RATES.values()))
BUDGET_PAGES = {a.name for a in ALERTS if any(re.search(rf"(?<![\w:]){re.escape(n)}(?![\w:])", a.expr) for n in BURN_RATES)}


def test_the_budget_pages_are_the_burn_rate_alerts():
    assert {"LLMErrorBudgetBurnFast", "LLMFleetErrorBudgetBurnFast"} <= BUDGET_PAGES
    assert not BUDGET_PAGES & {"LLMHighErrorRatioCritical", "LLMTargetDown"}


@pytest.mark.parametrize("alert", [a for a in ALERTS if a.severity == "critical" and a.name not in BUDGET_PAGES], ids=lambda a: a.name)
def test_critical_alerts_fire_within_3_minutes_in_the_worst_case(alert, detections):
    worst = detections[alert.name].worst_case_seconds(reads_recording_rules(stack_config("dev"), alert))
    assert worst <= 180, f"{alert.name}: {worst}s"


@pytest.mark.parametrize("alert", [a for a in ALERTS if a.name not in ALWAYS_FIRING], ids=lambda a: a.name)
def test_no_alert_fires_before_its_for_has_passed(alert, detections):
    assert detections[alert.name].measured_seconds >= duration_seconds(alert.for_)


def test_the_detection_table_in_the_docs_is_what_promtool_measures_now():
    """docs/alerts.md's table is written by scripts/detection_times, a separate step from rendering."""
    with open(os.path.join(ROOT, detection_times.DOC)) as fh:
        current = fh.read()
    assert replace_section(current, detection_times.SECTION, detection_times.table()) == current, "run scripts/detection_times"
