"""The dashboards and the Grafana rule expressions: lint, PromQL validity, only produced series,
determinism."""

import copy
import json
import os
import re
import subprocess
import tempfile

import pytest
import yaml

from tools import dashboard_lint as lint
from llmstack import dashboards, grafana_alerting, signals
from tools.stacks import ROOT, stack_config
from llmstack.alerts import alert_rules
from llmstack.prometheus import is_produced, produced_series

DASHBOARDS = {
    "inference": dashboards.inference.build,
    "comparison": dashboards.comparison.build,
    "fleet": dashboards.fleet.build,
}
ENVS = ("dev", "prod")


def targets(model):
    for panel in lint.iter_panels(model):
        for target in panel.get("targets", []):
            yield panel, target


def variable_selectors(model):
    """The series selector inside each query variable's label_values(<selector>, <label>)."""
    for var in model["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["query"])
            assert m, var["query"]
            yield var["name"], m.group(1)


def rule_exprs(cfg):
    for rule in grafana_alerting.rule_group_spec(cfg, alert_rules(cfg))["rules"]:
        for data in rule["datas"]:
            model = json.loads(data["model"])
            if "expr" in model:
                yield rule["name"], model["expr"]


def all_queries(cfg):
    """(where, PromQL) for every dashboard query, variable selector and Grafana rule query."""
    out = []
    for name, build in DASHBOARDS.items():
        model = build()
        out += [(f"{name} panel {p['title']!r} {t['refId']}", t["expr"]) for p, t in targets(model)]
        out += [(f"{name} variable {v}", s) for v, s in variable_selectors(model)]
    out += [(f"grafana rule {n}", e) for n, e in rule_exprs(cfg)]
    return out


def substitute(expr):
    """What Grafana sends Prometheus: its interval macros as durations, other variables as regexes."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__interval", "1m")
    return re.sub(r"\$\{\w+\}|\$\w+", ".*", expr)


def promtool_check(exprs):
    """Run `promtool check rules` on the expressions written as recording rules."""
    doc = {"groups": [{"name": "check", "rules": [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs)]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as fh:
        yaml.safe_dump(doc, fh)
        path = fh.name
    try:
        return subprocess.run(["promtool", "check", "rules", path], capture_output=True, text=True, timeout=60)
    finally:
        os.unlink(path)


# --- lint ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_is_lint_clean(name):
    assert [str(f) for f in lint.lint(DASHBOARDS[name]())] == []


def _first_data_panel(d):
    return next(p for p in d["panels"] if p["type"] == "timeseries")


def _first_query_var(d):
    return next(v for v in d["templating"]["list"] if v["type"] == "query")


def _set_expr(d, expr):
    _first_data_panel(d)["targets"][0]["expr"] = expr


# One deliberate break per rule, applied to the real dashboard: each must be reported by its rule.
BREAKS = {
    "template-datasource-rule": lambda d: d["templating"]["list"].pop(0),
    "template-on-time-change-reload": lambda d: _first_query_var(d).update(refresh=1),
    "template-label-promql-rule": lambda d: _first_query_var(d).update(query="up"),
    "panel-datasource-rule": lambda d: _first_data_panel(d).update(datasource={"type": "prometheus", "uid": "some-uid"}),
    "panel-title-description-rule": lambda d: _first_data_panel(d).update(description=""),
    "panel-units-rule": lambda d: _first_data_panel(d)["fieldConfig"]["defaults"].pop("unit"),
    "panel-no-targets-rule": lambda d: _first_data_panel(d).update(targets=[]),
    "target-promql-rule": lambda d: _set_expr(d, "sum(llm:queue_depth{env=~\"$env\"}) # a comment"),
    "target-rate-interval-rule": lambda d: _set_expr(d, 'sum(rate(llm_x_total{env=~"$env"}[5m]))'),
    "target-counter-agg-rule": lambda d: _set_expr(d, 'mistral_http_requests_total{env=~"$env"}'),
    "target-env-matcher-rule": lambda d: _set_expr(d, 'llm:requests:rate5m{instance=~"$instance"}'),
    "target-variables-defined-rule": lambda d: _set_expr(d, 'llm:requests:rate5m{env=~"$env", model=~"$model"}'),
    "dashboard-uid-rule": lambda d: d.update(id=12, version=3),
    "panel-id-unique-rule": lambda d: d["panels"][2].update(id=d["panels"][1]["id"]),
    "panel-gridpos-rule": lambda d: d["panels"][2].update(gridPos=dict(d["panels"][1]["gridPos"])),
}


def test_every_lint_rule_has_a_deliberate_break():
    assert sorted(BREAKS) == sorted(lint.RULES)


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_lint_reports_each_broken_rule(rule):
    broken = copy.deepcopy(dashboards.inference.build())
    BREAKS[rule](broken)
    assert rule in {f.rule for f in lint.lint(broken)}


def test_lint_rejects_a_bad_uid_and_panels_outside_the_grid():
    broken = copy.deepcopy(dashboards.comparison.build())
    broken["uid"] = "not a valid uid"
    broken["panels"][1]["gridPos"]["x"] = 20  # 20 + 6 > 24
    findings = {(f.rule, f.where) for f in lint.lint(broken)}
    assert ("dashboard-uid-rule", "dashboard") in findings
    assert any(rule == "panel-gridpos-rule" and where.startswith(f"panel {broken['panels'][1]['id']!r}") for rule, where in findings)


# --- the PromQL scanner the lint and these tests rely on ---------------------------------------

@pytest.mark.parametrize("expr,names", [
    ('sum by (engine, le) (rate(x_bucket{a="b"}[$__rate_interval]))', {"x_bucket"}),
    ("a / on (instance) group_left (model) b", {"a", "b"}),
    ('label_replace(up, "dst", "$1", "src", "(.*)")', {"up"}),
    ('{__name__="llm:queue_depth", env="dev"} > bool 1e3 and inf', {"llm:queue_depth"}),
    ("count_values(\"v\", y) offset 5m unless sum(z) without (le)", {"y", "z"}),
    ('ALERTS{alertname="Watchdog", alertstate="firing"}', {"ALERTS"}),
    ("histogram_quantile(0.95, sum by (le) (rate(h_bucket[5m:1m])))", {"h_bucket"}),
])
def test_metric_names_are_extracted_without_functions_labels_or_keywords(expr, names):
    assert lint.metric_names(expr) == names


# --- every query is valid PromQL and reads only what the stack produces --------------------------

@pytest.mark.parametrize("env", ENVS)
def test_every_query_is_valid_promql(env):
    queries = all_queries(stack_config(env))
    result = promtool_check([substitute(q) for _, q in queries])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout


def test_promtool_check_does_catch_invalid_promql():
    result = promtool_check(["sum by (engine) (rate(llm:requests:rate5m[1m])", "up"])
    assert result.returncode != 0


@pytest.mark.parametrize("env", ENVS)
def test_queries_name_only_series_the_stack_produces(env):
    cfg = stack_config(env)
    produced = produced_series(cfg)
    missing = {
        where: sorted(n for n in lint.metric_names(q) if not is_produced(n, produced))
        for where, q in all_queries(cfg)
    }
    assert {w: m for w, m in missing.items() if m} == {}


def test_comparison_dashboard_queries_only_the_shared_schema():
    shared = {s.name for s in signals.ALL}
    model = dashboards.comparison.build()
    for panel, target in targets(model):
        names = lint.metric_names(target["expr"]) - {"ALERTS"}
        assert names <= shared, (panel["title"], names)
        if panel["type"] == "timeseries":
            assert target["legendFormat"] == "{{engine}}"
            assert target["expr"].startswith(("sum by (engine)", "max by (engine)"))


def test_inference_dashboard_covers_the_requested_kpis():
    model = dashboards.inference.build()
    read = set().union(*(lint.metric_names(t["expr"]) for _, t in targets(model)))
    s = signals
    wanted = {
        s.REQUESTS_RATE, s.LATENCY_AVG, s.LATENCY_P95, s.ERROR_RATIO, s.TOKENS_PROCESSED_RATE, s.TOKENS_GENERATED_RATE,
        s.TTFT_P95, s.ITL_P95, s.IN_FLIGHT, s.QUEUE_DEPTH, s.RUNNING, s.CAPACITY, s.KV_CACHE_UTILISATION,
        s.PREEMPTIONS_RATE, s.MODEL_LOAD_SECONDS, s.GPU_UTILISATION, s.GPU_MEMORY_USED, s.GPU_MEMORY_TOTAL,
        s.CONTAINER_CPU, s.CONTAINER_MEMORY,
    }
    assert {w.name for w in wanted} <= read
    assert "ALERTS" in read


DERIVED_UNITS = {"Error budget left (30 days)": "percentunit"}  # 1 - mean burn rate: a share of the budget


def test_panel_units_and_descriptions_come_from_the_schema():
    by_name = {s.name: s for s in signals.ALL}
    for build in DASHBOARDS.values():
        for panel in lint.iter_panels(build()):
            read = {by_name[n] for t in panel.get("targets", []) for n in lint.metric_names(t["expr"]) if n in by_name}
            if not read:
                continue
            # A panel that derives another quantity from a series says so in its own unit.
            expected = DERIVED_UNITS.get(panel["title"]) or {s.unit for s in read}.pop()
            assert panel["fieldConfig"]["defaults"]["unit"] == expected, panel["title"]
            for s in read:
                assert s.description in panel["description"], panel["title"]


def test_gpu_panels_have_no_fallback_that_could_error():
    # On dev there is no GPU: the GPU series are simply absent, so the panels show "No data".
    gpu = {s.name for s in signals.ALL if s.name.startswith("llm:gpu_")}
    for panel, target in targets(dashboards.inference.build()):
        if lint.metric_names(target["expr"]) & gpu:
            assert lint.metric_names(target["expr"]) <= gpu
            assert "No data without a GPU" in panel["description"]


# --- canonical and deterministic ------------------------------------------------------------------

@pytest.mark.parametrize("slug", sorted(dashboards.DASHBOARDS))
def test_rendering_is_deterministic_and_canonical(slug):
    build = dashboards.DASHBOARDS[slug]
    path = f"assets/dashboards/{slug}.json"
    first, second = dashboards.render(build()), dashboards.render(build())
    assert first == second
    model = json.loads(first)
    assert "id" not in model and "version" not in model
    assert model["uid"] in (dashboards.inference.UID, dashboards.comparison.UID, dashboards.fleet.UID)
    assert first == json.dumps(model, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    with open(os.path.join(ROOT, path)) as fh:
        assert fh.read() == first, f"{path} is stale: run scripts/render"


def test_every_panel_and_variable_uses_the_datasource_variable():
    for build in DASHBOARDS.values():
        model = build()
        ds = [v for v in model["templating"]["list"] if v["type"] == "datasource"]
        assert [(v["name"], v["query"], v["current"]["value"]) for v in ds] == [("datasource", "prometheus", dashboards.DATASOURCE_UID)]
        assert {v["name"] for v in model["templating"]["list"]} == {"datasource", "env", "instance", "engine"}
        for panel, target in targets(model):
            assert panel["datasource"]["uid"] == target["datasource"]["uid"] == "${datasource}"


# --- the Grafana rules forward exactly the Prometheus alerts --------------------------------------

@pytest.mark.parametrize("env", ENVS)
def test_one_grafana_rule_forwards_each_prometheus_alert(env):
    cfg = stack_config(env)
    alerts = {a.name: a for a in alert_rules(cfg)}
    rules = grafana_alerting.rule_group_spec(cfg, alert_rules(cfg))["rules"]
    assert sorted(r["name"] for r in rules) == sorted(alerts)
    for rule in rules:
        alert = alerts[rule["name"]]
        query, condition = (json.loads(d["model"]) for d in rule["datas"])
        assert query["expr"] == f'ALERTS{{alertname="{alert.name}", alertstate="firing"}}'
        assert rule["datas"][0]["datasource_uid"] == dashboards.DATASOURCE_UID
        assert rule["datas"][1]["datasource_uid"] == condition["datasource"]["uid"] == "__expr__"
        assert rule["condition"] == condition["refId"] == "B" and condition["expression"] == "A"
        assert rule["labels"] == {**dict(alert.labels), "severity": alert.severity}
        assert rule["annotations"]["runbook_url"] == alert.runbook_url
        assert rule["annotations"]["summary"] == grafana_alerting.grafana_annotation(alert.summary)
        assert rule["annotations"]["description"] == grafana_alerting.grafana_annotation(alert.description)
        assert rule["for_"] == "0s" and rule["exec_err_state"] == "Error"
        assert rule["no_data_state"] == ("Alerting" if alert.name == "Watchdog" else "OK")
