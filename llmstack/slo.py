"""Service level objectives: burn-rate records over the SRE workbook's windows.

Two SLOs per server, both over inference requests and a 30-day period (config.SLO_PERIOD):
- availability: the share of requests that did not end in a 5xx (`sloAvailabilityObjective`);
- latency: the share of requests that finished within `sloLatencyThresholdSeconds`, read from the
  latency histogram's bucket at that bound (`sloLatencyObjective`).

Each SLO is a pair of catalogue rates (bad, total) that every engine mapping records over 5 minutes.
The burn rate over a window is the window's bad share divided by the error budget (1 - objective):
1 spends the budget in exactly 30 days, 14.4 spends 2% of it in one hour. Windows longer than 5
minutes sum the 5-minute rate records over the window rather than rate the raw counters again: one
expression serves every engine, each long window reads a handful of series instead of every
histogram bucket, and the sums weight each stretch of time by its traffic (a quiet night does not
dilute a busy hour's errors). The price is that the sum reaches up to 5 minutes before the window
and lags its last 5 minutes, which delays a page slightly and never brings one forward.

No traffic over a window records nothing for it (not NaN, not 0): there is nothing to burn. Nor
does a window Prometheus holds less than 90% of (a new stack, a lost TSDB, a server unscraped for
most of the window): over the little history there is, a five-minute outage on a stack an hour old
would read as a day's budget gone. So the 1h burn rate exists an hour after the first scrape, the 3d
one after three days.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import signals as s
from .config import StackConfig, duration_seconds
from .promql import share
from .signals import BY, FLEET_BY, SLO_BURN_RATES, SLO_FLEET_BURN_RATES, SLO_FLEET_WINDOWS, SLO_WINDOWS, WINDOW, Signal

GROUP = "llm-slo"
LABEL = "slo"  # the label telling the SLOs' records and alerts apart
COVERAGE = 0.9  # the share of a window's evaluations Prometheus must hold for its burn rate


@dataclass(frozen=True)
class Sli:
    name: str  # availability | latency: the `slo` label
    bad: Signal
    total: Signal
    description: str


SLIS = (
    Sli("availability", s.ERRORS_RATE, s.REQUESTS_RATE, "inference requests that did not end in a 5xx"),
    Sli("latency", s.SLO_LATENCY_SLOW_RATE, s.SLO_LATENCY_REQUESTS_RATE, "inference requests that finished within the latency threshold"),
)


def budget(cfg: StackConfig, sli: Sli) -> str:
    """The error budget as a ratio, as PromQL text: 1 - 0.995 = 0.005."""
    return f"{round(1 - cfg.slo.objectives[sli.name], 6):g}"


def _over(signal: Signal, window: str) -> str:
    return signal.name if window == WINDOW else f"sum_over_time({signal.name}[{window}])"


def bad_share(sli: Sli, window: str, by: str = "") -> str:
    """The share of bad requests over `window` (absent without traffic); summed `by` these labels
    across instances when given."""
    if not by:
        return share(_over(sli.bad, window), _over(sli.total, window))
    return share(f"sum by ({by}) ({_over(sli.bad, window)})", f"sum by ({by}) ({_over(sli.total, window)})")


def _covered(cfg: StackConfig, sli: Sli, window: str, by: str = "") -> str:
    """True where Prometheus holds at least COVERAGE of the window's evaluations of the total (for a
    fleet: of at least one of its instances)."""
    needed = int(COVERAGE * duration_seconds(window) / duration_seconds(cfg.prometheus.evaluation_interval))
    counted = f"count_over_time({sli.total.name}[{window}])"
    return f"max by ({by}) ({counted}) >= {needed}" if by else f"{counted} >= {needed}"


def _burn_records(cfg: StackConfig, records: dict[str, Signal], windows: tuple[str, ...], by: str = "") -> list[dict]:
    """One burn-rate record per SLO and window, per instance (`by` empty) or summed `by` a fleet."""
    on = by or BY
    out = []
    for sli in SLIS:
        for w in windows:
            expr = f"({bad_share(sli, w, by)}) / {budget(cfg, sli)}"
            if w != WINDOW:
                expr += f" and on ({on}) {_covered(cfg, sli, w, by)}"
            out.append({"record": records[w].name, "expr": expr, "labels": {LABEL: sli.name}})
    return out


def records(cfg: StackConfig) -> list[dict]:
    """The burn-rate records, labelled `slo`: per instance over every window, per fleet over the page's."""
    return _burn_records(cfg, SLO_BURN_RATES, SLO_WINDOWS) + _burn_records(cfg, SLO_FLEET_BURN_RATES, SLO_FLEET_WINDOWS, FLEET_BY)


def budget_remaining(cfg: StackConfig, sli: Sli, period: str) -> str:
    """The share of the SLO's error budget left after `period` (the dashboards' budget panels):
    1 untouched, 0 spent, below 0 overspent. Queried, not recorded: a dashboard reads it once per
    refresh, a rule would read the whole period every evaluation."""
    return f"1 - ({bad_share(sli, period)}) / {budget(cfg, sli)}"


def objective_text(cfg: StackConfig, sli: Sli) -> str:
    """How the docs and alerts say an objective: 99.5% of inference requests that ..."""
    extra = f" ({cfg.slo.latency_threshold_seconds}s)" if sli.name == "latency" else ""
    return f"{cfg.slo.objectives[sli.name] * 100:g}% of {sli.description}{extra}"
