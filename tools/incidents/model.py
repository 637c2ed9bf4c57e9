"""What a scenario is: a timeline of server states and the alerts it must (and may) raise.

A timeline is a list of stretches, each a `State` held for a duration. A state is what one
mistral.rs server does in that stretch, per scrape: its traffic, how much of it fails or is slow,
its KV cache and queue, and whether Prometheus can scrape it at all. replay.py turns the timeline
into the series this stack's Prometheus stores for that server (names and labels after the
`mistral` scrape job), so the rules under test are the real ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

from llmstack.config import duration_seconds

# How Prometheus sees the server in a stretch.
SCRAPED = "scraped"  # answers every scrape
FAILING = "failing"  # scrapes fail: up 0, no other samples (Prometheus writes stale markers for them)
VANISHED = "vanished"  # no samples at all and no stale marker (the host died with Prometheus's SD, or Prometheus restarted)
REMOVED = "removed"  # a stale marker on every series, then nothing (the target left the config)


@dataclass(frozen=True)
class State:
    rps: float = 5.0  # inference requests per second
    error_share: float = 0.0  # share of them that end in a 5xx
    latency: float = 2.0  # seconds, the good requests
    slow_share: float = 0.0  # share of the good requests that take `slow_latency` instead
    slow_latency: float = 60.0
    ttft: float = 0.4  # seconds to first token, every streamed request
    kv_used: float = 0.5  # share of the KV-cache blocks in use
    waiting: int = 0  # requests queued for a sequence slot
    running: int = 3  # sequences running
    preemptions_per_s: float = 0.0
    scrape: str = SCRAPED
    restart: bool = False  # the server restarts at the start of the stretch: its counters start again at 0


HEALTHY = State()
IDLE = State(rps=0.0, running=0, kv_used=0.0)


def with_(state: State, **changes) -> State:
    return replace(state, **changes)


@dataclass(frozen=True)
class Stretch:
    duration: str
    state: State

    @property
    def seconds(self) -> float:
        return duration_seconds(self.duration)


@dataclass(frozen=True)
class Expect:
    """An alert that must fire within `within` of the onset, and stop within `resets_within` of the recovery."""

    alert: str
    within: str
    resets_within: str = "5m"
    after: str = "0s"  # the deadline counts from the onset plus this (a creep crosses thresholds later)
    labels: tuple[tuple[str, str], ...] = ()  # e.g. (("slo", "availability"),)


@dataclass(frozen=True)
class Scenario:
    name: str
    what: str  # what happens, in a sentence
    timeline: tuple[Stretch, ...]
    onset: str  # when the incident starts (the start of a stretch)
    expect: tuple[Expect, ...] = ()
    may: tuple[str, ...] = ()  # alerts that may fire (symptoms of the same incident), with no deadline
    burst: Optional[str] = None  # for a burst: its length, checked against every alert's `for`
    step: str = "15s"  # scrape and evaluation interval of the replay
    family: str = ""  # the docs group scenarios by it

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.timeline)

    @property
    def onset_seconds(self) -> float:
        return duration_seconds(self.onset)

    @property
    def recovery_seconds(self) -> float:
        """The incident ends where the last stretch (healthy again) begins."""
        return self.seconds - self.timeline[-1].seconds


def timeline(*stretches: tuple[str, State]) -> tuple[Stretch, ...]:
    return tuple(Stretch(d, s) for d, s in stretches)


__all__ = ["Expect", "HEALTHY", "IDLE", "Scenario", "State", "Stretch", "timeline", "with_", "SCRAPED", "FAILING", "VANISHED", "REMOVED", "field"]
