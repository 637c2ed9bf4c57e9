"""Probe alerts: the server answers /metrics but cannot generate, or generates slowly.

The generation probe (llmstack/probes.py) is a real one-token completion from outside the server.
It fails while the metrics target is up: the server describes itself as healthy and serves no
tokens. That pages. A model load the stack started is not a failure: mistral.rs opens its port only
after the load (`mistralrs serve` loads, then binds), so `up` is 0 for the whole load, which is what
the model-load records measure too; the alert also waits until the target has been up for 2
minutes, so the first generations after a load have time to succeed.
"""

from __future__ import annotations

from .. import engines
from .. import signals as s
from ..config import StackConfig
from ..signals import BY
from .base import WHERE, AlertRule, alert

_PROBE_BY = f"{BY}, probe"


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    if not cfg.probes.enabled:
        return []
    jobs = "|".join(engines.engine_jobs(cfg, scraped_only=False))
    generation = f'{{probe="generation"}}'
    seconds = cfg.probes.latency_warning_seconds
    return [
        alert(
            cfg,
            "LLMGenerationProbeFailing",
            # Every generation probe of the last minute failed while the server's metrics have
            # answered every scrape for 2 minutes: long enough after a (re)start for a probe to have
            # succeeded, so a deploy's first, slow generation does not page.
            f"{s.PROBE_SUCCESS_1M.name}{generation} == 0 and on (env, instance) (min_over_time(up{{job=~\"{jobs}\"}}[2m]) == 1)",
            "30s",
            "critical",
            "{{ $labels.instance }} serves metrics but no tokens",
            f"Every black-box generation probe of {WHERE} has failed for over a minute, while the server still "
            "answers its /metrics scrape: it describes itself as healthy but cannot generate (a wedged model, a "
            "hung GPU, a failing tokenizer). Users see errors or time-outs.",
        ),
        alert(
            cfg,
            "LLMProbeLatencyHigh",
            f"{s.PROBE_DURATION.name}{generation} > {seconds} and on ({_PROBE_BY}) {s.PROBE_SUCCESS_1M.name} == 1",
            "5m",
            "warning",
            f"A one-token generation takes more than {seconds}s on {{{{ $labels.instance }}}}",
            f"The black-box generation probe of {WHERE} succeeds but takes {{{{ $value | humanizeDuration }}}}, above the "
            f"warning threshold of {seconds}s, for 5 minutes: a one-token request waits that long, queueing included.",
        ),
    ]
