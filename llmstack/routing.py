"""Who gets which alert: the one routing definition both delivery paths render.

Grafana's notification policy (llmstack/grafana_alerting.py) and Alertmanager's `alertmanager.yml`
(llmstack/alertmanager.py) are both rendered from `routing(cfg, alerts)`: the receivers and the
channels each holds, the severity routes, grouping and timings, the always-mute timing and the
inhibitions. Neither renderer decides anything about routing itself.

Receivers:
  work       Slack, e-mail and the webhook, whichever the path owns: warnings and critical alerts
  page       PagerDuty: critical alerts (critical alerts go to work as well)
  heartbeat  the Watchdog's dead man's switch, repeating at a fixed interval

Which path owns a channel (`alertDelivery`): every channel goes through Grafana, or through
Alertmanager, or, with `both`, each channel through exactly one of them (`alertmanagerChannels`),
so no channel ever hears of an alert twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from .alerts import WATCHDOG, AlertRule, inference
from .config import StackConfig

GRAFANA, ALERTMANAGER = "grafana", "alertmanager"
CHANNELS = ("slack", "email", "webhook", "pagerduty")
# Labels a notification groups alerts by.
GROUP_BY = ("alertname", "severity")
# What ties an inference alert to its instance (the scrape target labels every series carries).
INSTANCE_LABELS = ("env", "instance")

Matcher = tuple[str, str, str]  # (label, operator, value), operator one of = != =~ !~


@dataclass(frozen=True)
class Receiver:
    key: str  # work | page | heartbeat
    name: str
    channels: tuple[str, ...]  # of CHANNELS, plus "heartbeat" for the dead man's switch


@dataclass(frozen=True)
class Route:
    matchers: tuple[Matcher, ...]
    receiver: str  # a receiver key
    continue_: bool = False
    group_wait: Optional[str] = None
    repeat_interval: Optional[str] = None
    muted: bool = False  # by the always-mute timing: the route swallows what it matches


@dataclass(frozen=True)
class Inhibition:
    """While an alert matching `source` fires, alerts matching `target` with the same `equal` labels are held back."""

    source: tuple[Matcher, ...]
    target: tuple[Matcher, ...]
    equal: tuple[str, ...]


@dataclass(frozen=True)
class Routing:
    path: str
    receivers: tuple[Receiver, ...]
    default: str  # the receiver key of the root route
    routes: tuple[Route, ...]  # first match wins unless continue_
    group_wait: str
    group_interval: str
    repeat_interval: str
    mute_timing: Optional[str]  # the always-mute timing's name, when a route is muted
    inhibitions: tuple[Inhibition, ...]
    group_by: tuple[str, ...] = GROUP_BY

    def receiver(self, key: str) -> Receiver:
        return next(r for r in self.receivers if r.key == key)


def owned_channels(cfg: StackConfig, path: str) -> tuple[str, ...]:
    """The configured channels this delivery path delivers to."""
    a = cfg.alerting
    configured = {
        "slack": a.slack_url is not None,
        "email": bool(a.email_addresses),
        "webhook": a.webhook_url is not None,
        "pagerduty": a.pagerduty_key is not None,
    }
    if not cfg.alertmanager.provisioned:
        # Existing Alertmanagers route by their own config: the stack's channels are Grafana's, if any.
        mine = set(CHANNELS) if path == GRAFANA else set()
    elif a.delivery == "both":
        mine = set(a.alertmanager_channels) if path == ALERTMANAGER else set(CHANNELS) - set(a.alertmanager_channels)
    else:
        mine = set(CHANNELS) if a.delivery == path else set()
    return tuple(c for c in CHANNELS if configured[c] and c in mine)


def paths(cfg: StackConfig) -> tuple[str, ...]:
    """The delivery paths the stack runs."""
    return {"grafana": (GRAFANA,), "alertmanager": (ALERTMANAGER,), "both": (GRAFANA, ALERTMANAGER)}[cfg.alerting.delivery]


def _heartbeat(cfg: StackConfig, path: str, channels: Sequence[str]) -> bool:
    """Whether the path has somewhere to send the Watchdog's heartbeat: Alertmanager has its own
    heartbeat URL; Grafana's goes to the webhook it owns."""
    if path == ALERTMANAGER:
        return cfg.alerting.heartbeat_url is not None
    return "webhook" in channels


def _family_inhibitions(alerts: Sequence[AlertRule]) -> list[Inhibition]:
    """A firing critical holds back the warning of its family (`<family>Critical` / `<family>Warning`)."""
    by_name = {a.name: a for a in alerts}
    out = []
    for name in sorted(by_name):
        if name.endswith("Critical") and (warning := name[: -len("Critical")] + "Warning") in by_name:
            out.append(Inhibition((("alertname", "=", name),), (("alertname", "=", warning),), by_name[name].identity))
    return out


def _target_inhibitions(cfg: StackConfig) -> list[Inhibition]:
    # The inference alerts are the instance alerts a dead or vanished target makes meaningless: no
    # traffic reaches its series.
    instance_alerts = "|".join(a.name for a in inference.alert_rules(cfg))
    target = (("alertname", "=~", instance_alerts),)
    return [
        Inhibition((("alertname", "=", "LLMTargetDown"),), target, INSTANCE_LABELS),
        # absent() knows no instance: while a whole job is gone, its environment's instance alerts are moot.
        Inhibition((("alertname", "=", "LLMTargetAbsent"),), target, ("env",)),
    ]


def routing(cfg: StackConfig, alerts: Sequence[AlertRule], path: str) -> Routing:
    a = cfg.alerting
    prefix = f"llmstack-{cfg.env}"
    channels = owned_channels(cfg, path)
    work = tuple(c for c in channels if c in ("slack", "email", "webhook"))
    receivers = []
    if work:
        receivers.append(Receiver("work", f"{prefix}-work", work))
    if "pagerduty" in channels:
        receivers.append(Receiver("page", f"{prefix}-page", ("pagerduty",)))
    heartbeat = _heartbeat(cfg, path, channels)
    if heartbeat:
        receivers.append(Receiver("heartbeat", f"{prefix}-heartbeat", ("heartbeat",)))
    if not receivers:
        raise ValueError(f"the {path} delivery path owns no channel; config validation should have refused this")
    keys = {r.key for r in receivers}
    work_key = "work" if "work" in keys else ("page" if "page" in keys else "heartbeat")
    page_key = "page" if "page" in keys else work_key

    watchdog = (("alertname", "=", WATCHDOG),)
    if heartbeat:
        # A heartbeat is only useful if it repeats often and without delay.
        watchdog_route = Route(watchdog, "heartbeat", group_wait="0s", repeat_interval=a.group_interval)
    else:
        watchdog_route = Route(watchdog, work_key, muted=True)
    routes = (
        watchdog_route,
        Route((("severity", "=", "critical"),), page_key, continue_=page_key != work_key),
        Route((("severity", "=~", "critical|warning"),), work_key),
    )
    return Routing(
        path=path,
        receivers=tuple(receivers),
        default=work_key,
        routes=routes,
        group_wait=a.group_wait,
        group_interval=a.group_interval,
        repeat_interval=a.repeat_interval,
        mute_timing=None if heartbeat else f"{prefix}-always",
        inhibitions=tuple(_family_inhibitions(alerts) + _target_inhibitions(cfg)),
    )
