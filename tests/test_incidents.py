"""The incident library (tools/incidents) replayed through promtool on the prod rules: every
scenario meets its expectations, the page in docs/ is current, and idle traffic records no NaN."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from llmstack import prometheus
from tools.detection import promtool_path
from tools.incidents import judge, replay, scenarios, table
from tools.incidents.model import HEALTHY, IDLE, Expect, Scenario, timeline, with_
from tools.stacks import ROOT, stack_config

NAMES = [s.name for s in scenarios.scenarios()]


@pytest.fixture(scope="module")
def verdicts():
    return {v.scenario.name: v for v in table.verdicts()}


@pytest.mark.parametrize("name", NAMES)
def test_scenario_meets_its_expectations(name, verdicts):
    assert verdicts[name].problems == []


def test_docs_are_current(verdicts):
    """docs/incidents.md and the targets table in docs/benchmarks.md are what the library measures now."""
    with open(os.path.join(ROOT, table.DOC)) as fh:
        assert fh.read() == table.render(table.verdicts(), stack_config(table.ENV)), "run scripts/incidents"
    assert table.main(["--check"]) == 0, "run scripts/incidents"


def test_the_judge_catches_a_missing_and_an_unexpected_alert():
    """A scenario that expects the wrong alert fails: the library can fail."""
    cfg = stack_config("prod")
    wrong = Scenario(
        name="wrong expectation", what="an outage that expects a KV-cache page",
        timeline=timeline(("10m", HEALTHY), ("5m", with_(HEALTHY, error_share=1.0)), ("10m", HEALTHY)),
        onset="10m", expect=(Expect("LLMKVCacheExhaustionCritical", "3m"),),
    )
    problems = judge.judge(replay.run(wrong, cfg), cfg).problems
    assert any("LLMKVCacheExhaustionCritical never fired" in p for p in problems)
    assert any("LLMHighErrorRatioCritical" in p and "does not expect" in p for p in problems)


def test_the_judge_catches_a_page_on_a_short_burst():
    cfg = stack_config("prod")
    burst = Scenario(
        name="claimed short", what="a 3-minute outage judged as a 30 s burst",
        timeline=timeline(("10m", HEALTHY), ("3m", with_(HEALTHY, error_share=1.0)), ("10m", HEALTHY)),
        onset="10m", may=("LLMHighErrorRatioCritical",), burst="30s",
    )
    problems = judge.judge(replay.run(burst, cfg), cfg).problems
    assert any("shorter than its for" in p for p in problems) and any("paged on a 30s burst" in p for p in problems)


def test_idle_records_no_nan(tmp_path):
    """After traffic stops, every record is absent or a number: `x != x` holds only for NaN."""
    cfg = stack_config("prod")
    idle = Scenario(name="idle", what="", timeline=timeline(("10m", HEALTHY), ("30m", IDLE)), onset="10m")
    names = []
    for name, text in prometheus.render_rule_files(cfg).items():
        (tmp_path / name).write_text(text)
        names.append(name)
    records = sorted({r["record"] for g in prometheus.recording_groups(cfg) for r in g["rules"]})
    tests = [{"expr": f"{r} != {r}", "eval_time": "39m", "exp_samples": []} for r in records]
    # And some records really are there while idle, so the check reads something.
    tests.append({"expr": "count(llm:requests:rate5m == 0)", "eval_time": "39m", "exp_samples": [{"labels": "{}", "value": 1}]})
    doc = {"rule_files": names, "evaluation_interval": "15s", "group_eval_order": list(replay.GROUP_ORDER),
           "tests": [{"interval": "15s", "input_series": replay.series(idle, cfg), "promql_expr_test": tests}]}
    (tmp_path / "idle.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, width=1 << 30))
    done = subprocess.run([promtool_path(), "test", "rules", "idle.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
