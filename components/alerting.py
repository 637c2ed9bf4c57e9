"""Grafana alerting: contact points, the notification policy and the forwarding rule group."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumiverse_grafana as grafana

from llmstack.grafana_alerting import AlertingSpec


@dataclass(frozen=True)
class GrafanaAlertingArgs:
    spec: AlertingSpec  # rendered by llmstack/grafana_alerting.py
    provider: grafana.Provider
    # The folder and datasource the rules live in and query; the rule group waits for both.
    folder: grafana.oss.Folder
    datasource: grafana.oss.DataSource


def _rule_args(spec: dict) -> grafana.alerting.RuleGroupRuleArgs:
    datas = [
        grafana.alerting.RuleGroupRuleDataArgs(
            ref_id=d["ref_id"],
            datasource_uid=d["datasource_uid"],
            model=d["model"],
            relative_time_range=grafana.alerting.RuleGroupRuleDataRelativeTimeRangeArgs(**d["relative_time_range"]),
        )
        for d in spec["datas"]
    ]
    return grafana.alerting.RuleGroupRuleArgs(**{**spec, "datas": datas})


_INTEGRATION_ARGS = {
    "emails": grafana.alerting.ContactPointEmailArgs,
    "slacks": grafana.alerting.ContactPointSlackArgs,
    "webhooks": grafana.alerting.ContactPointWebhookArgs,
    "pagerduties": grafana.alerting.ContactPointPagerdutyArgs,
}


def _policy_args(spec: dict) -> grafana.alerting.NotificationPolicyPolicyArgs:
    matchers = [grafana.alerting.NotificationPolicyPolicyMatcherArgs(**m) for m in spec["matchers"]]
    return grafana.alerting.NotificationPolicyPolicyArgs(**{**spec, "matchers": matchers})


class GrafanaAlerting(pulumi.ComponentResource):
    """Everything that turns the stack's Prometheus alerts into notifications on the team's channels."""

    def __init__(self, name: str, args: GrafanaAlertingArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("llmstack:index:GrafanaAlerting", name, None, opts)
        spec = args.spec

        def child(**extra) -> pulumi.ResourceOptions:
            return pulumi.ResourceOptions(parent=self, provider=args.provider, **extra)

        self.contact_points = {}
        for cp in spec.contact_points:
            blocks = {block: [_INTEGRATION_ARGS[block](**entry) for entry in entries] for block, entries in cp.integrations.items()}
            self.contact_points[cp.key] = grafana.alerting.ContactPoint(
                f"{name}-contact-point-{cp.key}",
                name=cp.name,
                **blocks,
                # The provider reads secure settings back redacted (pulumiverse/pulumi-grafana#379):
                # keep the whole blocks secret in state, not only the inputs we marked.
                opts=child(additional_secret_outputs=cp.secret_blocks),
            )

        depends: list[pulumi.Resource] = list(self.contact_points.values())
        self.mute_timing = None
        if spec.mute_timing is not None:
            # One empty interval mutes at all times (the provider's documented way to say "always").
            self.mute_timing = grafana.alerting.MuteTiming(
                f"{name}-mute-always",
                name=spec.mute_timing,
                intervals=[grafana.alerting.MuteTimingIntervalArgs()],
                opts=child(),
            )
            depends.append(self.mute_timing)

        policy = spec.policy
        # A singleton: this replaces the Grafana org's whole policy tree.
        self.policy = grafana.alerting.NotificationPolicy(
            f"{name}-notification-policy",
            contact_point=policy["contact_point"],
            group_bies=policy["group_bies"],
            group_wait=policy["group_wait"],
            group_interval=policy["group_interval"],
            repeat_interval=policy["repeat_interval"],
            policies=[_policy_args(p) for p in policy["policies"]],
            # It names contact points and the mute timing; they must exist first.
            opts=child(depends_on=depends),
        )

        group = spec.rule_group
        self.rule_group = grafana.alerting.RuleGroup(
            f"{name}-rule-group",
            name=group["name"],
            # The folder's output (equal to group["folder_uid"]) so the group waits for the folder.
            folder_uid=args.folder.uid,
            interval_seconds=group["interval_seconds"],
            rules=[_rule_args(r) for r in group["rules"]],
            opts=child(depends_on=[args.datasource]),
        )

        self.register_outputs(
            {
                "contact_points": {k: cp.name for k, cp in self.contact_points.items()},
                "rule_group": self.rule_group.name,
            }
        )
