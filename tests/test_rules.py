"""The rule definitions and the scrape job as data: alerts, runbooks, keep-list, produced series."""

import dataclasses
import re

import pytest

from llmstack import alerts, engines, fleet, probes, prometheus, resources, signals, slo
from llmstack.engines import mistralrs
from llmstack.alerts import probes as probe_alerts
from llmstack.alerts import resources as resource_alerts
from tools.stacks import ROOT, stack_config
from llmstack.config import load_defaults
from tests.integration.fakes.mistral import FakeMistral

CFG = stack_config("dev")
ALERTS = alerts.alert_rules(CFG)
NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def test_alert_names_are_unique_camel_case_and_stable_in_order():
    names = [a.name for a in ALERTS]
    assert len(names) == len(set(names))
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]+", n) for n in names)
    assert names == [a.name for a in alerts.alert_rules(CFG)]


@pytest.mark.parametrize("alert", ALERTS, ids=lambda a: a.name)
def test_every_alert_has_severity_annotations_and_its_runbook(alert):
    assert alert.severity in ("critical", "warning", "none")
    assert alert.labels["severity"] == alert.severity
    assert (alert.severity == "none") == (alert.name == "Watchdog")
    assert alert.summary and alert.description
    assert alert.runbook_url == f"https://github.com/example/llmstack/blob/main/docs/runbooks.md#{alert.name.lower()}"
    rule = alert.prometheus_rule()
    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}


def test_every_alert_has_a_runbook_section_and_every_section_an_alert():
    with open(f"{ROOT}/docs/runbooks.md") as fh:
        headings = {h.strip().lower() for h in re.findall(r"^## (.+)$", fh.read(), re.M)}
    assert headings == {a.name.lower() for a in ALERTS}


def test_there_is_a_warning_and_a_critical_alert_for_latency_errors_and_kv_cache():
    by_name = {a.name: a for a in ALERTS}
    for family in ("LLMHighRequestLatency", "LLMHighErrorRatio", "LLMKVCacheExhaustion"):
        assert by_name[family + "Warning"].severity == "warning"
        assert by_name[family + "Critical"].severity == "critical"


def test_thresholds_and_queue_for_come_from_config():
    cfg = stack_config("dev")
    custom = alerts.alert_rules(
        load_defaults("dev", alertErrorRatioCriticalPercent="35", alertQueueSaturationFor="7m", alertKvCacheWarningPercent="80")
    )
    by_name = {a.name: a for a in custom}
    assert "> 0.35" in by_name["LLMHighErrorRatioCritical"].expr
    assert by_name["LLMQueueSaturated"].for_ == "7m"
    assert "> 0.8" in by_name["LLMKVCacheExhaustionWarning"].expr
    assert {a.name: a.expr for a in alerts.alert_rules(cfg)} != {a.name: a.expr for a in custom}


PROMQL_WORDS = {"and", "or", "unless", "on", "ignoring", "by", "absent", "vector", "min_over_time", "max", "count", "changes", "avg_over_time", "time", "timestamp"}


def test_alerts_read_only_series_the_stack_produces():
    produced = prometheus.produced_series(CFG)
    for alert in ALERTS:
        # drop label matchers, `on (...)` label lists, range selectors and `offset <duration>`; what is
        # left are metric names and PromQL words
        expr = re.sub(r"\{[^}]*\}|\b(on|by) \([^)]*\)|\[[^\]]*\]|\boffset \w+", " ", alert.expr)
        names = [n for n in NAME_RE.findall(expr) if n not in PROMQL_WORDS and not n[0].isdigit()]
        assert names or alert.name == "Watchdog", alert.name
        for name in names:
            assert prometheus.is_produced(name, produced), f"{alert.name} reads {name}"


def test_inference_alerts_use_only_shared_schema_series():
    schema_names = {s.name for m in engines.mappings(CFG) for s in m.signals} | {r["record"] for r in slo.records(CFG)}
    resource = {a.name for a in resource_alerts.alert_rules(CFG)}  # over resource records: tests/test_resources.py
    probe = {a.name for a in probe_alerts.alert_rules(CFG)}  # over probe records: tests/test_probes.py
    for alert in ALERTS:
        if alert.name in ("LLMTargetDown", "LLMTargetAbsent", "LLMTargetFlapping", "LLMFleetReplicasDown", "Watchdog") or alert.name in resource | probe:
            continue
        names = set(re.findall(r"llm:[a-z0-9_:]+", alert.expr))
        assert names and names <= schema_names, alert.name
        assert not re.search(r"\bmistral", alert.expr), f"{alert.name} must not read raw engine metrics"


# ---------------------------------------------------------------------------------------------
# Engine mappings and the scrape job's keep-list
# ---------------------------------------------------------------------------------------------


def test_every_mistral_selector_names_the_job():
    mapping = next(m for m in engines.mappings(CFG) if m.engine == "mistralrs")
    for signal, expr in mapping.signals.items():
        for selector in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*\{[^}]*\}", expr):
            assert 'job="mistral"' in selector, f"{signal.name}: {selector}"


