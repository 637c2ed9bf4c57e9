"""Registers the README's Ollama section: how to scrape existing Ollama exporters, and what every
engine and exporter provides, signal by signal and alert by alert.

Every table is generated from the engine mappings (llmstack/engines.py), the scrape jobs
(llmstack/prometheus.py) and the alerts (llmstack/rules.py), so the README cannot drift from what
the stack records and alerts on. `scripts/render` writes it between the `ollama` markers.
"""

from __future__ import annotations

import dataclasses
import re

from . import engines, prometheus, rules
from .artifacts import README_SECTIONS, stack_config
from .config import OLLAMA_EXPORTERS, OllamaTarget, StackConfig

SECTION = "ollama"
# An example address per exporter kind, for the config the section shows and renders from.
_EXAMPLE_TARGETS = {"norskhelsenett": "ollama-metrics.internal:8080", "seed": "10.0.0.7:9000"}
_LLM_NAME_RE = re.compile(r"llm:[a-z0-9_:]+")


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def example_config() -> StackConfig:
    """The dev stack's config with one target of every exporter kind."""
    cfg = stack_config("dev")
    targets = tuple(OllamaTarget(e, _EXAMPLE_TARGETS[e], prometheus.OLLAMA_METRICS_PATH) for e in OLLAMA_EXPORTERS)
    return dataclasses.replace(cfg, prometheus=dataclasses.replace(cfg.prometheus, ollama_targets=targets))


