"""The benchmark scripts (bench/) still run end to end, in their --quick modes.

These are not benchmarks: --quick runs are far too small to measure anything, and nothing here
looks at a timing. They prove that each script runs against the current rules, dashboards and
rendered Prometheus config, and that its report has the shape docs/benchmarks.md is written from.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from llmstack import alerts, dashboards
from llmstack.config import duration_seconds, load_defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_quick(script: str, tmp_path) -> dict:
    out = tmp_path / f"{script}.json"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "bench", f"{script}.py"), "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.strip(), "the bench printed no report"
    doc = json.loads(out.read_text())
    assert doc["bench"] == script and doc["quick"] is True
    return doc


def test_alert_detection_quick(tmp_path):
    doc = run_quick("alert_detection", tmp_path)
    names = {a.name for a in alerts.alert_rules(load_defaults("dev"))}
    assert doc["alerts"], "no alert was measured"
    for row in doc["alerts"]:
        assert row["alert"] in names
        # The breach must actually fire the alert, and both promtool judgements must agree.
        assert row["onset_to_firing_s"] is not None and row["onset_to_firing_s"] >= 0
        assert row["recovery_to_resolved_s"] is not None and row["recovery_to_resolved_s"] >= 0
        assert row["onset_to_firing_worst_s"] >= row["onset_to_firing_s"]
        assert row["confirmed_by_exit_code"] is True
        assert row["spikes_tried"] >= 1 and 0 <= row["spikes_fired"] <= row["spikes_tried"]
        assert all(s["duration_s"] < duration_seconds(row["for"]) for s in row["spikes"])
    assert set(doc["goals"]) == {"critical_fire_within_3m", "no_alert_fires_on_spike_shorter_than_for"}
    assert all(isinstance(v, bool) for v in doc["goals"].values())


def test_query_cost_quick(tmp_path):
    doc = run_quick("query_cost", tmp_path)
    boards = {d["dashboard"]: d for d in doc["dashboards"]}
    titles = {build()["title"] for build in dashboards.DASHBOARDS.values()}
    # Every dashboard's refresh, and the fleet dashboard's per-instance row opened for one instance.
    assert set(boards) == titles | {"LLM fleet: Instance mistral-inference-01 opened"}
    assert {"Mistral.rs inference", "LLM fleet"} <= set(boards)
    fleet = boards["LLM fleet"]
    assert fleet["round_ratios"] and abs(fleet["median_round_ratio"] - sorted(fleet["round_ratios"])[len(fleet["round_ratios"]) // 2]) <= 0.05
    # The collapsed row's panels are not part of the refresh; opened, they are all that is queried.
    opened = boards["LLM fleet: Instance mistral-inference-01 opened"]
    assert all('instance=~"mistral-inference-01"' in q["expr"] for q in opened["per_query"])
    assert not any("mistral-inference-01" in q["expr"] for q in fleet["per_query"])
    # Records over records (the fleet's, the SLOs') are backfilled after the per-instance ones they read.
    stages = doc["setup"]["rule_stages"]
    assert "llm-schema-mistralrs" in stages[0] and {"llm-fleet", "llm-slo"} <= set(stages[-1]) and len(stages) >= 2
    for board in boards.values():
        assert board["queries"] == len(board["per_query"]) > 0
        assert board["queries_with_recording_rules"] > 0
        # The raw equivalents compute the same series as the recording rules.
        assert board["series_mismatches"] == []
        for q in board["per_query"]:
            assert "$" not in q["expr"] and "$" not in q["raw"]
            if q["mapped"]:
                assert not re.search(r"(?<![A-Za-z0-9_:])llm:", q["raw"]), q  # a record left unexpanded (vllm: is raw)
            else:
                assert q["raw"] == q["expr"], q
        # The backfill holds mistral.rs series, so the engine panels have data to compare.
        assert any(q["mapped"] and q["recorded_series"] > 0 for q in board["per_query"])
        assert board["raw_samples"] > board["recorded_samples"] > 0
    assert doc["setup"]["openmetrics"]["samples"] > 0
    assert doc["setup"]["series_at_end"]["recorded"] > 0
    assert isinstance(doc["goals"]["mistral_dashboard_10x_cheaper"], bool)
    assert isinstance(doc["goals"]["fleet_dashboard_20x_cheaper"], bool)


def test_series_per_instance_quick(tmp_path):
    doc = run_quick("series_per_instance", tmp_path)
    (result,) = doc["results"]
    # The job keeps only what the recording rules read, so relabelling must drop something.
    assert 0 < result["series_after"] < result["series_before"]
    # Every scenario adds series (5xx, preemptions) to what healthy traffic alone exposes.
    assert 0 < result["healthy_only_after"] < result["series_after"]
    assert result["healthy_only_after"] < result["healthy_only_before"] < result["series_before"]
    assert result["stored_series_incl_synthetic"] == result["series_after"] + result["synthetic_series"]
    assert sum(result["before_by_metric"].values()) == result["series_before"]
    assert sum(result["after_by_metric"].values()) == result["series_after"]
