"""The program passes its own policy pack: the checks of policy/ applied to what the mocks record."""

import os
import sys

import pytest
from components import common

from tests.harness import run_stack

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "policy"))
import llmstack_policies as policies  # noqa: E402

SECRETS = {"alertSlackUrl": "https://hooks.slack.com/services/T/B/x", "alertPagerdutyKey": "pd-key-123"}


def violations(env, **kw):
    rec = run_stack(env, secrets=SECRETS, **kw)
    found = []
    for r in rec.resources:
        props = policies._mark_secrets(r.inputs)
        opts = rec.opts(r.name)
        if r.typ in (policies.CONTAINER, policies.REMOTE_IMAGE):
            found += policies.pinned_image_problems(r.typ, props)
        if r.typ == policies.CONTAINER:
            found += policies.public_bind_problems(props, stack=env)
            found += policies.gpu_request_problems(props, stack=env)
        if r.typ == policies.CONTACT_POINT:
            found += policies.contact_point_secret_problems(props, markers_visible=True)
        if r.typ == policies.VOLUME:
            found += policies.data_volume_problems(props, protect=bool(opts.protect), stack=env)
    return found


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_stack_has_no_policy_violations(env):
    assert violations(env) == []


def test_a_public_prod_bind_with_the_opt_in_passes_the_policy():
    assert violations("prod", overrides={"mistralPublishAddress": "0.0.0.0", "allowPublicBind": "true"}) == []


def test_the_policy_refuses_a_public_prod_bind_without_the_opt_in(monkeypatch):
    # Config refuses this before any resource exists; the policy is the second line, for a program
    # that would publish publicly without the opt-in. Simulate one that forgets to label.
    monkeypatch.setattr(common, "LABEL_PUBLIC_BIND_ALLOWED", "llmstack.unused")
    found = violations("prod", overrides={"mistralPublishAddress": "0.0.0.0", "allowPublicBind": "true"})
    assert any("publishes container port 1234" in v for v in found)


def test_unprotected_prod_volume_would_be_caught():
    found = violations("prod", overrides={"retainDataOnDelete": "false"})
    assert any("prod data volume is not protected" in v for v in found)
