"""Fleet alerts: every instance serving one model (labels engine, env, model) taken together.

Instance alerts stay per instance. These page for what no single instance shows:
- more than a quarter of the replicas down at once (each one also raises LLMTargetDown; this one says
  the fleet lost capacity, and it needs at least two replicas to mean anything);
- the fleet's error budget burning at a page rate while no instance's own burn-rate page fires: the
  bad requests are spread over many replicas, each below the line.
"""

from __future__ import annotations

from .. import engines
from ..config import StackConfig
from ..signals import FLEET_BY, SLO_FLEET_BURN_RATES
from ..slo import LABEL
from .base import AlertRule, alert
from .slo import CONFIRM, PAGE, burn_expr

FLEET_LABELS = tuple(l.strip() for l in FLEET_BY.split(","))
DOWN_SHARE = 0.25
MIN_REPLICAS = 2


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    job_regex = "|".join(engines.engine_jobs(cfg, scraped_only=False))
    up = f'up{{job=~"{job_regex}"}}'
    by = f"by ({FLEET_BY})"
    down_share = (
        f"(count {by} ({up} == 0) / count {by} ({up}) > {DOWN_SHARE:g})"
        f" and on ({FLEET_BY}) count {by} ({up}) >= {MIN_REPLICAS}"
    )
    instance_page = burn_expr(PAGE, CONFIRM)
    fleet_page = burn_expr(PAGE, CONFIRM, SLO_FLEET_BURN_RATES, FLEET_BY)
    where = "{{ $labels.engine }} serving {{ $labels.model }} ({{ $labels.env }})"
    return [
        alert(
            cfg,
            "LLMFleetReplicasDown",
            down_share,
            "2m",
            "critical",
            "More than a quarter of the {{ $labels.model }} replicas are down in {{ $labels.env }}",
            f"{{{{ $value | humanizePercentage }}}} of the replicas of {where} have failed every scrape for 2 minutes: "
            "the fleet has lost that share of its capacity, and the rest take their traffic.",
            FLEET_LABELS,
        ),
        alert(
            cfg,
            "LLMFleetErrorBudgetBurnFast",
            f"({fleet_page}) unless on ({FLEET_BY}, {LABEL}) count by ({FLEET_BY}, {LABEL}) ({instance_page})",
            "1m",
            "critical",
            "The {{ $labels.model }} fleet's {{ $labels.slo }} error budget is burning fast in {{ $labels.env }}",
            f"Taken together, the instances of {where} spend the 30-day error budget of the {{{{ $labels.slo }}}} SLO "
            "{{ printf \"%.1f\" $value }} times faster than it lasts (14.4x over 1h and 5m or 6x over 6h and 30m, and over "
            "the last 5m), while no single instance crosses that line: the bad requests are spread across replicas.",
            (*FLEET_LABELS, LABEL),
        ),
    ]
