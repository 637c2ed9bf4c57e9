"""PromQL building blocks every recording rule uses, so the rules can be read back mechanically.

Conventions the rest of the project relies on:
- every raw selector names its metric and its job: `metric{job="...", ...}`; `selected_metrics`
  reads a job's keep-list back from that shape, so a scrape keeps exactly what its rules read;
- engine records are aggregated `by (engine, env, instance, model)` (signals.BY), the labels the
  scrape jobs attach, so records of different engines line up label for label.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .signals import BY

_SELECTOR_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}")
_JOB_RE = re.compile(r'\bjob="([^"]*)"')


def selected_metrics(expr: str, job: str) -> frozenset[str]:
    """The metric names `expr` selects from `job`."""
    return frozenset(
        name for name, matchers in _SELECTOR_RE.findall(expr) if (m := _JOB_RE.search(matchers)) and m.group(1) == job
    )


@dataclass(frozen=True)
class Promql:
    """PromQL over one job's stored series, written the way the conventions above require."""

    job: str

    def sel(self, metric: str, *matchers: str) -> str:
        return metric + "{" + ", ".join((f'job="{self.job}"',) + matchers) + "}"

    def by(self, expr: str) -> str:
        return f"sum by ({BY}) ({expr})"

    def rate(self, metric: str, window: str, *matchers: str) -> str:
        return self.by(f"rate({self.sel(metric, *matchers)}[{window}])")

    def quantile(self, q: float, histogram: str, window: str, *matchers: str) -> str:
        # A quantile of no requests is NaN, and NaN >= 0 is false: an idle window records nothing,
        # so panels show "no data" and alerts compare nothing, instead of NaN.
        return f"histogram_quantile({q}, sum by (le, {BY}) (rate({self.sel(histogram + '_bucket', *matchers)}[{window}]))) >= 0"

    def max_resets(self, counter: str, window: str, *matchers: str) -> str:
        """Restarts seen over `window`: every series of a counter resets when the process restarts,
        so the most resets of any one series counts each restart once."""
        return f"max by ({BY}) (resets({self.sel(counter, *matchers)}[{window}]))"


def share(part: str, whole: str) -> str:
    """`part / whole`, absent rather than NaN when `whole` is 0 (no traffic)."""
    return f"{part} / ({whole} > 0)"


def le_matcher(bound: str) -> str:
    """A bucket bound as stored: exporters write `30` or `30.0`, and Prometheus 3 normalises to `30.0`."""
    value = float(bound)
    forms = {bound, f"{value:g}", repr(value)}
    return 'le=~"' + "|".join(sorted(f.replace(".", "[.]") for f in forms)) + '"'

