"""The incident library: one definition per scenario, replayed on the prod rules (replay.py).

Every scenario but the long SLO ones starts with an hour of healthy traffic, so the burn-rate
records have the history a running stack has (llmstack/slo.py records a window only once
Prometheus holds 90% of it), then breaks at its onset, recovers, and stays healthy long enough to
show every alert letting go. What each must raise is written out; any other alert that fires is a
failure, and so is one that fires late or lingers (judge.py). The longest burn-rate windows (1d,
3d) only exist in the scenarios built for them, which replay one sample a minute.
"""

from __future__ import annotations

import random

from llmstack.config import duration_seconds

from .model import FAILING, HEALTHY, IDLE, REMOVED, VANISHED, Expect, Scenario, State, timeline, with_

PRELUDE = "1h"
AFTER = "15m"  # healthy traffic after the recovery
BURSTS = ("30s", "45s", "60s", "75s", "90s", "120s", "180s")
# Bursts are too short to spend 2% of the budget (a 100% burst needs 259 s at 99.5%): ten minutes
# of history fill the threshold alerts' windows and keep the replay short. Without the hour, the
# burn-rate page has no 1h record and cannot fire; "errors at 8%" shows it where it can.
BURST_PRELUDE = "10m"

# The alerts an error or latency incident may raise beside the ones it must.
ERROR_ALERTS = ("LLMHighErrorRatioWarning", "LLMHighErrorRatioCritical", "LLMErrorBudgetBurnFast")
LATENCY_ALERTS = ("LLMHighRequestLatencyWarning", "LLMHighRequestLatencyCritical", "LLMErrorBudgetBurnFast")


def _incident(name, what, broken: State, length: str, expect=(), may=(), family="", burst=None, prelude=PRELUDE) -> Scenario:
    return Scenario(
        name=name,
        what=what,
        timeline=timeline((prelude, HEALTHY), (length, broken), (AFTER, HEALTHY)),
        onset=prelude,
        expect=tuple(expect),
        may=tuple(may),
        burst=burst,
        family=family,
    )


def _seconds(d: str) -> int:
    return int(duration_seconds(d))


def _bursts() -> list[Scenario]:
    out = []
    for share in (0.5, 1.0):
        for length in BURSTS:
            secs = _seconds(length)
            expect = [Expect("LLMHighErrorRatioCritical", "3m")] if share == 1.0 and secs >= 120 else []
            out.append(_incident(
                f"error burst {share:.0%} {length}",
                f"{share:.0%} of requests fail with a 5xx for {length}, then the server recovers.",
                with_(HEALTHY, error_share=share), length, expect, ERROR_ALERTS, "bursts", burst=length, prelude=BURST_PRELUDE,
            ))
    for share in (0.5, 1.0):
        for length in BURSTS:
            secs = _seconds(length)
            expect = [Expect("LLMHighRequestLatencyCritical", "3m")] if share == 1.0 and secs >= 180 else []
            out.append(_incident(
                f"latency burst {share:.0%} {length}",
                f"{share:.0%} of requests take 60s (the p95 pages above 30s) for {length}, then latency is back to 2s.",
                with_(HEALTHY, slow_share=share, slow_latency=60.0, ttft=0.4), length, expect, LATENCY_ALERTS, "bursts", burst=length,
                prelude=BURST_PRELUDE,
            ))
    return out


def _flaky(pattern: list[bool], state_ok: State, state_bad: State) -> list[tuple[str, State]]:
    return [("15s", state_bad if bad else state_ok) for bad in pattern]


def _targets() -> list[Scenario]:
    rng = random.Random(52)  # fixed: the same flake every run
    flake: list[bool] = []  # 20 minutes of scrapes, about half failing, never more than 4 in a row
    while len(flake) < 80:
        flake.append(rng.random() < 0.52 and flake[-4:] != [True] * 4)
    alternating = []
    for half in [2, 3, 4, 2, 3, 4, 2, 4, 3, 2, 4, 3, 2, 3, 4, 2, 3, 4, 2, 3]:  # 30-60 s each way
        alternating += [True] * half + [False] * half
    down = with_(HEALTHY, scrape=FAILING, rps=0.0)
    crash: list[tuple[str, State]] = []
    for _ in range(10):  # crash, 45 s to come back (scrapes fail), 75 s serving: a restart every 2 minutes
        crash += [("45s", down), ("75s", with_(HEALTHY, restart=True))]

    def flapping(name, what, stretches, family="targets"):
        return Scenario(
            name=name, what=what,
            timeline=timeline((PRELUDE, HEALTHY), *stretches, (AFTER, HEALTHY)),
            onset=PRELUDE,
            expect=(Expect("LLMTargetFlapping", "10m"),), may=(), family=family,
        )

    return [
        flapping("network flake", "52% of scrapes fail at random for 20 minutes; the server itself is fine.",
                 _flaky(flake, HEALTHY, with_(HEALTHY, scrape=FAILING))),
        flapping("scrapes alternate", "`up` alternates between 1 and 0 every 30 to 60 seconds for 20 minutes.",
                 _flaky(alternating, HEALTHY, with_(HEALTHY, scrape=FAILING))),
        flapping("crash loop", "The server crashes every 2 minutes for 20 minutes: 45 s down, then back with its counters at 0.", crash),
        _incident("dead target", "The server dies: every scrape fails (`up` 0) for 20 minutes.", down, "20m",
                  [Expect("LLMTargetDown", "2m")], family="outages"),
        _incident("vanished target", "The server's samples stop with no stale marker (its host died with Prometheus's service discovery) for 20 minutes.",
                  with_(HEALTHY, scrape=VANISHED), "20m", [Expect("LLMTargetDown", "3m")], ("LLMTargetAbsent",), "outages"),
        _incident("target removed", "The target leaves Prometheus's config (stale markers, then nothing) for 20 minutes.",
                  with_(HEALTHY, scrape=REMOVED), "20m", [Expect("LLMTargetAbsent", "3m")], family="outages"),
        _incident("total outage, 5xx", "Every request fails with a 5xx for 20 minutes.", with_(HEALTHY, error_share=1.0), "20m",
                  [Expect("LLMHighErrorRatioCritical", "2m"), Expect("LLMErrorBudgetBurnFast", "10m", labels=(("slo", "availability"),))],
                  ("LLMHighErrorRatioWarning",), "outages"),
    ]


