"""Registers the rendered Prometheus files and the README's Prometheus section as artifacts.

The README section is generated: the scrape job, the keep-list, the recording rules and the alerts
come from llmstack/prometheus.py, engines.py and rules.py, and each alert's detection time is
measured with promtool on the firing cases in tests/promtool (llmstack/detection.py).
"""

from __future__ import annotations

import glob
import os
import re

from . import detection, engines, prometheus, rules
from .artifacts import ARTIFACTS, README_SECTIONS, ROOT, STACK_FILES, stack_config

ASSETS_DIR = "assets/prometheus"
PROMTOOL_TESTS = "tests/promtool"
README = "README.md"
SECTION = "prometheus"


def _register_stack_files(env: str) -> None:
    ARTIFACTS[f"{ASSETS_DIR}/{env}/prometheus.yml"] = lambda: prometheus.render_prometheus_yml(stack_config(env))
    for name in prometheus.render_rule_files(stack_config(env)):
        ARTIFACTS[f"{ASSETS_DIR}/{env}/{prometheus.RULES_SUBDIR}/{name}"] = (
            lambda name=name: prometheus.render_rule_files(stack_config(env))[name]
        )


# ---------------------------------------------------------------------------------------------
# README section
# ---------------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(seconds), 60)
    if not minutes:
        return f"{rest}s"
    return f"{minutes}m" + (f"{rest:02d}s" if rest else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def measured_detections() -> dict[str, detection.Detection]:
    """Detection times from the committed promtool tests, against the dev rules as rendered now."""
    tests = {}
    for path in sorted(glob.glob(os.path.join(ROOT, PROMTOOL_TESTS, "*.yaml"))):
        with open(path) as fh:
            tests[os.path.basename(path)] = fh.read()
    return detection.measure(tests, prometheus.render_rule_files(stack_config("dev")))


def _scrape_section(cfg) -> str:
    job = prometheus.mistral_job(cfg)
    kept = ", ".join(f"`{name}`" for name in sorted(job.series))
    renamed = ", ".join(f"`{name}`" for name in engines.MISTRAL_HTTP_METRICS)
    return f"""\
### The `mistral` scrape job

The target is the MistralRs component's output: `{prometheus.DEFAULT_MISTRAL_TARGET}`, path `{prometheus.MISTRAL_METRICS_PATH}`
(mistral.rs serves `/metrics` on its API port), scraped every `{cfg.prometheus.scrape_interval}` (`scrapeInterval`; timeout
`scrapeTimeout`); rules are evaluated every `{cfg.prometheus.evaluation_interval}` (`evaluationInterval`).

Relabelling gives every series of the job the labels the shared schema groups by:

| label | value |
|---|---|
| `instance` | `{prometheus.MISTRAL_INSTANCE}` (readable and stable, instead of the address) |
| `model` | `mistralModelId`, the model the server was started with |
| `engine` | `{engines.MISTRAL_ENGINE}` |
| `env` | the stack name (`dev`, `prod`) |

mistral.rs's HTTP series carry their own `model` label (the model named in the request, or `none` /
`unknown`); the target's `model` wins, and Prometheus keeps the server's value as `exported_model`.

Metric relabelling then renames {renamed} to `mistral_http_*`, so the original request's
`rate(mistral_http_requests_total[5m])` works and another job's `http_*` metrics cannot mix with them,
and keeps only what a recording rule reads. The keep-list is derived from the engine mapping in
`llmstack/engines.py`, never written by hand: {kept}. Everything else is dropped at scrape time, e.g.
`http_request_body_bytes_*`, `mistralrs_sequences_completed_total`, `mistralrs_prefix_cache_evictions_total`
and the speculative-decoding counters. Prometheus also scrapes itself (job `prometheus`, kept whole).
"""


def _recording_section(cfg) -> str:
    rows = ["| record | unit | meaning | mistralrs |", "|---|---|---|---|"]
    # The mistralrs column only; the README's Ollama section compares every engine.
    for mapping in [m for m in engines.mappings(cfg) if m.engine == engines.MISTRAL_ENGINE]:
        for signal in mapping.signals:
            note = mapping.caveats.get(signal, "yes")
            rows.append(f"| `{signal.name}` | {signal.unit} | {_cell(signal.description)} | {_cell(note)} |")
    return f"""\
### Recording rules: the shared `llm:*` schema

`llmstack/engines.py` says, per engine, how each shared signal is computed from that engine's raw
series; `llmstack/rules.py` records one series per signal per engine, labelled `engine`, `env`,
`instance` and `model` (rule group `llm-schema-<engine>`, file `rules/{prometheus.RECORDING_FILE}`). Dashboards and alerts
query only these names, so another engine needs one more mapping and nothing else. Rates and
quantiles use 5-minute windows; three signals also have a 1-minute twin that only the alerts use.

{chr(10).join(rows)}
"""


def reads_recording_rules(cfg, alert: rules.AlertRule) -> bool:
    """Whether the alert's expression reads a recorded series (one more evaluation hop)."""
    recorded = {r["record"] for group in rules.recording_groups(cfg) for r in group["rules"]}
    return any(re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", alert.expr) for name in recorded)


def _alerts_section(cfg, found: dict) -> str:
    rows = [
        "| alert | severity | fires when | for | incident in the firing test | detection (measured) | worst case |",
        "|---|---|---|---|---|---|---|",
    ]
    for alert in rules.alert_rules(cfg):
        det = found.get(alert.name)
        if det is None:
            incident, measured, worst = "always fires (pipeline heartbeat)", "n/a", "n/a"
        else:
            incident = det.incident
            measured = _duration(det.measured_seconds)
            worst = _duration(det.worst_case_seconds(reads_recording_rules(cfg, alert)))
        anchor = f"docs/runbooks.md#{alert.name.lower()}"
        rows.append(
            f"| [`{alert.name}`]({anchor}) | {alert.severity} | `{_cell(alert.expr)}` | {alert.for_} | "
            f"{_cell(incident)} | {measured} | {worst} |"
        )
    t = cfg.thresholds
    return f"""\
### Alerts

Written once in `llmstack/rules.py` over the shared series, so every engine with a signal gets the
alert; the Prometheus rule file (`rules/{prometheus.ALERTS_FILE}`) and the Grafana rules come from that list.
Thresholds come from config (defaults: p95 latency {t.latency_p95_warning_seconds}s/{t.latency_p95_critical_seconds}s, TTFT {t.ttft_p95_warning_seconds}s,
errors {t.error_ratio_warning_percent}%/{t.error_ratio_critical_percent}%, KV cache {t.kv_cache_warning_percent}%/{t.kv_cache_critical_percent}%, queue saturation for `alertQueueSaturationFor`). Every
alert has a `severity` label and `summary`, `description` and `runbook_url` annotations; the runbook
is the linked section of [docs/runbooks.md](docs/runbooks.md).

How `for` was chosen: critical alerts fire within 3 minutes of a sustained breach and no alert fires
on a spike shorter than its `for` (measured in [docs/benchmarks.md](docs/benchmarks.md)). A windowed
signal turns true some time after a breach starts and lets go some time after it ends; `for` keeps
its meaning only when the second is no longer than the first. A p95 is the worst case (a few slow
requests in its window are enough), so the latency and TTFT alerts require the 5-minute p95 (a few
slow requests at low traffic do not page) and the 1-minute p95 now *and* one minute ago
(`offset {engines.SHORT_WINDOW}`): the breach must span two consecutive minutes, so the condition holds about as long as the
breach did, and detection is about `for` plus a minute. `LLMSequencesPreempted` does the same with
two consecutive 5-minute windows. The critical error alert reads the 1-minute ratio alone (the
5-minute one took two thirds of its window to pass 20% on a 30% burst), plus at least
{rules.MIN_FAILED_REQUESTS_5M} failed requests in 5 minutes so a couple of failures at low traffic do not page; a ratio far
above its threshold still lets go later than it starts, so a total outage a little shorter than
its `for` can page (the error alerts' trade-off, see docs/benchmarks.md).

Detection times are not estimates: `llmstack/detection.py` replays each alert's firing test from
`tests/promtool/mistral_alerts_test.yaml` in promtool and reports the first evaluation at which the
alert fires, counted from the incident's first sample (default intervals: 15s scrapes, 15s
evaluations). promtool samples and evaluates on one aligned grid; the worst case adds what a real
Prometheus can add on top: up to one scrape interval before a scrape sees the incident, one
evaluation interval before the rules run on it, and, for alerts over recorded series, one more
evaluation interval because the recording and alerting groups run at independent offsets. The
detection time also depends on how far past the threshold the incident goes (a 5-minute signal
needs part of its window to fill): each row names the incident measured. `scripts/render`
recomputes this table.

{chr(10).join(rows)}

Every alert has a firing case (exact labels and annotations), a spike shorter than its `for` that
must stay quiet (and, where the spike reaches the threshold, is shown to have been pending), and a
healthy system that raises nothing but the Watchdog; `tests/test_promtool.py` fails when an alert
lacks any of them. Recording rules are checked with `promql_expr_test` in
`tests/promtool/mistral_recording_test.yaml`, on series shaped like mistral.rs v0.9.2's.
"""


def _deploy_section(cfg) -> str:
    return f"""\
### The Prometheus component, and why config changes replace the container

`components/prometheus.py` (`llmstack:index:Prometheus`) runs the pinned `prometheusImage`
(`{cfg.prometheus.image}` by default) with `--config.file={prometheus.CONFIG_FILE}`, the TSDB at
`{prometheus.TSDB_PATH}` on the named volume `llmstack-<env>-prometheus-data`, retention from
`prometheusRetentionTime` and `prometheusRetentionSize`, and `--web.enable-lifecycle`. It is published
on `prometheusPublishAddress:prometheusPublishPort` (127.0.0.1:9090 by default; stack output
`prometheusUrl`), reachable as `http://prometheus:9090` on the stack network, and Docker's health
check polls `/-/ready`. The rendered `prometheus.yml` and rule files are uploaded into
`{prometheus.CONFIG_DIR}` when the container is created; the same renders are committed under
`assets/prometheus/<env>/` and checked by `promtool check config` / `check rules` (Debian's 2.42, so
nothing newer than 2.42's syntax is used).

Config changes take effect on `pulumi up` by **replacement**, not reload. The Docker provider uploads
files only when it creates a container, and any change to `uploads` forces a new container
(kreuzwerker/docker `upload` is ForceNew). A reload would need the files outside the container, on a
host path the provider cannot write when it talks to a remote Docker host, plus a POST to
`/-/reload` after each change. Replacing costs a few seconds without scrapes; the TSDB survives
because it lives on the named volume (retained on delete and protected on prod), and the
container is deleted before its replacement is created, since the name, the published port and the
TSDB lock allow only one at a time. The image runs as `nobody`: the volume is mounted at the image's
own data directory, so Docker initialises the new volume with that directory's ownership and
Prometheus can write to it without running as root.
"""


def readme_section() -> str:
    cfg = stack_config("dev")
    found = measured_detections()
    return (
        "## Prometheus: scrape job, recording rules and alerts\n\n"
        + _deploy_section(cfg)
        + "\n"
        + _scrape_section(cfg)
        + "\n"
        + _recording_section(cfg)
        + "\n"
        + _alerts_section(cfg, found)
    )


for _env in sorted(STACK_FILES):
    _register_stack_files(_env)
README_SECTIONS[SECTION] = readme_section
