"""Target alerts: an engine's scrape target down, or missing from Prometheus altogether."""

from __future__ import annotations

from .. import engines
from ..config import StackConfig
from .base import AlertRule, alert


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    jobs = engines.engine_jobs(cfg)
    # `up == 0` can only match a job Prometheus scrapes, so the down alert names every engine's job,
    # scraped here or not (the Ollama jobs exist only with ollamaTargets); absent() must name only
    # the scraped ones, or it would fire for an engine this stack never had.
    job_regex = "|".join(engines.engine_jobs(cfg, scraped_only=False))
    absent = " or ".join(f'absent(up{{job="{job}", env="{cfg.env}"}})' for job in jobs)
    return [
        alert(
            cfg,
            "LLMTargetDown",
            f'up{{job=~"{job_regex}"}} == 0',
            "2m",
            "critical",
            "Prometheus cannot scrape {{ $labels.job }} on {{ $labels.instance }}",
            "The {{ $labels.job }} target {{ $labels.instance }} ({{ $labels.env }}) has failed every scrape "
            "for 2 minutes: the inference server is down, restarting, still loading its model, or unreachable.",
        ),
        alert(
            cfg,
            "LLMTargetAbsent",
            absent,
            "2m",
            "critical",
            "Prometheus has no {{ $labels.job }} target in {{ $labels.env }}",
            "There is no up series for the {{ $labels.job }} job in {{ $labels.env }}: Prometheus is not "
            "configured to scrape it, so nothing about it is monitored or alerted on.",
        ),
    ]
