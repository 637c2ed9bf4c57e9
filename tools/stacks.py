"""The committed stack files (Pulumi.<env>.yaml) as typed configs, for renders and tests."""

from __future__ import annotations

import json
import os

import yaml

from llmstack import config as cfgmod

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROJECT = "llmstack"
# The stacks the committed renders are made from.
STACK_FILES = {"dev": "Pulumi.dev.yaml", "prod": "Pulumi.prod.yaml"}
# The example stack on a cluster (platform kubernetes); its renders are the Kubernetes objects.
KUBERNETES_STACK_FILES = {"k8s": "Pulumi.k8s.yaml"}
ALL_STACK_FILES = {**STACK_FILES, **KUBERNETES_STACK_FILES}
# Credentials a stack file names in its header but cannot hold (each stack encrypts its own): renders
# and tests stand in a placeholder, marked secret, so the loader sees them set.
STACK_SECRETS = {"k8s": {"grafanaAuth": "set-with-pulumi-config-secret"}}


def stack_values(env: str, root: str = ROOT) -> dict[str, str]:
    """The project's values of a committed stack file, as Pulumi hands them to the program: strings,
    arrays as JSON; encrypted (`secure:`) values are left out."""
    with open(os.path.join(root, ALL_STACK_FILES[env])) as fh:
        doc = yaml.safe_load(fh) or {}
    values = {}
    for key, value in (doc.get("config") or {}).items():
        ns, _, name = key.partition(":")
        if ns != PROJECT or isinstance(value, dict):
            continue
        values[name] = value if isinstance(value, str) else json.dumps(value)
    return values


def stack_config(env: str, root: str = ROOT) -> cfgmod.StackConfig:
    """The typed config of a committed stack, for renders that do not need the secrets."""
    secrets = STACK_SECRETS.get(env, {})
    return cfgmod.load(cfgmod.DictSource({**stack_values(env, root), **secrets}, frozenset(secrets)), env)
