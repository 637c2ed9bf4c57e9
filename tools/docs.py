"""The generated tables of README.md and docs/: each one derived from the code it describes, so the
docs cannot drift from what the stack records, scrapes and alerts on.

The prose around the tables is hand-written Markdown; only the parts between
`<!-- name:start -->` / `<!-- name:end -->` markers come from here. SECTIONS says which file holds
which section. Nothing here runs promtool (the measured detection times are
tools/detection_times.py's job).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable

from llmstack import alerts, config as cfgmod, engines, fleet, prometheus, resources, signals, slo, topology
from llmstack.alerts import resources as resource_alerts
from llmstack.alerts.base import AlertRule, runbook_anchor
from llmstack.config import EngineTarget, OllamaTarget, StackConfig
from llmstack.engines import EngineMapping, mistralrs, ollama

from .stacks import stack_config


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def _names(names) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))


def _runbook_link(name: str, prefix: str) -> str:
    return f"[`{name}`]({prefix}runbooks.md#{runbook_anchor(name)})"


# --- README: the config table ---------------------------------------------------------------------


def config_reference() -> str:
    rows = ["| key | type | default | allowed | description |", "|---|---|---|---|---|"]
    for k in sorted(cfgmod.knobs(), key=lambda k: k.key):
        if k.required:
            shown = "*(required)*"
        elif k.default in ("", []):
            shown = "*(empty)*"
        elif isinstance(k.default, bool):
            shown = f"`{str(k.default).lower()}`"
        elif isinstance(k.default, list):
            shown = "`" + ", ".join(k.default) + "`"
        else:
            shown = f"`{k.default}`"
        secret = " *secret*" if k.secret else ""
        rows.append(f"| `{k.key}`{secret} | {k.kind.shown_type} | {shown} | {_cell(k.kind.allowed())} | {_cell(k.description)} |")
    return "\n".join(rows) + "\n"


# --- docs/prometheus.md -------------------------------------------------------------------------------


def mistral_keep_list() -> str:
    job = mistralrs.scrape_jobs(stack_config("dev"))[0]
    return f"{_names(job.series)}.\n"


def mistral_records() -> str:
    cfg = stack_config("dev")
    rows = ["| record | unit | meaning | mistralrs |", "|---|---|---|---|"]
    for m in mistralrs.mappings(cfg):
        for signal in m.signals:
            note = m.caveats.get(signal, "yes")
            rows.append(f"| `{signal.name}` | {signal.unit} | {_cell(signal.description)} | {_cell(note)} |")
    return "\n".join(rows) + "\n"


# --- docs/alerts.md ---------------------------------------------------------------------------------


def alert_table() -> str:
    cfg = stack_config("dev")
    rows = ["| alert | severity | fires when (dev) | for |", "|---|---|---|---|"]
    for a in alerts.alert_rules(cfg):
        rows.append(f"| {_runbook_link(a.name, '')} | {a.severity} | `{_cell(a.expr)}` | {a.for_ or '0s'} |")
    return "\n".join(rows) + "\n"


# --- docs/resources.md ---------------------------------------------------------------------------------


def resource_jobs() -> str:
    cfg = stack_config("dev")
    containers = r"\|".join(topology.STACK_CONTAINERS)  # a bare | would end the table cell
    cadvisor, dcgm = topology.address("cadvisor"), topology.address("dcgm")
    return (
        "| job | target | on | keeps |\n|---|---|---|---|\n"
        f"| `{resources.CADVISOR_JOB}` | `{cadvisor}` | every stack | {_names(resources.raw_metrics(cfg, resources.CADVISOR_JOB))}, "
        f"and only the containers `llmstack-<env>-({containers})` |\n"
        f"| `{resources.DCGM_JOB}` | `{dcgm}` | stacks with `dcgmExporterEnabled` (by default: the cuda image, so prod) | "
        f"{_names(resources.raw_metrics(cfg, resources.DCGM_JOB))} |\n"
    )


def fleet_records() -> str:
    rows = ["| record | unit | meaning | from |", "|---|---|---|---|"]
    for r in fleet.records():
        how = r.how.format(*(f"`{s.name}`" for s in r.reads))
        rows.append(f"| `{r.signal.name}` | {r.signal.unit} | {_cell(r.signal.description)} | {_cell(how)} |")
    return "\n".join(rows) + "\n"


def resource_records() -> str:
    rows = ["| record | unit | labels | from |", "|---|---|---|---|"]
    for r in resources.records(stack_config("dev")):
        rows.append(f"| `{r.signal.name}` | {r.signal.unit} | {r.labels} | {r.source} |")
    return "\n".join(rows) + "\n"


def resource_alert_table() -> str:
    cfg = stack_config("dev")
    rows = ["| alert | severity | fires when | for |", "|---|---|---|---|"]
    for a in [*resource_alerts.exhaustion_alerts(cfg), resource_alerts.xid_alert(cfg)]:
        rows.append(f"| {_runbook_link(a.name, '')} | {a.severity} | `{_cell(a.expr)}` | {a.for_} |")
    return "\n".join(rows) + "\n"


# --- docs/engines.md -----------------------------------------------------------------------------------

# An example address per exporter kind, for the config the docs show.
EXAMPLE_OLLAMA_TARGETS = {"norskhelsenett": "ollama-metrics.internal:8080", "http": "10.0.0.7:9000"}
_LLM_NAME_RE = re.compile(r"(?<![a-z0-9_:])llm:[a-z0-9_:]+")  # not the `llm:` inside `vllm:`


# An example server per other engine, likewise.
EXAMPLE_ENGINE_TARGETS = {
    "vllm_targets": EngineTarget("meta-llama/Llama-3.1-8B-Instruct", "vllm.internal:8000", "/metrics"),
    "tgi_targets": EngineTarget("mistralai/Mistral-7B-Instruct-v0.3", "tgi.internal:8080", "/metrics"),
    "llamacpp_targets": EngineTarget("qwen2.5-7b-instruct-q4_k_m", "llamacpp.internal:8080", "/metrics"),
}


def example_config() -> StackConfig:
    """The dev stack's config with one target of every Ollama exporter kind and every other engine."""
    cfg = stack_config("dev")
    targets = tuple(OllamaTarget(e, EXAMPLE_OLLAMA_TARGETS[e], ollama.METRICS_PATH) for e in cfgmod.OLLAMA_EXPORTERS)
    others = dataclasses.replace(cfg.engines, **{k: (t,) for k, t in EXAMPLE_ENGINE_TARGETS.items()})
    return dataclasses.replace(cfg, prometheus=dataclasses.replace(cfg.prometheus, ollama_targets=targets), engines=others)


