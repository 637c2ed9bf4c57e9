"""Run the whole Pulumi program under mocks, once per call, and record what it registers.

`run_stack()` executes program.main() inside a `@pulumi.runtime.test` function that returns the
stack's outputs, so every registration has been awaited before it returns. The tests then assert on
the recorded inputs in plain Python.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Optional

import pulumi
from pulumi.runtime import rpc

import program
from tools.stacks import STACK_SECRETS, stack_values

PROJECT = "llmstack"


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict
    provider: Optional[str]
    parent: Optional[str] = None


@dataclass
class Recorder(pulumi.runtime.Mocks):
    resources: list = field(default_factory=list)
    # name -> (type, ResourceOptions, parent name or None), for every resource, components included
    options: dict = field(default_factory=dict)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs), args.provider))
        outputs = dict(args.inputs)
        if args.typ == "docker:index/remoteImage:RemoteImage":
            outputs["imageId"] = "sha256:" + hashlib.sha256(args.inputs["name"].encode()).hexdigest()
            outputs["repoDigest"] = args.inputs["name"].split(":")[0] + "@" + outputs["imageId"]
        if args.typ == "random:index/randomPassword:RandomPassword":
            outputs["result"] = "mock-generated-password"
        return [f"{args.name}-id", outputs]

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

    # helpers for the tests
    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def opts(self, name: str) -> pulumi.ResourceOptions:
        return self.options[name][1]

    def parent_of(self, name: str) -> Optional[str]:
        return self.options[name][2]

    def one(self, typ: str, name: Optional[str] = None) -> Registered:
        found = [r for r in self.of_type(typ) if name is None or r.name == name]
        assert len(found) == 1, f"expected one {typ} {name or ''}, got {[r.name for r in found]}"
        return found[0]


def stack_config_values(env: str) -> dict[str, str]:
    """The committed stack file's values, as Pulumi hands them to the program (JSON for arrays)."""
    return stack_values(env)


def run_stack(
    env: str,
    overrides: Optional[dict[str, Any]] = None,
    secrets: Optional[dict[str, str]] = None,
    plaintext: Optional[dict[str, str]] = None,
    base: Optional[dict[str, str]] = None,
) -> Recorder:
    """Run program.main() for `env` with the committed stack file plus overrides.

    `secrets` are set as encrypted config values; `plaintext` sets values without the secret flag
    (to check that credentials stored in plaintext are refused). Raises what the program raises.
    """
    values = dict(stack_config_values(env) if base is None else base)
    for key, value in (overrides or {}).items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value if isinstance(value, str) else json.dumps(value)
    # The credentials a committed stack file cannot hold, unless the test sets or unsets them.
    secrets = {**(STACK_SECRETS.get(env, {}) if base is None else {}), **(secrets or {})}
    secrets = {k: v for k, v in secrets.items() if v is not None and k not in (plaintext or {})}
    values.update(plaintext or {})
    values.update(secrets)
    recorder = Recorder()
    pulumi.runtime.set_mocks(recorder, project=PROJECT, stack=env, preview=False)
    pulumi.runtime.set_all_config(
        {f"{PROJECT}:{k}": v for k, v in values.items()},
        [f"{PROJECT}:{k}" for k in secrets],
    )

    active = [True]

    def record_options(args: pulumi.ResourceTransformationArgs):
        # Registered transformations outlive the run; only the run that registered it records.
        if not active[0]:
            return None
        parent = args.opts.parent if args.opts else None
        recorder.options[args.name] = (args.type_, args.opts, getattr(parent, "_name", None))
        return None

    @pulumi.runtime.test
    def _program():
        pulumi.runtime.register_stack_transformation(record_options)
        built = program.main()
        # Awaiting every component's URN means every child has been registered too.
        return pulumi.Output.all(*[c.urn for c in built.values()])

    try:
        _program()
    finally:
        active[0] = False
    return recorder


def find_plaintext(value: Any, needle: str) -> bool:
    """True when `needle` occurs in `value` outside a Pulumi secret."""
    if rpc.is_rpc_secret(value):
        return False
    if isinstance(value, str):
        return needle in value
    if isinstance(value, dict):
        return any(find_plaintext(v, needle) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(find_plaintext(v, needle) for v in value)
    return False


def contains_secret(value: Any, needle: str) -> bool:
    """True when `needle` occurs inside a Pulumi secret in `value`."""
    if rpc.is_rpc_secret(value):
        return needle in json.dumps(rpc.unwrap_rpc_secret(value), default=str)
    if isinstance(value, dict):
        return any(contains_secret(v, needle) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(contains_secret(v, needle) for v in value)
    return False


# Alerts one engine-neutral rule raises alike for every engine: they read `up` of every engine job,
# or burn rates computed from the catalogue's rates. tests/promtool/mistral_alerts_test.yaml,
# slo_*_test.yaml and fleet_test.yaml show them firing; the engine test files need not repeat them.
ENGINE_NEUTRAL_ALERTS = frozenset({
    "LLMTargetAbsent", "LLMTargetFlapping", "LLMFleetReplicasDown",
    "LLMErrorBudgetBurnFast", "LLMErrorBudgetBurnSlow", "LLMFleetErrorBudgetBurnFast",
})