def _saturation() -> list[Scenario]:
    # 64 running: prod's mistralMaxSeqs, every slot busy.
    full = with_(HEALTHY, kv_used=0.99, waiting=12, running=64, preemptions_per_s=2.0, latency=8.0, ttft=3.0)
    return [
        _incident("KV cache full", "The KV cache is 99% full, 12 requests wait for a slot, 2 sequences a second are preempted, for 20 minutes.",
                  full, "20m",
                  [Expect("LLMKVCacheExhaustionCritical", "3m"), Expect("LLMKVCacheExhaustionWarning", "6m"),
                   Expect("LLMSequencesPreempted", "5m"), Expect("LLMQueueSaturated", "6m")],
                  family="saturation"),
        _incident("low traffic, a few failures", "Three requests a minute, and one of them fails every 2 minutes, for 30 minutes.",
                  with_(HEALTHY, rps=0.05, error_share=1 / 6), "30m", [], ("LLMHighErrorRatioWarning",), "quiet"),
        _incident("idle hour", "Traffic stops for an hour, then comes back.", IDLE, "1h", [], (), "quiet"),
    ]


def _creep() -> list[Scenario]:
    latencies = (3, 4, 6, 8, 12, 16, 20, 25, 35, 45, 60, 80)  # 15 minutes each: 3 hours
    ttfts = (0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0)
    stretches = [("15m", with_(HEALTHY, latency=float(l), ttft=t)) for l, t in zip(latencies, ttfts)]
    # p95 reads the bucket's bound: 12s lands in (10, 30] and reads 29s; 35s in (30, 60] and reads 58.5s.
    warning_at, critical_at, ttft_at = "1h", "2h", "2h"
    return [Scenario(
        name="slow creep",
        what="Latency creeps from 3s to 80s and TTFT from 0.5s to 12s over 3 hours, 15 minutes per step.",
        timeline=timeline((PRELUDE, HEALTHY), *stretches, (AFTER, HEALTHY)),
        onset=PRELUDE,
        expect=(Expect("LLMHighRequestLatencyWarning", "10m", after=warning_at),
                Expect("LLMHighRequestLatencyCritical", "3m", after=critical_at),
                Expect("LLMHighTimeToFirstToken", "10m", after=ttft_at),
                Expect("LLMErrorBudgetBurnFast", "15m", after=critical_at, labels=(("slo", "latency"),))),
        may=("LLMErrorBudgetBurnSlow",), family="creep",
    )]


def _budget() -> list[Scenario]:
    """Both sides of the 2%-of-the-budget line (prod: 99.5% availability, so 14.4x is 7.2% errors)."""
    out = []
    for share, pages in ((0.07, False), (0.08, True)):
        out.append(Scenario(
            name=f"errors at {share:.0%} for 75 minutes",
            what=f"{share:.0%} of requests fail for 75 minutes: a burn rate of {share / 0.005:g}x, "
                 + ("above" if pages else "below") + " the 14.4x that spends 2% of the budget in an hour.",
            timeline=timeline((PRELUDE, HEALTHY), ("75m", with_(HEALTHY, error_share=share)), (AFTER, HEALTHY)),
            onset=PRELUDE,
            # Above the 5% warning either way: the ticket comes within minutes, the page only past the line.
            expect=(Expect("LLMHighErrorRatioWarning", "10m"),)
            + ((Expect("LLMErrorBudgetBurnFast", "60m", labels=(("slo", "availability"),)),) if pages else ()),
            family="budget",
        ))
    for share, tickets in ((0.014, False), (0.02, True)):
        out.append(Scenario(
            name=f"errors at {share:.1%} for a day",
            what=f"{share:.1%} of requests fail for 25 hours: {share / 0.005:g}x, " + ("above" if tickets else "below")
                 + " the 3x that spends 10% of the budget in a day. One sample every 2 minutes.",
            timeline=timeline(("25h", with_(HEALTHY, error_share=share)), ("2h30m", HEALTHY)),
            onset="0s",
            expect=(Expect("LLMErrorBudgetBurnSlow", "22h", resets_within="2h", labels=(("slo", "availability"),)),) if tickets else (),
            may=(), step="2m", family="budget",
        ))
    return out


def scenarios() -> list[Scenario]:
    found = [*_targets(), *_saturation(), *_creep(), *_budget(), *_bursts()]
    names = [s.name for s in found]
    assert len(names) == len(set(names)), "scenario names must be unique"
    return found
