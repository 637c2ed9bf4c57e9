"""SLO burn-rate alerts: the SRE workbook's multi-window, multi-burn-rate alerts over llmstack/slo.py.

Each alert fires when the error budget burns faster than a rate over a long window, confirmed by a
short window (a twelfth of the long one) so it stops as soon as the burn does:

- page (critical): 14.4x over 1h and 5m (2% of the 30-day budget gone in an hour), or 6x over 6h
  and 30m (5% in six hours), each also over the last 5m, so a page stops within 5 minutes of the
  burn (the 30m window alone would hold it for up to half an hour);
- ticket (warning): 3x over 1d and 2h (10% in a day), or 1x over 3d and 6h (10% in three days).
  A ticket lets go when its short window does, up to 6 hours after the burn stops: it is work for
  the day, not a page, and a ticket that flickered with every quiet 5 minutes would be noise.

They answer "are we spending the month's budget too fast?", not "is it broken now?". A total outage
at a 99.5% objective needs about 4 minutes to burn 2% of the budget, so the threshold pages
(LLMHighErrorRatioCritical, LLMTargetDown) stay the fast outage detectors; docs/alerts.md says which
threshold alerts the SLO alerts sit beside and why none was retired.
"""

from __future__ import annotations

from ..config import StackConfig
from ..signals import BY, SCHEMA_LABELS, SLO_BURN_RATES
from ..slo import LABEL
from .base import WHERE, AlertRule, alert

# (burn rate, long window, short window) per alert, as the SRE workbook sets them for a 30-day SLO.
PAGE = ((14.4, "1h", "5m"), (6, "6h", "30m"))
TICKET = ((3, "1d", "2h"), (1, "3d", "6h"))
CONFIRM = "5m"  # the window every page also needs
IDENTITY = (*SCHEMA_LABELS, LABEL)


def burn_expr(pairs: tuple[tuple[float, str, str], ...], confirm: str = "", records=SLO_BURN_RATES, by: str = BY) -> str:
    on = f"on ({by}, {LABEL})"
    terms = []
    for rate, long, short in pairs:
        windows = [long, short] + ([confirm] if confirm and confirm != short else [])
        terms.append("(" + f" and {on} ".join(f"{records[w].name} > {rate:g}" for w in windows) + ")")
    return f" or {on} ".join(terms)


def _windows(pairs: tuple[tuple[float, str, str], ...]) -> str:
    return " or ".join(f"{rate:g}x over {long} and {short}" for rate, long, short in pairs)


def alert_rules(cfg: StackConfig) -> list[AlertRule]:
    slo = "the {{ $labels.slo }} SLO"
    return [
        alert(
            cfg,
            "LLMErrorBudgetBurnFast",
            burn_expr(PAGE, CONFIRM),
            "1m",
            "critical",
            "Error budget of the {{ $labels.slo }} SLO burning fast on {{ $labels.instance }}",
            f"{WHERE} is spending the 30-day error budget of {slo} {{{{ printf \"%.1f\" $value }}}} times faster than it "
            f"lasts ({_windows(PAGE)}, and over the last {CONFIRM}): at least 2% of the month's budget is gone within the hour.",
            IDENTITY,
        ),
        alert(
            cfg,
            "LLMErrorBudgetBurnSlow",
            burn_expr(TICKET),
            "5m",
            "warning",
            "Error budget of the {{ $labels.slo }} SLO burning on {{ $labels.instance }}",
            f"{WHERE} is spending the 30-day error budget of {slo} {{{{ printf \"%.1f\" $value }}}} times faster than it "
            f"lasts ({_windows(TICKET)}): at this pace the budget runs out before the month does.",
            IDENTITY,
        ),
    ]