# A burn-rate record exists for an engine that records the bad and total rates of at least one SLO.
_BURN_RATES = {s.name for s in (*signals.SLO_BURN_RATES.values(), *signals.SLO_FLEET_BURN_RATES.values())}
_SLI_NEEDS = [{sli.bad.name, sli.total.name} for sli in slo.SLIS]


def _top_level_or(expr: str) -> list[str]:
    """The alternatives of `a or on (...) b or ...`, outside any parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(expr):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and expr.startswith(" or ", i):
            parts.append(expr[start:i])
            start = i + 4
    return parts + [expr[start:]]


def alert_can_fire(alert: AlertRule, mapping: EngineMapping) -> bool:
    """Whether `alert` can fire for `mapping`'s engine: one of its `or` alternatives reads only
    catalogue series the mapping records (a burn rate needs an SLO's two rates), or reads no
    catalogue series and the `up` series of the mapping's job (the target alerts)."""
    job = rf"(?<![\w-]){re.escape(mapping.job)}(?![\w-])"
    recorded = {s.name for s in mapping.signals}

    def can(branch: str) -> bool:
        read = set(_LLM_NAME_RE.findall(branch))
        if not read:
            return re.search(r"\bup\{", branch) is not None and re.search(job, branch) is not None
        return all(any(need <= recorded for need in _SLI_NEEDS) if n in _BURN_RATES else n in recorded for n in read)

    return any(can(branch) for branch in _top_level_or(alert.expr))


def signal_parity() -> str:
    mappings = engines.mappings(example_config())
    seen: dict = {}
    for m in mappings:
        for signal in m.signals:
            seen.setdefault(signal.name, signal)
    rows = ["| record | unit | " + " | ".join(f"`{m.name}`" for m in mappings) + " |", "|---|---|" + "---|" * len(mappings)]
    for signal in seen.values():
        cells = [_cell(m.caveats.get(signal, "yes")) if signal in m.signals else "no" for m in mappings]
        rows.append(f"| `{signal.name}` | {signal.unit} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def alert_parity() -> str:
    cfg = example_config()
    mappings = engines.mappings(cfg)
    rows = ["| alert | " + " | ".join(f"`{m.name}`" for m in mappings) + " |", "|---|" + "---|" * len(mappings)]
    for a in alerts.alert_rules(cfg):
        cells = ["yes" if alert_can_fire(a, m) else "no" for m in mappings]
        if "yes" in cells:  # the rest is not about an inference engine: the Watchdog, the resource alerts
            rows.append(f"| {_runbook_link(a.name, '')} | " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def ollama_keep_lists() -> str:
    cfg = example_config()
    lines = [f"- `{m.job}` (from {m.source}) keeps {_names(m.raw_metrics)}." for m in ollama.mappings(cfg)]
    return "\n".join(lines) + "\n"


def ollama_example() -> str:
    cfg = example_config()
    items = "\n".join(f"    - {t.exporter}@{t.address}" for t in cfg.prometheus.ollama_targets)
    return f"```yaml\n# Pulumi.<env>.yaml\nconfig:\n  llmstack:ollamaTargets:\n{items}\n```\n"


# file -> marker name -> renderer of the section's body
SECTIONS: dict[str, dict[str, Callable[[], str]]] = {
    "README.md": {"config-reference": config_reference},
    "docs/prometheus.md": {"mistral-keep-list": mistral_keep_list, "mistral-records": mistral_records, "fleet-records": fleet_records},
    "docs/alerts.md": {"alert-table": alert_table},
    "docs/resources.md": {"resource-jobs": resource_jobs, "resource-records": resource_records, "resource-alerts": resource_alert_table},
    "docs/engines.md": {
        "ollama-example": ollama_example,
        "ollama-keep-lists": ollama_keep_lists,
        "signal-parity": signal_parity,
        "alert-parity": alert_parity,
    },
}
