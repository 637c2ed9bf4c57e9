"""Bad config fails up front with one clear message per key, and nothing is registered; good config
stays good.

The bad-config corpus is tests/bad_configs.yaml (its top comment explains the format); the bulky
cases (200 kB values, 100,000-entry lists, more than 50 problems) are generated here.
"""

import dataclasses
import json
import os
import re

import pulumi
import pytest
import yaml

from llmstack import config as cfgmod
from tools import render as render_tool
from tools.stacks import stack_config, stack_values
from tests.harness import Recorder, run_stack, stack_config_values

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bad_configs.yaml")
with open(CORPUS, encoding="utf-8") as _fh:
    BAD_CONFIGS = yaml.safe_load(_fh)

CASE_FIELDS = {"name", "env", "set", "secret", "plaintext", "expect", "xfail"}
KNOB_KEYS = {k.key for k in cfgmod.knobs()}
HEADER = "invalid stack configuration:\n"


def _fragments(case) -> list:
    return [case["expect"]] if isinstance(case["expect"], str) else list(case["expect"])


def _config_value(value):
    """A corpus value as Pulumi hands it to the program: arrays as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _case_keys(case) -> set:
    return {key for field_name in ("set", "secret", "plaintext") for key in (case.get(field_name) or {})}


def _problem_keys(message: str) -> list:
    """The key(s) each problem line of a ConfigError message is about, in order."""
    found = []
    for line in message.splitlines()[1:]:
        if re.fullmatch(r"  \.\.\. and [0-9]+ more problem\(s\)", line):
            continue
        assert line.startswith("  - "), f"not a problem line: {line!r}"
        # A problem inside a structured value names its place: prometheusRemoteWrite[1].url is about prometheusRemoteWrite.
        found.append({re.sub(r"\[[0-9]+\].*", "", k) for k in line[4:].split(": ", 1)[0].split(", ")})
    return found


@pytest.fixture
def refused(monkeypatch):
    """Run the program, expect it to refuse its config cleanly, and return the message."""
    recorders = []
    original_init = Recorder.__init__

    def tracking_init(self, *a, **kw):
        original_init(self, *a, **kw)
        recorders.append(self)

    monkeypatch.setattr(Recorder, "__init__", tracking_init)

    def run(env, overrides=None, **kw) -> str:
        recorders.clear()
        with pytest.raises(pulumi.RunError) as err:
            run_stack(env, overrides, **kw)
        message = str(err.value)
        assert message.startswith(HEADER)
        assert "Traceback" not in message
        assert recorders and all(r.resources == [] for r in recorders), "a resource was registered despite invalid config"
        return message

    return run


# --- the corpus -----------------------------------------------------------------------------------


def test_the_corpus_has_at_least_100_cases():
    assert len(BAD_CONFIGS) >= 100


def test_the_corpus_is_well_formed():
    names = [case["name"] for case in BAD_CONFIGS]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in BAD_CONFIGS:
        name = case["name"]
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{2,60}", name), name
        assert set(case) <= CASE_FIELDS, f"{name}: unknown fields {set(case) - CASE_FIELDS}"
        assert case["env"] in ("dev", "prod"), name
        assert _case_keys(case), f"{name}: sets nothing"
        for key, value in (case.get("set") or {}).items():
            # Quoted strings only: YAML would read off, 0.10 or 010 as something else.
            assert value is None or isinstance(value, str) or (isinstance(value, list) and all(isinstance(v, str) for v in value)), f"{name}: {key}"
        for field_name in ("secret", "plaintext"):
            for key, value in (case.get(field_name) or {}).items():
                assert isinstance(value, (str, list)), f"{name}: {field_name} {key}"
        fragments = _fragments(case)
        assert fragments, f"{name}: expects nothing"
        for fragment in fragments:
            # Every fragment names the key it is about, as the message does: "key: ..." or "key, key: ...".
            head = re.match(r"[A-Za-z0-9_]+", fragment)
            assert head and head[0] in KNOB_KEYS | _case_keys(case), f"{name}: {fragment!r} does not start with a config key"
        if "xfail" in case:
            assert isinstance(case["xfail"], str) and case["xfail"].strip(), f"{name}: an xfail needs a reason"


def _corpus_params():
    for case in BAD_CONFIGS:
        marks = [pytest.mark.xfail(strict=True, reason=case["xfail"])] if "xfail" in case else []
        yield pytest.param(case, id=case["name"], marks=marks)


@pytest.mark.parametrize("case", list(_corpus_params()))
def test_bad_config_fails_before_any_resource(case, refused):
    message = refused(
        case["env"],
        case.get("set"),
        secrets={k: _config_value(v) for k, v in (case.get("secret") or {}).items()},
        plaintext={k: _config_value(v) for k, v in (case.get("plaintext") or {}).items()},
    )
    for fragment in _fragments(case):
        assert fragment in message
    # Nothing unexpected: every problem is about a key the case sets or expects.
    about = _case_keys(case) | {key for key in KNOB_KEYS if any(key in f for f in _fragments(case))}
    for keys in _problem_keys(message):
        assert keys & about, f"unexpected problem about {keys} in:\n{message}"


# --- generated cases: bulky values, many problems ---------------------------------------------------

BIG = 200_000


@pytest.mark.parametrize(
    "env,key,value",
    [
        ("dev", "mistralModelId", "a" * BIG),
        ("dev", "mistralModelId", "Qwen/" + "q" * BIG),
        ("dev", "prometheusImage", "prom/prometheus:" + "v" * BIG),
        ("dev", "runbookBaseUrl", "https://example.com/" + " " * BIG),
        ("dev", "scrapeInterval", "1" * BIG + "s"),
        ("dev", "mistralVersion", "0.9." + "2" * BIG),
        ("prod", "alertSlackChannel", "#" + "L" * BIG),
        ("prod", "mistralGpuDeviceIds", json.dumps(["GPU-" + "f" * BIG])),
        ("dev", "alertEmailAddresses", json.dumps(["x" * BIG])),
        ("dev", "ollamaTargets", "x" * BIG),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 40 else None,
)
def test_a_huge_value_is_quoted_back_cut_short(env, key, value, refused):
    message = refused(env, {key: value})
    assert f"  - {key}: " in message
    assert "characters)" in message
    assert len(message) < 1000


@pytest.mark.parametrize(
    "key,value",
    [("mistralPort", "1" * 5000), ("mistralMemoryLimitMb", "9" * BIG), ("prometheusRetentionSize", "1" * 5000 + "GB")],
    ids=["port", "memory", "size"],
)
def test_a_huge_number_is_refused_cleanly(key, value, refused):
    message = refused("dev", {key: value})
    assert f"  - {key}: got " in message
    assert len(message) < 1000


def test_deeply_nested_brackets_in_a_list_key_are_refused_cleanly(refused):
    message = refused("dev", {"ollamaTargets": "[" * BIG})
    assert "  - ollamaTargets: got '[[[" in message
    assert len(message) < 1000


def test_a_huge_unknown_key_is_cut_short(refused):
    message = refused("dev", {"x" * BIG: "1"})
    assert f"  - {'x' * 60}: is not a setting of this stack" in message
    assert len(message) < 1000


@pytest.mark.parametrize("entries", [["not-an-address"] * 100_000, [f"user{i}" for i in range(100_000)]], ids=["same", "distinct"])
def test_100000_bad_list_entries_give_a_short_message_with_a_count(entries, refused):
    message = refused("dev", {"alertEmailAddresses": entries})
    assert len(message) < 10_000
    assert "alertEmailAddresses: 99995 more items are invalid the same way" in message
    items = [line for line in message.splitlines() if line.startswith("  - alertEmailAddresses: item ")]
    assert 1 <= len(items) <= 5
    assert len(items) == len(set(items)), "a problem is listed more than once"
    if len(set(entries)) == 1:
        assert items == ["  - alertEmailAddresses: item 'not-an-address': expected an e-mail address"]


def test_100000_duplicated_gpu_ids_are_refused_with_one_short_line():
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.load_defaults("prod", mistralImageFlavour="cuda", mistralGpuDeviceIds=json.dumps([str(i % 100) for i in range(100_000)]))
    message = str(err.value)
    assert "mistralGpuDeviceIds: lists '0', '1'" in message and "more than once (and 95 other entries)" in message
    assert len(message) < 1000


def test_more_than_50_problems_are_capped_with_a_count(refused):
    overrides = {f"bogusSetting{i:02d}": "1" for i in range(60)}
    message = refused("dev", overrides)
    lines = message.splitlines()[1:]
    assert len(lines) == cfgmod.MAX_PROBLEMS + 1
    assert lines[-1] == "  ... and 10 more problem(s)"
    assert len(message) < 10_000


def test_distinct_problems_of_every_kind_are_capped_too(refused):
    """Not only unknown keys: a config wrong everywhere still gives 50 lines and a count."""
    percents = [k.key for k in cfgmod.knobs() if k.kind == cfgmod.PERCENT]
    overrides = {key: "100" for key in percents}
    overrides.update({f"typoSetting{i:02d}": "1" for i in range(45)})
    message = refused("dev", overrides)
    assert message.splitlines()[-1] == f"  ... and {len(percents) + 45 - cfgmod.MAX_PROBLEMS} more problem(s)"


# --- stack names (the env label) ------------------------------------------------------------------


@pytest.mark.parametrize("stack", ["my env", "prod$", "dev/eu", "pr\u00f6d", "-dev", "d" * 64, "dev\n"])
def test_a_stack_name_that_cannot_be_a_label_is_refused(stack, refused):
    message = refused(stack, base=stack_config_values("dev"))
    assert f"stack name {cfgmod.shown(stack)}: expected letters, digits" in message
    with pytest.raises(cfgmod.ConfigError):
        cfgmod.load(cfgmod.DictSource(stack_values("dev")), stack)


def test_another_valid_stack_name_runs():
    recorder = run_stack("staging-eu.1", base=stack_config_values("dev"))
    assert recorder.resources


# --- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["hfToken", "alertSlackUrl", "alertPagerdutyKey", "alertWebhookUrl", "alertWebhookPassword", "grafanaAuth"])
def test_credentials_in_plaintext_are_refused(key, refused):
    message = refused("dev", plaintext={key: "s3cr3t-value"})
    assert f"{key}: is stored in plaintext" in message
    assert "s3cr3t-value" not in message


def test_a_secret_non_credential_is_refused_without_showing_its_value(refused):
    message = refused("dev", secrets={"alertWebhookUser": "very-private-user"})
    assert "alertWebhookUser: is stored as a secret, but it is not a credential" in message
    assert "very-private-user" not in message


def test_a_required_key_stored_as_a_secret_is_reported_once(refused):
    message = refused("dev", secrets={"mistralModelId": "Qwen/Qwen3-0.6B"})
    assert [keys for keys in _problem_keys(message)] == [{"mistralModelId"}]


def test_a_password_in_a_url_is_not_quoted_back(refused):
    message = refused("dev", {"grafanaUrl": "https://admin:hunter2-s3cr3t@grafana.example.com"})
    assert "grafanaUrl: " in message and "own secret key" in message
    assert "hunter2-s3cr3t" not in message


def test_all_problems_are_reported_at_once(refused):
    message = refused("dev", {"mistralPort": "0", "mistralIsq": "bogus", "scrapeInterval": "x"})
    for key in ("mistralPort", "mistralIsq", "scrapeInterval"):
        assert f"  - {key}:" in message


# --- valid config stays valid ---------------------------------------------------------------------

DIGEST = "0123456789abcdef" * 4
UUIDS = ["GPU-8f3c1a2b-0c1d-4e5f-8a9b-0c1d2e3f4a5b", "GPU-00000000-1111-2222-3333-444444444444"]

VALID_VARIANTS = [
    ("dev", {"prometheusImage": f"prom/prometheus@sha256:{DIGEST}"}),
    ("dev", {"grafanaImage": f"grafana/grafana:12.2.1@sha256:{DIGEST}"}),
    ("dev", {"cadvisorImage": "registry.example.com:5000/mirror/cadvisor:v0.53.0"}),
    ("dev", {"mistralModelId": "/data/models/my-model"}),
    ("dev", {"mistralModelId": "mistralai/Mistral-7B-Instruct-v0.3"}),
    ("prod", {"mistralGpuDeviceIds": json.dumps(UUIDS)}),
    ("prod", {"mistralGpuDeviceIds": json.dumps(["0", "1", "15"])}),
    ("dev", {"scrapeInterval": "10s", "evaluationInterval": "10s", "scrapeTimeout": "10s"}),
    ("dev", {"scrapeInterval": "1s", "scrapeTimeout": "1s"}),
    ("dev", {"prometheusRetentionTime": "1y2w"}),
    ("dev", {"prometheusRetentionTime": "1d", "prometheusRetentionSize": "512MB"}),
    ("prod", {"prometheusRetentionTime": "10y", "prometheusRetentionSize": "100TB"}),
    ("dev", {"alertQueueSaturationFor": "1h", "alertGroupInterval": "1h", "alertRepeatInterval": "1h"}),
    ("dev", {"alertQueueSaturationFor": "1m30s", "alertGroupWait": "1s", "alertRepeatInterval": "7d"}),
    ("dev", {"mistralVersion": "0.10.0"}),
    ("dev", {"mistralVersion": "1.0.0"}),
    ("dev", {"alertErrorRatioWarningPercent": "1", "alertErrorRatioCriticalPercent": "99"}),
    ("dev", {"alertLatencyP95WarningSeconds": "1198", "alertLatencyP95CriticalSeconds": "1199", "alertTtftP95WarningSeconds": "2559"}),
    ("dev", {"mistralPort": "1", "mistralPublishPort": "65535", "mistralMaxSeqs": "4096"}),
    ("dev", {"mistralMemoryLimitMb": "2048", "mistralMaxSeqs": "1", "alertErrorCriticalMinFailures": "1"}),
    ("dev", {"mistralHost": "::"}),
    ("dev", {"mistralPublishAddress": "0.0.0.0", "allowPublicBind": "true"}),
    ("dev", {"prometheusPublishAddress": "10.0.0.5", "prometheusPublishPort": "1234", "allowPublicBind": "true"}),
    ("dev", {"grafanaUrl": "https://grafana.example.com", "grafanaPublishPort": "1234"}),
    ("dev", {"ollamaTargets": json.dumps(["norskhelsenett@ollama-exporter:8000", "http@10.0.0.7:11434/metrics"])}),
    ("dev", {"alertEmailAddresses": json.dumps(["a@example.com", "first.last+llm@sub.example.co.uk"])}),
    ("prod", {"alertSlackChannel": "@oncall", "alertWebhookUser": "alertmanager@example.com", "grafanaAdminUser": "ops.admin"}),
    ("prod", {"dcgmExporterEnabled": "false", "retainDataOnDelete": "false", "mistralPagedAttn": "auto", "mistralIsq": "afq8"}),
    ("dev", {"runbookBaseUrl": "http://wiki.internal:8080/llm/runbooks"}),
]


def test_committed_stack_files_are_valid():
    assert stack_config("dev").mistral.image_flavour == "cpu"
    assert stack_config("prod").mistral.uses_gpu
    assert stack_config("prod").retain_data_on_delete


def test_the_defaults_are_valid():
    cfg = cfgmod.load_defaults()
    assert cfg.mistral.model_id == "Qwen/Qwen3-0.6B"
    assert cfgmod.load_defaults("prod").retain_data_on_delete


@pytest.mark.parametrize("env,overrides", VALID_VARIANTS, ids=lambda v: v if isinstance(v, str) else ",".join(v))
def test_realistic_valid_variants_are_accepted(env, overrides):
    secrets = {"grafanaAuth": "glsa_token"} if "grafanaUrl" in overrides else {}
    values = {**stack_values(env), **overrides, **secrets}
    cfg = cfgmod.load(cfgmod.DictSource(values, frozenset(secrets)), env)
    assert cfg.env == env


def test_valid_variants_run_the_whole_program():
    recorder = run_stack(
        "prod",
        {
            "prometheusImage": f"prom/prometheus@sha256:{DIGEST}",
            "mistralModelId": "/data/models/my-model",
            "mistralGpuDeviceIds": UUIDS,
            "scrapeInterval": "10s",
            "prometheusRetentionTime": "1y2w",
        },
    )
    assert recorder.resources


# --- the knob table and the project schema ----------------------------------------------------------


def test_every_knob_is_declared_in_pulumi_yaml_with_type_default_and_description():
    project = yaml.safe_load(render_tool.project_yaml())
    schema = project["config"]
    knobs = {k.key: k for k in cfgmod.knobs()}
    assert set(schema) == set(knobs)
    for key, entry in schema.items():
        assert entry["description"] == knobs[key].description
        assert entry.get("type") == knobs[key].kind.schema_type  # None: untyped, a list of objects
        if knobs[key].required:
            assert "default" not in entry  # required: pulumi refuses to run without it
        else:
            assert entry["default"] == knobs[key].default


def test_every_knob_reaches_the_typed_config():
    """A knob the loader reads but no field holds would be silently dropped."""
    cfg = cfgmod.load_defaults()
    fields = []

    def walk(obj):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if "knob" in f.metadata:
                fields.append(f.metadata["knob"].key)
            elif dataclasses.is_dataclass(value):
                walk(value)

    walk(cfg)
    assert sorted(fields) == sorted(k.key for k in cfgmod.knobs())
