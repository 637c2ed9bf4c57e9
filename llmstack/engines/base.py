"""What an engine mapping is, and the building blocks engines whose HTTP metrics look alike share.

An `EngineMapping` says, for one engine or exporter, the PromQL that computes each `signals.Signal`
it can provide from that engine's raw series as they are stored (after its scrape job's
relabelling). Everything else derives from the mappings: the recording rules (one record per signal
per mapping), the scrape jobs' keep-lists (the metrics the expressions read), the parity tables in
docs/, and which alerts can fire for which engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from .. import signals as s
from ..config import StackConfig
from ..promql import Promql, selected_metrics
from ..signals import SHORT_WINDOW, WINDOW, Signal


@dataclass(frozen=True)
class EngineMapping:
    name: str  # the mapping's id; also names its recording rule group
    job: str  # the scrape job whose series the expressions read
    engine: str  # the `engine` label value the scrape job attaches
    signals: Mapping[Signal, str]  # signal -> PromQL over the job's stored series, in a stable order
    # What a signal means for this engine when it is not quite the catalogue's wording.
    caveats: Mapping[Signal, str] = field(default_factory=dict)
    # Whether this stack scrapes the engine at all (the target-absent alert only watches those).
    enabled: Callable[[StackConfig], bool] = lambda cfg: True
    # Where the raw metrics come from, for the docs (the engine itself, or which exporter).
    source: str = ""

    @property
    def raw_metrics(self) -> frozenset[str]:
        """Every stored metric name the expressions read: the job's keep-list."""
        return frozenset().union(*(selected_metrics(expr, self.job) for expr in self.signals.values()))


_SERVER_ERROR = 'status=~"5.."'


def request_signals(p: Promql, requests_total: str, *matchers: str) -> dict[Signal, str]:
    """Request and 5xx rates from an HTTP counter with a `status` label."""

    def requests(window: str) -> str:
        return p.rate(requests_total, window, *matchers)

    def errors(window: str) -> str:
        # The 5xx series only exists after the first 5xx; until then the rate is 0, not missing.
        return f"({p.rate(requests_total, window, *matchers, _SERVER_ERROR)} or {requests(window)} * 0)"

    def error_ratio(window: str) -> str:
        return f"{errors(window)} / {requests(window)}"

    return {
        s.REQUESTS_RATE: requests(WINDOW),
        s.ERRORS_RATE: errors(WINDOW),
        s.ERROR_RATIO: error_ratio(WINDOW),
        s.ERROR_RATIO_1M: error_ratio(SHORT_WINDOW),
    }


def latency_signals(p: Promql, histogram: str, *matchers: str) -> dict[Signal, str]:
    """Mean and quantiles of end-to-end request latency from a seconds histogram."""
    return {
        s.LATENCY_AVG: f"{p.rate(histogram + '_sum', WINDOW, *matchers)} / {p.rate(histogram + '_count', WINDOW, *matchers)}",
        s.LATENCY_P50: p.quantile(0.5, histogram, WINDOW, *matchers),
        s.LATENCY_P95: p.quantile(0.95, histogram, WINDOW, *matchers),
        s.LATENCY_P99: p.quantile(0.99, histogram, WINDOW, *matchers),
        s.LATENCY_P95_1M: p.quantile(0.95, histogram, SHORT_WINDOW, *matchers),
    }