def _signal_table(mappings: list[engines.EngineMapping]) -> str:
    seen: dict = {}
    for m in mappings:
        for signal in m.signals:
            seen.setdefault(signal.name, signal)
    rows = ["| record | unit | " + " | ".join(f"`{m.name}`" for m in mappings) + " |", "|---|---|" + "---|" * len(mappings)]
    for signal in seen.values():
        cells = []
        for m in mappings:
            cells.append(_cell(m.caveats.get(signal, "yes")) if signal in m.signals else "no")
        rows.append(f"| `{signal.name}` | {signal.unit} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def alert_can_fire(alert: rules.AlertRule, mapping: engines.EngineMapping) -> bool:
    """Whether `alert` can fire for `mapping`'s engine: it reads only shared series the mapping
    records, or (the target alerts) the `up` series of the mapping's job."""
    read = set(_LLM_NAME_RE.findall(alert.expr))
    if read:
        return read <= {s.name for s in mapping.signals}
    job = rf'(?<![\w-]){re.escape(mapping.job)}(?![\w-])'
    return bool(mapping.engine) and re.search(r"\bup\{", alert.expr) is not None and re.search(job, alert.expr) is not None


def _alert_table(cfg, mappings: list[engines.EngineMapping]) -> str:
    rows = ["| alert | " + " | ".join(f"`{m.name}`" for m in mappings) + " |", "|---|" + "---|" * len(mappings)]
    for alert in rules.alert_rules(cfg):
        cells = ["yes" if alert_can_fire(alert, m) else "no" for m in mappings]
        if "yes" not in cells:
            continue  # not about an inference engine: the Watchdog, the resource alerts
        rows.append(f"| [`{alert.name}`](docs/runbooks.md#{alert.name.lower()}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _keep_lists(cfg) -> str:
    lines = []
    for exporter in OLLAMA_EXPORTERS:
        mapping = engines.ollama_mapping(cfg, exporter)
        kept = ", ".join(f"`{name}`" for name in sorted(mapping.raw_metrics))
        lines.append(f"- `{mapping.job}` (from {mapping.source}) keeps {kept}.")
    return "\n".join(lines)


def readme_section() -> str:
    cfg = example_config()
    mappings = [m for m in engines.mappings(cfg) if m.engine]
    job = next(j.config for j in prometheus.ollama_jobs(cfg) if j.config["job_name"] == engines.ollama_job("norskhelsenett"))
    example = "\n".join(f"    - {t.exporter}@{t.address}" for t in cfg.prometheus.ollama_targets)
    return f"""\
## Ollama: existing exporters in the shared schema

Ollama has no `/metrics` of its own (ollama/ollama#3144), so teams run an exporter or metrics proxy
beside it. The stack does not run Ollama or its exporter; it scrapes the ones you already have and
maps their metrics into the same `llm:*` series as mistral.rs's, labelled `engine="{engines.OLLAMA_ENGINE}"`. The
comparison dashboard and every alert read only those series, so Ollama needs no dashboard or alert
of its own.

### Pointing the stack at Ollama exporters

List each exporter as `EXPORTER@HOST:PORT[/PATH]` in `ollamaTargets` (path `{prometheus.OLLAMA_METRICS_PATH}` when omitted),
with `EXPORTER` the exporter kind, one of {", ".join(f"`{e}`" for e in OLLAMA_EXPORTERS)}:

```yaml
# Pulumi.<env>.yaml
config:
  llmstack:ollamaTargets:
{example}
```

or `pulumi config set --path 'ollamaTargets[0]' norskhelsenett@{_EXAMPLE_TARGETS["norskhelsenett"]} -s <env>`.
Prometheus runs in a container on the stack network, so the address must be reachable from there: a
host name or IP of the machine the exporter runs on (`localhost` would be the Prometheus container),
or a container attached to `llmstack-<env>`. Then `pulumi up` replaces the Prometheus container with
the new config.

| kind | exporter | what it is |
|---|---|---|
| `norskhelsenett` | [NorskHelsenett/ollama-metrics](https://github.com/NorskHelsenett/ollama-metrics) | A proxy in front of Ollama (port 8080 by default, `OLLAMA_HOST` upstream): only requests sent through the proxy are measured. It records a request only when the response names a model, so failed requests leave no trace (no status label, no error signal), and it has no queue, in-flight or time-to-first-token metric. Its `/metrics` keeps answering when Ollama is down: then the request rate drops to zero while the target stays up. |
| `seed` | none known | The naming of the original request, `ollama_http_requests_total` and `ollama_http_request_duration_seconds`, which no well-known exporter produces. The stack reads it as mistral.rs's HTTP metrics with an `ollama_` prefix: a counter and a histogram labelled `method`, `path` (the request path), `status` and `model`, histogram buckets as mistral.rs's `http_request_duration_seconds`. Use it for a proxy of your own that exports those names. |

Each kind is one scrape job, `ollama-<kind>`, with every target of that kind:

| label | value |
|---|---|
| `instance` | the target's host (host:port when two targets share a host), e.g. `{job["static_configs"][0]["labels"]["instance"]}` |
| `engine` | `{engines.OLLAMA_ENGINE}` |
| `env` | the stack name (`dev`, `prod`) |
| `model` | the exporter's own: one Ollama serves many models, and both exporters label every series the rules read with the model of the request, so the job sets none |

Metric relabelling keeps only what a recording rule reads, derived from the mappings in
`llmstack/engines.py`; everything else (the loaded-model gauges, the Go runtime and process series)
is dropped at scrape time:

{_keep_lists(cfg)}

Without `ollamaTargets` there is no Ollama job. The Ollama recording rules are in the rule files
either way (they record nothing without the series), and `LLMTargetDown` watches every engine's job;
`LLMTargetAbsent` watches only the jobs the config has.

### What each engine provides, signal by signal

Generated from the mappings in `llmstack/engines.py`: "yes" where the engine provides the signal as
the schema means it, the difference where it provides it differently, "no" where its metrics do not
have it (and then its record does not exist, rather than reading 0).

{_signal_table(mappings)}

### Alerts, per engine

Every alert is written once over the shared series, so it covers each engine whose mapping records
what the alert reads (`LLMTargetDown` and `LLMTargetAbsent` read each job's `up`). The alerts name
the engine in their labels and text (`engine`, and "ollama serving llama3.2:3b on ..."). What
Ollama's exporters cannot express cannot alert: an outage behind the NorskHelsenett proxy shows as
missing traffic, not as errors.

{_alert_table(cfg, mappings)}

`tests/promtool/ollama_recording_test.yaml` and `tests/promtool/ollama_alerts_test.yaml` check the
recording rules and every alert marked "yes" above on series shaped like each exporter's real
output (names, labels and buckets from `tests/integration/fakes/ollama.py`), against the same rule
files as mistral.rs's tests; `tests/test_ollama.py` checks the scrape jobs and the absent alert for a
stack with Ollama targets.
"""


README_SECTIONS[SECTION] = readme_section
