"""Grafana alerting as plain data: the rule group, contact points, mute timing and notification policy.

Why Grafana rules at all: contact points and notification policies belong to Grafana's built-in
Alertmanager, which only receives Grafana-managed alerts; Prometheus cannot post to it
(grafana/grafana#50150). So for every Prometheus alert in llmstack/alerts there is exactly one
Grafana rule that *forwards* it: it queries `ALERTS{alertname="<name>", alertstate="firing"}` and
fires while Prometheus fires, carrying the alert's labels and annotations. Prometheus stays the only
evaluator (thresholds and `for` live in one place), and the Grafana rule has `for: 0s` so it adds
no delay beyond one Grafana evaluation.

Everything here is a pure function of the typed config and the alert definitions. The results use
the provider's Python argument names (pulumiverse_grafana 2.44: alerting.RuleGroupRuleArgs,
ContactPoint*Args, NotificationPolicyPolicyArgs, MuteTimingIntervalArgs), so components/alerting.py
only turns them into resources. Secret values (webhook URLs, keys) are passed through `secret`, a
callable the component supplies (pulumi.Output.secret); here they stay opaque.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from .alerts import WATCHDOG, AlertRule
from .config import StackConfig, duration_seconds
from .dashboards import DATASOURCE_UID, FOLDER_UID
from .routing import GRAFANA, Receiver, Routing, routing

# Grafana's id for server-side expressions (math, reduce, threshold) in a rule's data
# (pulumiverse/pulumi-grafana#220; "-100" is the legacy spelling).
EXPRESSION_DATASOURCE_UID = "__expr__"
RULE_GROUP_NAME = "llmstack-forwarded-prometheus-alerts"
QUERY_REF, CONDITION_REF = "A", "B"
# Grafana's scheduler runs every 10 s and rejects a rule group interval that is not a multiple of
# it (pkg/services/ngalert/api: "rule evaluation interval ... should be multiple of the base interval").
GRAFANA_BASE_INTERVAL_SECONDS = 10
# How far back the forwarding query looks. It is an instant query, so this only bounds the lookup.
QUERY_WINDOW_SECONDS = 600



def rule_group_interval_seconds(cfg: StackConfig) -> int:
    """Prometheus's evaluation interval, rounded up to a multiple of Grafana's 10 s scheduler tick."""
    seconds = duration_seconds(cfg.prometheus.evaluation_interval)
    ticks = max(1, math.ceil(seconds / GRAFANA_BASE_INTERVAL_SECONDS))
    return ticks * GRAFANA_BASE_INTERVAL_SECONDS


def forwarding_expr(alertname: str) -> str:
    return f'ALERTS{{alertname="{alertname}", alertstate="firing"}}'


# Prometheus template parts Grafana cannot render for a forwarded alert: `$value` would be the
# ALERTS sample (always 1), and $externalLabels/$externalURL do not exist in Grafana templates.
_PROMETHEUS_ONLY_TEMPLATE = re.compile(r"\{\{[^{}]*\$(?:value|externalLabels|externalURL)\b[^{}]*\}\}")
VALUE_PLACEHOLDER = "(value: see the Prometheus alert)"


def grafana_annotation(text: str) -> str:
    """A Prometheus annotation as a Grafana template: `{{ $labels.x }}` works in both, `$value` does not."""
    return _PROMETHEUS_ONLY_TEMPLATE.sub(VALUE_PLACEHOLDER, text)


def _model(model: dict) -> str:
    # The provider wants the model as a JSON string; intervalMs/maxDataPoints are what Grafana
    # fills in on read, so leaving them out makes a permanent diff (grafana/terraform-provider-grafana#948).
    return json.dumps({"intervalMs": 1000, "maxDataPoints": 43200, **model}, sort_keys=True)


def rule_spec(alert: AlertRule) -> dict:
    """One Grafana rule forwarding the Prometheus alert `alert`."""
    watchdog = alert.name == WATCHDOG
    query = {
        "refId": QUERY_REF,
        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
        "expr": forwarding_expr(alert.name),
        "instant": True,
        "range": False,
    }
    threshold = {
        "refId": CONDITION_REF,
        "datasource": {"type": EXPRESSION_DATASOURCE_UID, "uid": EXPRESSION_DATASOURCE_UID},
        "type": "threshold",
        "expression": QUERY_REF,
        "conditions": [{"evaluator": {"type": "gt", "params": [0]}}],
    }
    annotations = {
        "summary": grafana_annotation(alert.summary),
        "description": grafana_annotation(alert.description),
        "runbook_url": alert.runbook_url,
    }
    return {
        "name": alert.name,
        "condition": CONDITION_REF,
        # Prometheus already waited for the alert's own `for`; waiting again would only delay it.
        "for_": "0s",
        # A resolved alert leaves no ALERTS series: no data means "not firing". Except for the
        # Watchdog, which always fires: no data there means the pipeline behind it went silent.
        "no_data_state": "Alerting" if watchdog else "OK",
        # Grafana cannot query Prometheus: raise Grafana's own DatasourceError alert.
        "exec_err_state": "Error",
        "labels": {**dict(alert.labels), "severity": alert.severity},
        "annotations": annotations,
        "datas": [
            {
                "ref_id": QUERY_REF,
                "datasource_uid": DATASOURCE_UID,
                "relative_time_range": {"from_": QUERY_WINDOW_SECONDS, "to": 0},
                "model": _model(query),
            },
            {
                "ref_id": CONDITION_REF,
                "datasource_uid": EXPRESSION_DATASOURCE_UID,
                "relative_time_range": {"from_": 0, "to": 0},
                "model": _model(threshold),
            },
        ],
    }


def rule_group_spec(cfg: StackConfig, alerts: Sequence[AlertRule]) -> dict:
    """The RuleGroup's arguments: one forwarding rule per Prometheus alert, in the folder."""
    names = [a.name for a in alerts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        # ALERTS{alertname=...} could not tell them apart, and Grafana needs unique titles.
        raise ValueError(f"alert names must be unique to be forwarded, duplicated: {duplicates}")
    return {
        "name": RULE_GROUP_NAME,
        "folder_uid": FOLDER_UID,
        "interval_seconds": rule_group_interval_seconds(cfg),
        "rules": [rule_spec(a) for a in sorted(alerts, key=lambda a: a.name)],
    }


# --- contact points and routing --------------------------------------------------------------

@dataclass(frozen=True)
class ContactPointSpec:
    key: str  # the receiver key: "work", "page" or "heartbeat"
    name: str
    # Integration blocks, by the ContactPoint argument names (emails, slacks, webhooks, pagerduties).
    integrations: dict

    @property
    def secret_blocks(self) -> list[str]:
        """Blocks that carry credentials (for additional_secret_outputs; emails carry none)."""
        return sorted(k for k in self.integrations if k != "emails")


def _webhook(cfg: StackConfig, secret: Callable[[Any], Any]) -> dict:
    a = cfg.alerting
    hook: dict = {"url": secret(a.webhook_url)}
    if a.webhook_user:
        hook["basic_auth_user"] = a.webhook_user
    if a.webhook_password is not None:
        hook["basic_auth_password"] = secret(a.webhook_password)
    return hook


def _integrations(cfg: StackConfig, receiver: Receiver, secret: Callable[[Any], Any]) -> dict:
    a = cfg.alerting
    out: dict = {}
    for channel in receiver.channels:
        if channel == "slack":
            slack: dict = {"url": secret(a.slack_url)}
            if a.slack_channel:
                slack["recipient"] = a.slack_channel
            out["slacks"] = [slack]
        elif channel == "email":
            out["emails"] = [{"addresses": list(a.email_addresses), "single_email": True}]
        elif channel in ("webhook", "heartbeat"):
            # Grafana's heartbeat is the webhook it owns: a dead man's switch behind it notices silence.
            out["webhooks"] = [_webhook(cfg, secret)]
        elif channel == "pagerduty":
            out["pagerduties"] = [{"integration_key": secret(a.pagerduty_key), "severity": "critical"}]
    return out


def contact_point_specs(cfg: StackConfig, route_plan: Routing, secret: Callable[[Any], Any] = lambda v: v) -> list[ContactPointSpec]:
    """One contact point per receiver of the routing definition."""
    return [ContactPointSpec(r.key, r.name, _integrations(cfg, r, secret)) for r in route_plan.receivers]


def _match(label: str, op: str, value: str) -> dict:
    return {"label": label, "match": op, "value": value}


def notification_policy_spec(route_plan: Routing) -> dict:
    """The whole notification policy tree (the provider's NotificationPolicy is a singleton), from
    the routing definition. Grafana adds one thing of its own: the forwarded Watchdog carries
    alertstate="firing" (from its ALERTS series), and its no-data instance does not, so the
    Watchdog without that label, i.e. a pipeline gone silent, pages."""
    names = {r.key: r.name for r in route_plan.receivers}
    page = names[route_plan.routes[1].receiver]
    policies = []
    for route in route_plan.routes:
        policy: dict = {"matchers": [_match(*m) for m in route.matchers], "contact_point": names[route.receiver]}
        if route.matchers == (("alertname", "=", WATCHDOG),):
            policy["matchers"].append(_match("alertstate", "=", "firing"))
        if route.group_wait is not None:
            policy["group_wait"] = route.group_wait
        if route.repeat_interval is not None:
            policy["repeat_interval"] = route.repeat_interval
        if route.muted:
            policy["mute_timings"] = [route_plan.mute_timing]
        if route.continue_:
            policy["continue_"] = True
        elif route.matchers[0][0] == "severity" and route.matchers[0][2] == "critical":
            policy["continue_"] = False
        policies.append(policy)
        if route.matchers == (("alertname", "=", WATCHDOG),):
            policies.append({"matchers": [_match("alertname", "=", WATCHDOG)], "contact_point": page, "group_wait": "0s"})
    return {
        "contact_point": names[route_plan.default],
        "group_bies": list(route_plan.group_by),
        "group_wait": route_plan.group_wait,
        "group_interval": route_plan.group_interval,
        "repeat_interval": route_plan.repeat_interval,
        "policies": policies,
    }


@dataclass(frozen=True)
class AlertingSpec:
    """Everything the GrafanaAlerting component creates, as data."""

    contact_points: list[ContactPointSpec]
    mute_timing: Optional[str]  # the always-mute timing's name, when the Watchdog has nowhere to go
    policy: dict
    rule_group: dict


def alerting_spec(cfg: StackConfig, alerts: Sequence[AlertRule], secret: Callable[[Any], Any] = lambda v: v) -> AlertingSpec:
    plan = routing(cfg, alerts, GRAFANA)
    return AlertingSpec(
        contact_points=contact_point_specs(cfg, plan, secret),
        mute_timing=plan.mute_timing,
        policy=notification_policy_spec(plan),
        rule_group=rule_group_spec(cfg, alerts),
    )