def test_every_record_aggregates_to_the_schema_labels():
    for group in prometheus.recording_groups(CFG):
        if group["name"] == resources.GROUP:
            continue  # per GPU or container: tests/test_resources.py
        if group["name"] == slo.GROUP:
            # Over the schema records, so the labels stay theirs (plus `slo`, set by the rule).
            assert all(rule["labels"].keys() == {slo.LABEL} and "llm:" in rule["expr"] for rule in group["rules"])
            continue
        if group["name"] == fleet.GROUP:
            # Over every instance: the schema labels but `instance`.
            assert all(re.fullmatch(r"(sum|max|count) by \(engine, env, model\) \(llm:[a-z0-9_:]+\)( / \(sum by \(engine, env, model\) \(llm:[a-z0-9_:]+\) > 0\))?", rule["expr"])
                       for rule in group["rules"]), group["rules"]
            continue
        if group["name"] == probes.GROUP:
            # Probes carry the engine labels plus which probe it was.
            assert all("by (engine, env, instance, model, probe)" in rule["expr"] for rule in group["rules"])
            continue
        for rule in group["rules"]:
            # summed, or averaged where summing would be wrong (a utilisation ratio across engine processes)
            # or, for restarts, the most resets of any one series
            assert re.search(r"(sum|avg|max) by \((le, )?engine, env, instance, model\)", rule["expr"]), rule["record"]


def test_mistral_provides_every_inference_kpi_the_stack_monitors():
    provided = {s for m in engines.mappings(CFG) if m.engine == "mistralrs" for s in m.signals}
    wanted = {
        signals.REQUESTS_RATE, signals.ERROR_RATIO, signals.LATENCY_P50, signals.LATENCY_P95, signals.LATENCY_P99,
        signals.TTFT_P95, signals.ITL_P95, signals.TOKENS_PROCESSED_RATE, signals.TOKENS_GENERATED_RATE,
        signals.QUEUE_DEPTH, signals.RUNNING, signals.CAPACITY, signals.KV_CACHE_UTILISATION, signals.PREEMPTIONS_RATE,
    }
    assert wanted <= provided


def _relabel(name: str, configs: list) -> str | None:
    """Prometheus's metric relabelling of __name__ for the two actions the mistral job uses
    (RE2 regexes are anchored; these ones mean the same in Python's re)."""
    for rc in configs:
        match = re.fullmatch(rc["regex"], name)
        if rc.get("action") == "keep":
            if not match:
                return None
        elif match:
            name = match.expand(rc["replacement"].replace("${1}", r"\1"))
    return name


@pytest.mark.parametrize("upstream", ["v0.9.2", "main"])
def test_the_scrape_job_keeps_what_the_rules_read_from_real_mistral_output(upstream):
    fake = FakeMistral(upstream=upstream)
    for scenario in ("healthy", "kv_cache_exhaustion", "error_burst"):
        fake.set_scenario(scenario)
        fake.advance(60)
    exposed = {NAME_RE.match(line).group() for line in fake.exposition().splitlines() if line and not line.startswith("#")}
    job = mistralrs.scrape_jobs(CFG)[0].config
    stored = {_relabel(n, job["metric_relabel_configs"]) for n in exposed} - {None}
    read = engines.raw_metrics_for_job(CFG, "mistral")
    # everything stored is read by a rule, and every name a rule reads is stored when the server has it
    assert stored <= read
    # v0.9.2 has no capacity gauge (llm:sequences_capacity falls back to --max-seqs)
    allowed_missing = {"mistralrs_sequences_capacity"} if upstream == "v0.9.2" else set()
    assert read - stored == allowed_missing
    assert "mistral_http_requests_total" in stored and not any(n.startswith("http_") for n in stored)
    assert not any("body_bytes" in n for n in stored)


def test_keep_list_is_exactly_what_the_mapping_reads():
    assert mistralrs.scrape_jobs(CFG)[0].series == engines.raw_metrics_for_job(CFG, "mistral")
    assert engines.raw_metrics_for_job(CFG, "mistral") == {
        "mistral_http_requests_total",
        "mistral_http_request_duration_seconds_bucket",
        "mistral_http_request_duration_seconds_sum",
        "mistral_http_request_duration_seconds_count",
        "mistral_http_requests_in_flight",
        "mistralrs_time_to_first_token_seconds_bucket",
        "mistralrs_time_to_first_token_seconds_count",
        "mistralrs_inter_token_latency_seconds_bucket",
        "mistralrs_inter_token_latency_seconds_count",
        "mistralrs_tokens_processed_total",
        "mistralrs_sequences_waiting",
        "mistralrs_sequences_running",
        "mistralrs_sequences_capacity",
        "mistralrs_kv_cache_blocks_used",
        "mistralrs_kv_cache_blocks_total",
        "mistralrs_paged_preemptions_total",
        "mistralrs_prefix_cache_lookups_total",
        "mistralrs_prefix_cache_hits_total",
    }


def test_produced_series_lists_records_kept_metrics_and_builtins():
    produced = prometheus.produced_series(CFG)
    for name in ("ALERTS", "ALERTS_FOR_STATE", "up", "scrape_duration_seconds", "llm:requests:rate5m",
                 "mistral_http_requests_total", "prometheus_tsdb_storage_blocks_bytes"):
        assert prometheus.is_produced(name, produced), name
    for name in ("http_requests_total", "mistral_http_request_body_bytes_bucket", "mistralrs_sequences_completed_total"):
        assert not prometheus.is_produced(name, produced), name


def test_rendering_is_deterministic():
    assert prometheus.render_prometheus_yml(CFG) == prometheus.render_prometheus_yml(stack_config("dev"))
    assert prometheus.render_rule_files(CFG) == prometheus.render_rule_files(stack_config("dev"))


def test_label_values_with_a_dollar_are_escaped_for_relabelling():
    # Config refuses a `$` in every label value; the escaping is the second line of defence.
    valid = load_defaults("dev")
    cfg = dataclasses.replace(valid, mistral=dataclasses.replace(valid.mistral, model_id="org/model$1"))
    labels = {r["target_label"]: r["replacement"] for r in mistralrs.scrape_jobs(cfg)[0].config["relabel_configs"]}
    assert labels["model"] == "org/model$$1"
