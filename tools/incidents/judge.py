"""What a replay must show: the scenario's alerts on time, nothing else, and everything quiet again
within its reset deadline; on a burst, nothing whose `for` is longer than the burst and no page under
60 seconds; a burn-rate alert only once the budget it claims is really gone (counted from the
scenario's own traffic, not from the records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from llmstack import alerts
from llmstack.alerts import slo as slo_alerts
from llmstack.config import SLO_PERIOD, StackConfig, duration_seconds, format_duration

from .model import Scenario, State
from .replay import Replay

DEFAULT_RESET = "5m"
NO_PAGE_UNDER = 60  # seconds: no burst shorter than this pages
# The share of the 30-day budget each burn-rate alert claims is gone in its long window, per pair.
CLAIMS = {
    "LLMErrorBudgetBurnFast": [(long, rate * duration_seconds(long) / duration_seconds(SLO_PERIOD)) for rate, long, _ in slo_alerts.PAGE],
    "LLMErrorBudgetBurnSlow": [(long, rate * duration_seconds(long) / duration_seconds(SLO_PERIOD)) for rate, long, _ in slo_alerts.TICKET],
}


@dataclass
class AlertResult:
    alert: str
    severity: str
    labels: tuple
    fired_after: Optional[float]  # seconds from the onset (plus the expectation's `after`) to the first firing step
    reset_after: Optional[float]  # seconds from the recovery to the first step it no longer fires
    deadline: Optional[float]
    reset_deadline: float
    expected: bool


@dataclass
class Verdict:
    scenario: Scenario
    results: list[AlertResult] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _bad_and_total(state: State, slo: str, threshold: float) -> tuple[float, float]:
    if state.scrape != "scraped":
        return 0.0, 0.0
    if slo == "availability":
        return state.rps * state.error_share, state.rps
    good = state.rps * (1 - state.error_share)
    slow = good * state.slow_share
    bad = (good - slow) * (state.latency > threshold) + slow * (state.slow_latency > threshold)
    return bad, state.rps


def budget_spent(scenario: Scenario, cfg: StackConfig, slo: str, end: float, window: str) -> float:
    """The share of the 30-day budget the scenario's traffic spent in (end - window, end]."""
    start, t, bad, total = end - duration_seconds(window), 0.0, 0.0, 0.0
    threshold = float(cfg.slo.latency_threshold_seconds)
    for stretch in scenario.timeline:
        lo, hi = max(t, start), min(t + stretch.seconds, end)
        if hi > lo:
            b, n = _bad_and_total(stretch.state, slo, threshold)
            bad, total = bad + b * (hi - lo), total + n * (hi - lo)
        t += stretch.seconds
    if not total:
        return 0.0
    rate = total / (end - max(start, 0.0))  # requests per second over the window
    return bad / ((1 - cfg.slo.objectives[slo]) * rate * duration_seconds(SLO_PERIOD))


def judge(replay: Replay, cfg: StackConfig) -> Verdict:
    sc = replay.scenario
    v = Verdict(sc)
    fors = {a.name: duration_seconds(a.for_ or "0s") for a in alerts.alert_rules(cfg)}
    onset, recovery = sc.onset_seconds, sc.recovery_seconds
    claimed = set()
    for key in sorted(replay.firing):
        name, severity, labels = key
        episodes = replay.episodes(key)
        expect = next((e for e in sc.expect if e.alert == name and set(e.labels) <= set(labels)), None)
        if expect is None and name not in sc.may:
            v.problems.append(f"{name}{dict(labels) or ''} fired at {format_duration(episodes[0][0])}, but the scenario does not expect it")
        if episodes[0][0] < onset:
            v.problems.append(f"{name} fired at {format_duration(episodes[0][0])}, before the onset")
        start_from = onset + (duration_seconds(expect.after) if expect else 0)
        deadline = duration_seconds(expect.within) if expect else None
        fired = episodes[0][0] - start_from
        if expect:
            claimed.add(expect)
            if fired > deadline:
                v.problems.append(f"{name} fired {format_duration(fired)} after its start, later than its {expect.within}")
        reset_deadline = duration_seconds(expect.resets_within if expect else DEFAULT_RESET)
        last_end = episodes[-1][1]
        reset = None if last_end >= sc.seconds else max(0.0, last_end - recovery)
        if reset is None:
            v.problems.append(f"{name} still fires at the end, {format_duration(sc.seconds - recovery)} after the recovery")
        elif reset > reset_deadline:
            v.problems.append(f"{name} stopped {format_duration(reset)} after the recovery, later than {format_duration(reset_deadline)}")
        if len(episodes) > 1:
            v.problems.append(f"{name} fired {len(episodes)} times: " + ", ".join(format_duration(s) for s, _ in episodes))
        if sc.burst:
            burst = duration_seconds(sc.burst)
            if burst < fors.get(name, 0):
                v.problems.append(f"{name} fired on a {sc.burst} burst, shorter than its for ({format_duration(fors[name])})")
            if severity == "critical" and burst < NO_PAGE_UNDER:
                v.problems.append(f"{name} paged on a {sc.burst} burst, shorter than {NO_PAGE_UNDER}s")
        if name in CLAIMS:
            slo = dict(labels).get("slo", "")
            for start, _ in episodes:
                spent = {w: budget_spent(sc, cfg, slo, start, w) for w, _ in CLAIMS[name]}
                if not any(spent[w] >= share * 0.999 for w, share in CLAIMS[name]):
                    shown = ", ".join(f"{spent[w]:.2%} in {w} (claims {share:.0%})" for w, share in CLAIMS[name])
                    v.problems.append(f"{name} ({slo}) fired at {format_duration(start)} with only {shown} of the budget spent")
        v.results.append(AlertResult(name, severity, labels, fired, reset, deadline, reset_deadline, expect is not None))
    for expect in sc.expect:
        if expect not in claimed:
            v.problems.append(f"{expect.alert}{dict(expect.labels) or ''} never fired (expected within {expect.within})")
    return v
