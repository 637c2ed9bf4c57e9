"""The fleet records and the fleet dashboard: what they read, that promtool computes them right, and
that the dashboard reads the same at 1 instance and at 64."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from bench import query_cost
from llmstack import alerts, dashboards, engines, fleet, prometheus, signals
from llmstack.dashboards import panels
from tools import dashboard_lint as lint
from tools.stacks import ROOT, stack_config

CFG = stack_config("dev")
TEST_FILE = os.path.join("tests", "promtool", "fleet", "fleet_recording_test.yaml")
FLEET_NAMES = {r.signal.name for r in fleet.records()}


# --- the records -----------------------------------------------------------------------------------

def test_every_fleet_signal_is_recorded_once_and_every_fleet_record_is_catalogued():
    catalogued = {s.name for s in signals.ALL if s.name.startswith("llm:fleet_")}
    names = [r.signal.name for r in fleet.records()]
    assert len(names) == len(set(names))
    assert set(names) == catalogued


def test_fleet_records_read_only_per_instance_records_that_engines_record():
    per_instance = {s.name for m in engines.mappings(CFG) for s in m.signals}
    for r in fleet.records():
        read = set(re.findall(r"llm:[a-z0-9_:]+", r.expr))
        assert read == {s.name for s in r.reads}, r.signal.name
        assert read <= per_instance, r.signal.name
        assert "instance" not in r.expr, r.signal.name  # aggregated away, by name


def test_the_fleet_group_follows_the_engine_groups_it_reads():
    names = [g["name"] for g in prometheus.recording_groups(CFG)]
    assert names.index(fleet.GROUP) > max(i for i, n in enumerate(names) if n.startswith("llm-schema-"))


def test_instance_alerts_never_read_a_fleet_record():
    for alert in alerts.alert_rules(stack_config("prod")) + alerts.alert_rules(CFG):
        assert not re.search(r"llm:fleet_", alert.expr), alert.name


def _promtool_layout(tmp_path, recording_text: str) -> str:
    """The fleet test file and a recording file, at the relative paths the test file names."""
    rules = tmp_path / "assets" / "prometheus" / "dev" / "rules"
    rules.mkdir(parents=True)
    (rules / prometheus.RECORDING_FILE).write_text(recording_text)
    tests_dir = tmp_path / os.path.dirname(TEST_FILE)
    tests_dir.mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, TEST_FILE), tests_dir)
    return str(tests_dir)


def _promtool_test(tests_dir: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", "test", "rules", os.path.basename(TEST_FILE)], cwd=tests_dir,
                          capture_output=True, text=True, timeout=120)


def test_promtool_computes_the_fleet_records(tmp_path):
    done = _promtool_test(_promtool_layout(tmp_path, prometheus.render_rule_files(CFG)[prometheus.RECORDING_FILE]))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("record,wrong", [
    (signals.FLEET_REQUESTS_RATE.name, "max"),  # a sum that is not one
    (signals.FLEET_LATENCY_P95_MAX.name, "sum"),  # quantiles added up
])
def test_the_fleet_promtool_test_catches_a_wrong_aggregation(tmp_path, record, wrong):
    text = prometheus.render_rule_files(CFG)[prometheus.RECORDING_FILE]
    rule = next(r for r in fleet.records() if r.signal.name == record)
    broken = rule.expr.replace(rule.expr.split(" ", 1)[0], wrong, 1)
    assert rule.expr in text and broken != rule.expr
    done = _promtool_test(_promtool_layout(tmp_path, text.replace(rule.expr, broken)))
    assert done.returncode != 0
    assert record in done.stdout + done.stderr


# --- the dashboard -----------------------------------------------------------------------------------

def _fleet():
    return dashboards.fleet.build()


def _queries(panel):
    return [t["expr"] for t in panel.get("targets", [])]


def test_fleet_dashboard_is_registered_with_a_fixed_uid():
    assert dashboards.DASHBOARDS["llm-fleet"] is dashboards.fleet.build
    assert _fleet()["uid"] == "llmstack-llm-fleet"
    assert {dashboards.inference.build()["uid"], dashboards.comparison.build()["uid"]} == {
        "llmstack-mistral-inference", "llmstack-mistral-vs-ollama"}


def test_every_dashboard_links_to_the_others():
    for build in dashboards.DASHBOARDS.values():
        assert panels.DASHBOARD_LINKS in build()["links"]
        assert panels.DASHBOARD_LINKS["tags"][0] in build()["tags"]


def test_no_top_level_panel_draws_a_line_per_instance():
    """At 64 instances a panel stays readable: a fleet panel is one line per engine and model, a
    top-k panel at most k lines at a time."""
    for panel in _fleet()["panels"]:
        for expr in _queries(panel):
            names = lint.metric_names(expr)
            if names == {"ALERTS"}:
                continue  # the firing alerts table: one row per alert
            if names <= FLEET_NAMES:
                assert panels.FLEET_FILTER in expr and "$instance" not in expr, (panel["title"], expr)
            elif names:
                assert expr.startswith(f"topk({dashboards.fleet.TOP_K}, ") and '$instance"' in expr, (panel["title"], expr)


def test_fleet_totals_and_worst_instance_rows_read_only_fleet_records():
    rows = {}
    current = None
    for panel in _fleet()["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            continue
        rows.setdefault(current, []).append(panel)
    for title in ("Fleet totals", "Worst instance"):
        read = set().union(*(lint.metric_names(e) for p in rows[title] for e in _queries(p)))
        assert read and read <= FLEET_NAMES, title
    wanted = {signals.FLEET_REQUESTS_RATE, signals.FLEET_ERRORS_RATE, signals.FLEET_ERROR_RATIO, signals.FLEET_TOKENS_GENERATED_RATE,
              signals.FLEET_LATENCY_P95_MAX, signals.FLEET_KV_CACHE_MAX}
    read = set().union(*(lint.metric_names(e) for p in _fleet()["panels"] for e in _queries(p)))
    assert {s.name for s in wanted} <= read
    top = {n for p in rows[f"Top {dashboards.fleet.TOP_K} instances"] for e in _queries(p) for n in lint.metric_names(e)}
    assert top == {signals.ERROR_RATIO.name, signals.LATENCY_P95.name, signals.KV_CACHE_UTILISATION.name}


def test_per_instance_detail_is_one_collapsed_row_repeated_over_the_instance_variable():
    model = _fleet()
    repeated = [p for p in model["panels"] if p.get("repeat")]
    assert len(repeated) == 1
    (row,) = repeated
    assert row is model["panels"][-1]
    assert row["type"] == "row" and row["collapsed"] is True and row["repeat"] == "instance"
    assert "$instance" in row["title"] and row["panels"]
    for panel in row["panels"]:
        for expr in _queries(panel):
            assert 'instance=~"$instance"' in expr, (panel["title"], expr)
    instance = next(v for v in model["templating"]["list"] if v["name"] == "instance")
    assert instance["multi"] is True and instance["includeAll"] is True


def test_a_repeated_row_must_come_last():
    row = panels.RepeatedRow("Instance $instance", "instance", [])
    with pytest.raises(ValueError, match="last section"):
        panels.layout([row, ("After", [])])


# --- the bench sees the dashboard as Grafana refreshes it ---------------------------------------------

def test_a_refresh_skips_the_collapsed_row_and_opening_it_queries_one_instance():
    model = _fleet()
    refresh = query_cost.dashboard_queries(model, 1800, 15, 30 * 86400)
    (row, variable), = query_cost.repeated_rows(model)
    opened = query_cost.dashboard_queries(model, 1800, 15, 30 * 86400, opened=row,
                                          values_set={variable: query_cost.grafana_escape("mistral-inference-01")})
    in_row = {p["title"] for p in model["panels"][-1]["panels"]}
    assert refresh and not {q["panel"] for q in refresh} & (in_row - {p["title"] for p in model["panels"][:-1]})
    assert {q["panel"] for q in opened} == in_row
    assert all('instance=~"mistral-inference-01"' in q["expr"] for q in opened)


def test_fleet_records_expand_to_raw_series_with_the_panel_filters():
    records = query_cost.raw_records(CFG)
    assert FLEET_NAMES <= set(records)
    # the model-load latches read their own last value: no raw equivalent
    assert signals.LOAD_START.name not in records
    raw, mapped = query_cost.raw_equivalent('llm:fleet_requests:rate5m{env=~"dev", engine=~"mistralrs"}', records)
    assert mapped and not re.search(r"(?<![A-Za-z0-9_:])llm:", raw)
    assert 'mistral_http_requests_total{env=~"dev", engine=~"mistralrs", job="mistral"' in raw
    assert raw.startswith("(sum by (engine, env, model) (")


def test_the_fleet_records_are_backfilled_after_the_records_they_read():
    stages = [[g["name"] for g in stage] for stage in query_cost.rule_stages(CFG)]
    first = next(i for i, s in enumerate(stages) if fleet.GROUP in s)
    assert first > 0 and all(n.startswith("llm-schema-") is False for n in stages[first])
    assert all(any(n.startswith("llm-schema-") for n in s) for s in stages[:first])


def test_grafana_escape_matches_what_grafana_sends():
    assert query_cost.grafana_escape("mistral-inference-01") == "mistral-inference-01"
    assert query_cost.grafana_escape("Qwen3-0.6B") == "Qwen3-0\\\\.6B"
