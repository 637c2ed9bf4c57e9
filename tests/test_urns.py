"""Every resource keeps its URN: a changed URN is a delete and a create on `pulumi up`, which for a
data volume means lost data (or, on prod, a failed update: the volumes are protected). The lists in
tests/urns/ are the URNs the committed stacks have; a change to them must come with aliases."""

import os

import pytest

from tests.harness import run_stack

HERE = os.path.dirname(os.path.abspath(__file__))
# Enough channels that every contact point exists, besides what the stack files set.
SECRETS = {"prod": {"alertSlackUrl": "https://hooks.slack.com/services/T0/B0/x", "alertPagerdutyKey": "pd-key"}}


def urns(rec, env: str) -> list[str]:
    def qualified_type(name: str) -> str:
        typ, _, parent = rec.options[name]
        return typ if parent is None else qualified_type(parent) + "$" + typ

    return sorted(f"urn:pulumi:{env}::llmstack::{qualified_type(name)}::{name}" for name in rec.options)


@pytest.mark.parametrize("env", ["dev", "prod", "k8s"])
def test_urns_match_the_committed_list(env):
    with open(os.path.join(HERE, "urns", f"{env}.txt")) as fh:
        committed = fh.read().split()
    assert urns(run_stack(env, secrets=SECRETS.get(env)), env) == committed
