"""The GitHub workflows: offline actionlint (scripts/lint-workflows) plus the shape docs/ci.md promises."""

from __future__ import annotations

import subprocess
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LINT = ROOT / "scripts" / "lint-workflows"
WORKFLOWS = ROOT / ".github" / "workflows"

# Inputs of pulumi/actions v7.0.0, read from its action.yml (identical to v6.6.1's). The embedded
# actionlint (v1.7.7) only knows pulumi/actions up to v6, so the v7 inputs are checked here.
PULUMI_ACTION_INPUTS = {
    "command", "stack-name", "pulumi-version", "pulumi-version-file", "work-dir", "comment-on-pr",
    "comment-on-pr-number", "comment-on-summary", "github-token", "cloud-url", "secrets-provider",
    "parallel", "message", "config-map", "expect-no-changes", "diff", "replace", "exclude",
    "exclude-dependents", "target", "target-dependents", "policyPacks", "policyPackConfigs", "refresh",
    "upsert", "remove", "edit-pr-comment", "color", "exclude-protected", "plan", "suppress-outputs",
    "suppress-progress", "always-include-summary", "continue-on-error", "log-verbosity", "log-flow",
    "debug",
}


def lint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), *map(str, files)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def load(name: str) -> dict:
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    if True in wf:  # YAML 1.1 reads the key `on` as a boolean
        wf["on"] = wf.pop(True)
    return wf


def steps_using(job: dict, action: str) -> list[dict]:
    return [s for s in job["steps"] if str(s.get("uses", "")).split("@")[0] == action]


def test_workflows_pass_actionlint():
    result = lint()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no findings" in result.stdout


BROKEN = """\
name: broken
on:
  pull_request:
jobs:
  preview:
    runs-on: ubuntu-latest
    needs: no-such-job
    steps:
      - run: echo ${{ github.no_such_property }}
      - uses: pulumi/actions@v6
        with:
          command: preview
          policyPack: policy
"""


def test_a_broken_workflow_fails_the_linter(tmp_path):
    bad = tmp_path / "broken.yml"
    bad.write_text(BROKEN)
    result = lint(bad)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert '"no-such-job"' in out  # needs: an unknown job
    assert "no_such_property" in out  # an undefined context property
    assert 'input "policyPack" is not defined' in out  # a misspelt action input


def test_a_yaml_syntax_error_fails_the_linter(tmp_path):
    bad = tmp_path / "syntax.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: [ubuntu-latest\n")
    result = lint(bad)
    assert result.returncode == 1, result.stdout + result.stderr


def test_lint_script_rejects_a_missing_file(tmp_path):
    assert lint(tmp_path / "nope.yml").returncode == 2


def test_pulumi_action_inputs_are_known():
    for name in ("pr.yml", "deploy.yml"):
        for job in load(name)["jobs"].values():
            for step in steps_using(job, "pulumi/actions"):
                assert step["uses"] == "pulumi/actions@v7"
                unknown = set(step.get("with", {})) - PULUMI_ACTION_INPUTS
                assert not unknown, f"{name}: unknown pulumi/actions inputs {unknown}"


def test_pr_workflow_tests_then_previews_every_stack_with_the_policy_pack():
    wf = load("pr.yml")
    assert "pull_request" in wf["on"]
    assert wf["permissions"] == {"contents": "read", "pull-requests": "write"}
    test, preview = wf["jobs"]["test"], wf["jobs"]["preview"]
    assert any(s.get("run") == "./scripts/test" for s in test["steps"])
    assert preview["needs"] == "test"
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    setup = steps_using(preview, "actions/setup-python")[0]
    assert setup["with"]["python-version"] == "${{ env.PYTHON_VERSION }}" and wf["env"]["PYTHON_VERSION"] == "3.11"
    run = [s for s in steps_using(preview, "pulumi/actions") if "command" in s.get("with", {})]
    assert len(run) == 1
    w = run[0]["with"]
    assert w["command"] == "preview"
    assert w["stack-name"] == "${{ matrix.stack }}"
    assert w["diff"] is True and w["comment-on-pr"] is True and w["edit-pr-comment"] is True
    assert w["policyPacks"] == "policy"
    assert w["cloud-url"] == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert w["github-token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert preview["env"]["PULUMI_CONFIG_PASSPHRASE"] == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


def test_deploy_workflow_gates_each_stack():
    wf = load("deploy.yml")
    assert wf["on"]["push"] == {"branches": ["main"], "tags": ["v*"]}
    jobs = wf["jobs"]
    assert any(s.get("run") == "./scripts/test" for s in jobs["test"]["steps"])
    for job_name, stack, condition in (
        ("up-dev", "dev", "github.ref == 'refs/heads/main'"),
        ("up-prod", "prod", "startsWith(github.ref, 'refs/tags/v')"),
    ):
        job = jobs[job_name]
        assert job["needs"] == "test"
        assert job["if"] == condition
        assert job["concurrency"] == {"group": f"pulumi-up-{stack}", "cancel-in-progress": False}
        up = [s for s in steps_using(job, "pulumi/actions") if "command" in s.get("with", {})]
        assert len(up) == 1
        assert up[0]["with"]["command"] == "up" and up[0]["with"]["stack-name"] == stack
        assert up[0]["with"]["policyPacks"] == "policy"
    assert jobs["up-prod"]["environment"] == "prod"


@pytest.mark.parametrize("name", ["pr.yml", "deploy.yml"])
def test_secrets_used_by_workflows_are_documented(name):
    used = set(re.findall(r"secrets\.([A-Z0-9_]+)", (WORKFLOWS / name).read_text())) - {"GITHUB_TOKEN"}
    doc = (ROOT / "docs" / "ci.md").read_text()
    missing = {s for s in used if f"`{s}`" not in doc}
    assert not missing, f"secrets used by {name} but not in docs/ci.md: {missing}"
