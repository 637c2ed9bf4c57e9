"""What an engine mapping is, and the building blocks engines whose HTTP metrics look alike share.

An `EngineMapping` says, for one engine or exporter, the PromQL that computes each `signals.Signal`
it can provide from that engine's raw series as they are stored (after its scrape job's
relabelling). Everything else derives from the mappings: the recording rules (one record per signal
per mapping), the scrape jobs' keep-lists (the metrics the expressions read), the parity tables in
docs/, and which alerts can fire for which engine.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from .. import signals as s
from ..config import EngineTarget, StackConfig
from ..promql import Promql, le_matcher, selected_metrics, share
from ..scrape import ScrapeJob, keep_only, set_label
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
    """Request and 5xx rates from an HTTP counter with a `status` label, and restarts from its resets."""

    def requests(window: str) -> str:
        return p.rate(requests_total, window, *matchers)

    def errors(window: str) -> str:
        # The 5xx series only exists after the first 5xx; until then the rate is 0, not missing.
        return f"({p.rate(requests_total, window, *matchers, _SERVER_ERROR)} or {requests(window)} * 0)"

    return {
        s.REQUESTS_RATE: requests(WINDOW),
        s.ERRORS_RATE: errors(WINDOW),
        s.ERROR_RATIO: share(errors(WINDOW), requests(WINDOW)),
        s.ERROR_RATIO_1M: share(errors(SHORT_WINDOW), requests(SHORT_WINDOW)),
        s.RESTARTS: p.max_resets(requests_total, WINDOW, *matchers),
    }


def latency_signals(p: Promql, histogram: str, *matchers: str, slo_threshold: str = "") -> dict[Signal, str]:
    """Mean and quantiles of end-to-end request latency from a seconds histogram, and the latency
    SLO's totals when `slo_threshold` is one of its bucket bounds (config.SLO_LATENCY_THRESHOLDS)."""
    count = p.rate(histogram + "_count", WINDOW, *matchers)
    out = {
        s.LATENCY_AVG: share(p.rate(histogram + "_sum", WINDOW, *matchers), count),
        s.LATENCY_P50: p.quantile(0.5, histogram, WINDOW, *matchers),
        s.LATENCY_P95: p.quantile(0.95, histogram, WINDOW, *matchers),
        s.LATENCY_P99: p.quantile(0.99, histogram, WINDOW, *matchers),
        s.LATENCY_P95_1M: p.quantile(0.95, histogram, SHORT_WINDOW, *matchers),
    }
    if slo_threshold:
        within = p.rate(histogram + "_bucket", WINDOW, *matchers, le_matcher(slo_threshold))
        out[s.SLO_LATENCY_REQUESTS_RATE] = count
        out[s.SLO_LATENCY_SLOW_RATE] = f"{count} - {within}"
    return out


def existing_servers_job(
    cfg: StackConfig,
    job: str,
    engine: str,
    targets: Sequence[EngineTarget],
    kept: frozenset[str],
    renames: Sequence[dict] = (),
) -> list[ScrapeJob]:
    """The scrape job of an engine's existing servers (none without targets): each target labelled
    with its `instance` (its host, or host:port where two share a host) and the `model` it serves,
    every series with `engine` and `env`, `renames` (metric relabel rules) applied, and only what the
    engine's mapping reads kept."""
    targets = list(dict.fromkeys(targets))  # a target listed twice is scraped once
    if not targets:
        return []
    per_host = Counter(t.address.rsplit(":", 1)[0] for t in targets)
    static_configs = []
    for t in targets:
        host = t.address.rsplit(":", 1)[0]
        labels = {"instance": host if per_host[host] == 1 else t.address, "model": t.model}
        if t.metrics_path != "/metrics":
            labels["__metrics_path__"] = t.metrics_path  # a target label wins over the job's metrics_path
        static_configs.append({"targets": [t.address], "labels": labels})
    config = {
        "job_name": job,
        "metrics_path": "/metrics",
        "static_configs": static_configs,
        # The target's `model` wins over a label of the same name the server exports (kept as exported_model).
        "relabel_configs": [set_label("engine", engine), set_label("env", cfg.env)],
        "metric_relabel_configs": [*renames, keep_only(kept)],
    }
    return [ScrapeJob(config=config, series=kept)]
