"""Entry point the Pulumi CLI runs for `--policy-pack policy` (python -m pulumi.policy <engine> .).

PolicyPack() starts the analyzer's gRPC server and blocks, so tests import llmstack_policies
instead of this file.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pulumi_policy import PolicyPack  # noqa: E402

import llmstack_policies  # noqa: E402

# Re-expose secret markers to contact-point-secrets (a no-op on an unverified pulumi-policy).
llmstack_policies.install_secret_markers()

PolicyPack(
    name=llmstack_policies.PACK_NAME,
    enforcement_level=llmstack_policies.enforcement_level(),
    policies=llmstack_policies.policies(),
    description="Guardrails for the Mistral.rs LLM stack: pinned images, no public binds in prod, "
    "a GPU for prod inference, secret alerting credentials, protected prod data volumes.",
)
