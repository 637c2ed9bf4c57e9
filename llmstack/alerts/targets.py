"""Target alerts: an engine's scrape target down, vanished, flapping, or missing from Prometheus.

`up == 0` only sees a target Prometheus still scrapes and fails. A target that vanishes without a
stale marker (its host dies with Prometheus's service discovery, or Prometheus restarts) leaves its
last `up` sample visible for the 5-minute lookback; the down alert also fires when that sample is
older than three scrape intervals, so it pages within 3 minutes either way.

A target that fails some scrapes and answers others never stays down for the down alert's `for`.
The flapping alert watches for that: `up` changing often over 5 minutes while it is mostly not 1,
or the server's request counter resetting (mistral.rs exports no process start time, and cAdvisor's
start time for a Docker container is its creation, which a restart keeps).
"""

from __future__ import annotations

from .. import engines
from .. import signals as s
from ..config import StackConfig, duration_seconds
from ..signals import BY
from .base import AlertRule, alert

DOWN_FOR = "1m15s"
FLAP_WINDOW = "5m"
FLAP_CHANGES = 4  # two failed stretches within the window
FLAP_AVAILABILITY = 0.9  # a lone failed scrape or two stay above this over 5 minutes
FLAP_RESTARTS = 2
ABSENT_FOR = "1m"


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    jobs = engines.engine_jobs(cfg)
    # `up == 0` can only match a job Prometheus scrapes, so the down alert names every engine's job,
    # scraped here or not (the Ollama jobs exist only with ollamaTargets); absent() must name only
    # the scraped ones, or it would fire for an engine this stack never had.
    job_regex = "|".join(engines.engine_jobs(cfg, scraped_only=False))
    up = f'up{{job=~"{job_regex}"}}'
    absent = " or ".join(f'absent(up{{job="{job}", env="{cfg.env}"}})' for job in jobs)
    silent_after = f"{3 * duration_seconds(cfg.prometheus.scrape_interval):g}"
    flapping = (
        f"(max by ({BY}) (changes({up}[{FLAP_WINDOW}])) >= {FLAP_CHANGES}"
        f" and on ({BY}) max by ({BY}) (avg_over_time({up}[{FLAP_WINDOW}])) < {FLAP_AVAILABILITY})"
        f" or on ({BY}) {s.RESTARTS.name} >= {FLAP_RESTARTS}"
    )
    return [
        alert(
            cfg,
            "LLMTargetDown",
            f"{up} == 0 or time() - timestamp({up}) > {silent_after}",
            DOWN_FOR,
            "critical",
            "Prometheus cannot scrape {{ $labels.job }} on {{ $labels.instance }}",
            f"The {{{{ $labels.job }}}} target {{{{ $labels.instance }}}} ({{{{ $labels.env }}}}) has failed every scrape "
            f"for {DOWN_FOR}, or Prometheus has had no sample from it for more than {silent_after}s: the inference "
            "server is down, restarting, still loading its model, or unreachable.",
        ),
        alert(
            cfg,
            "LLMTargetFlapping",
            flapping,
            "2m",
            "warning",
            "{{ $labels.engine }} on {{ $labels.instance }} keeps failing scrapes or restarting",
            f"{{{{ $labels.engine }}}} serving {{{{ $labels.model }}}} on {{{{ $labels.instance }}}} ({{{{ $labels.env }}}}) "
            f"has failed scrapes on and off over the last {FLAP_WINDOW} (up changed at least {FLAP_CHANGES} times and "
            f"answered under {FLAP_AVAILABILITY:.0%} of them), or restarted at least {FLAP_RESTARTS} times: a crash loop or "
            "a flaky network. It never stays down long enough for LLMTargetDown.",
        ),
        alert(
            cfg,
            "LLMTargetAbsent",
            absent,
            # 1m: a target that vanished without a stale marker leaves LLMTargetDown when its last sample
            # leaves the 5-minute lookback, and this takes over a minute later.
            ABSENT_FOR,
            "critical",
            "Prometheus has no {{ $labels.job }} target in {{ $labels.env }}",
            f"There has been no up series for the {{{{ $labels.job }}}} job in {{{{ $labels.env }}}} for {ABSENT_FOR}: Prometheus "
            "is not configured to scrape it, or has had no sample from it for 5 minutes, so nothing about it is monitored.",
        ),
    ]
