"""The blackbox exporter's config as the stack renders it, checked by the exporter itself, and the
probe jobs against it.

Debian's blackbox exporter (0.23, the version of the stack's prom/blackbox-exporter image) loads
every rendered blackbox.yml with `--config.check`: the dev and prod stacks, and a stack with Ollama
probe targets (one more module per model). `--config.check` parses the YAML strictly (an unknown
field fails) and compiles the body regexps, but does not look at `prober`: an unknown prober only
fails when a probe runs, so that is checked here from the exporter's list of probers.

tests/integration/test_live_probes.py runs the same config against a fake mistral.rs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
import yaml

from llmstack import config as cfgmod
from llmstack import probes, prometheus
from tools.stacks import ROOT, STACK_FILES, stack_config, stack_values

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
# blackbox_exporter 0.23 main.go: the `Probers` map.
KNOWN_PROBERS = frozenset({"http", "tcp", "icmp", "dns", "grpc"})
PROMTOOL_PROBES_TEST = os.path.join(ROOT, "tests", "promtool", "probes_test.yaml")
OLLAMA_TARGETS = ["http@ollama-proxy:9000", "norskhelsenett@ollama-metrics:8080"]
OLLAMA_PROBES = ["llama3.2:1b@ollama-proxy:11434", "qwen2.5:7b-instruct@ollama-metrics:11434"]


def with_ollama_probes() -> cfgmod.StackConfig:
    """The committed dev stack plus two Ollama servers, each probed with a model of its own."""
    values = {**stack_values("dev"), "ollamaTargets": json.dumps(OLLAMA_TARGETS), "ollamaProbeTargets": json.dumps(OLLAMA_PROBES)}
    return cfgmod.load(cfgmod.DictSource(values), "dev")


CONFIGS = {**{env: (lambda env=env: stack_config(env)) for env in sorted(STACK_FILES)}, "dev+ollama": with_ollama_probes}


def config_check(path: str) -> subprocess.CompletedProcess:
    assert os.access(BLACKBOX, os.X_OK), f"{BLACKBOX} is missing: install Debian's prometheus-blackbox-exporter package"
    return subprocess.run([BLACKBOX, "--config.check", f"--config.file={path}"], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def accepted(done: subprocess.CompletedProcess) -> bool:
    return done.returncode == 0 and "Config file is ok" in done.stdout + done.stderr


def modules(text: str) -> dict:
    return yaml.safe_load(text)["modules"]


@pytest.mark.parametrize("name", CONFIGS)
def test_the_exporter_accepts_the_rendered_config(name, tmp_path):
    cfg = CONFIGS[name]()
    path = tmp_path / "blackbox.yml"
    path.write_text(probes.render_blackbox_yml(cfg))
    done = config_check(str(path))
    assert accepted(done), done.stdout + done.stderr
    found = modules(path.read_text())
    assert {m["prober"] for m in found.values()} <= KNOWN_PROBERS
    expected = {"liveness", "mistralrs_generation"} | {t.module for t in probes.targets(cfg)}
    assert set(found) == expected


@pytest.mark.parametrize("env", sorted(STACK_FILES))
def test_the_exporter_accepts_the_committed_files(env):
    done = config_check(os.path.join(ROOT, "assets", "blackbox", env, "blackbox.yml"))
    assert accepted(done), done.stdout + done.stderr


def test_an_ollama_probe_target_gets_its_own_module():
    found = modules(probes.render_blackbox_yml(with_ollama_probes()))
    for target in OLLAMA_PROBES:
        model = target.rsplit("@", 1)[0]
        [name] = [n for n, m in found.items() if n.startswith("ollama_generation_") and json.loads(m["http"]["body"])["model"] == model]
        body = json.loads(found[name]["http"]["body"])
        assert body["options"] == {"num_predict": 1} and body["stream"] is False
        assert found[name]["http"]["method"] == "POST"


def _broken(tmp_path, edit) -> subprocess.CompletedProcess:
    doc = modules(probes.render_blackbox_yml(with_ollama_probes()))
    edit(doc)
    path = tmp_path / "blackbox.yml"
    path.write_text(yaml.safe_dump({"modules": doc}))
    return config_check(str(path))


def test_the_check_fails_on_a_broken_module(tmp_path):
    """The check can fail: a body regexp that does not compile, and a misspelt field."""

    def bad_regexp(doc):
        doc["mistralrs_generation"]["http"]["fail_if_body_not_matches_regexp"] = ['"choices"\\s*:\\s*[']

    done = _broken(tmp_path, bad_regexp)
    assert done.returncode != 0 and "regular expression" in done.stdout + done.stderr

    def misspelt(doc):
        doc["liveness"]["http"]["valid_status_code"] = doc["liveness"]["http"].pop("valid_status_codes")

    done = _broken(tmp_path, misspelt)
    assert done.returncode != 0 and "valid_status_code" in done.stdout + done.stderr


def test_the_check_does_not_look_at_the_prober(tmp_path):
    """Why the tests above check `prober` themselves: the exporter accepts any name until a probe runs."""

    def unknown(doc):
        doc["liveness"]["prober"] = "htpp"

    assert accepted(_broken(tmp_path, unknown))


# ---------------------------------------------------------------------------------------------
# The probe jobs use the modules, and the promtool tests use the jobs' labels
# ---------------------------------------------------------------------------------------------


def _probe_jobs(cfg) -> list[dict]:
    doc = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
    return [j for j in doc["scrape_configs"] if j["job_name"].startswith("probe-")]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_probe_names_a_rendered_module(name):
    cfg = CONFIGS[name]()
    found = modules(probes.render_blackbox_yml(cfg))
    jobs = _probe_jobs(cfg)
    assert {j["job_name"] for j in jobs} == {probes.job(p) for p in probes.PROBES}
    for job in jobs:
        for static in job["static_configs"]:
            module = static["labels"]["__param_module"]
            assert module in found, f"{job['job_name']}: {module}"
            [target] = static["targets"]
            assert re.fullmatch(r"http://[^/]+/\S*", target), target
            if static["labels"]["probe"] == "generation":
                assert found[module]["http"]["method"] == "POST"


SERIES_RE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>.*)\}$")
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def test_promtool_probe_series_carry_the_dev_probe_jobs_labels():
    """tests/promtool/probes_test.yaml's probe series: exactly the labels the dev probe jobs store."""
    cfg = stack_config("dev")
    stored = []
    for job in _probe_jobs(cfg):
        for static in job["static_configs"]:
            labels = {k: v for k, v in static["labels"].items() if not k.startswith("__")}
            stored.append({**labels, "job": job["job_name"], "env": cfg.env})
    with open(PROMTOOL_PROBES_TEST) as fh:
        doc = yaml.safe_load(fh)
    seen = 0
    for group in doc["tests"]:
        for series in group.get("input_series") or []:
            m = SERIES_RE.match(series["series"])
            if m["name"] in probes.raw_metrics():
                seen += 1
                labels = dict(LABEL_RE.findall(m["labels"]))
                assert labels in stored, f"{group['name']}: {labels}"
    assert seen
