"""The fake exporters serve the names, types, labels, label values and buckets their upstreams do,
and their scenarios have the shapes they claim. Everything is read back the way Prometheus would:
the served text parsed by prometheus_client. Every fake binds 127.0.0.1 on an ephemeral port;
nothing else is contacted."""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.error
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from llmstack import config as cfgmod
from llmstack import probes

from tests.integration.fakes import FakeCadvisor, FakeDcgm, FakeMistral, FakeOllamaMetrics
from tests.integration.fakes.mistral import NO_HELP
from tests.integration.fakes.mistral import SCENARIOS as MISTRAL_SCENARIOS

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy


def fetch(url: str):
    try:
        with _OPENER.open(url, timeout=5) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(fake) -> str:
    status, _, body = fetch(fake.url)
    assert status == 200
    return body


def families(text: str) -> dict:
    return {exposed_name(f): f for f in text_string_to_metric_families(text)}


def samples(text: str) -> dict:
    """{(sample name, frozenset(labels)): value}"""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, metric: str, /, **labels) -> float:
    return samples(text).get((metric, frozenset(labels.items())), 0.0)


def buckets(text: str, metric: str, /, **labels) -> list:
    """Cumulative [(le, count)] of one histogram series, in exposition order."""
    out = []
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == metric + "_bucket":
                lab = dict(s.labels)
                le = lab.pop("le")
                if lab == labels:
                    out.append((float(le), s.value))
    return out


def delta(after: list, before: list) -> list:
    b = dict(before)
    return [(le, c - b.get(le, 0.0)) for le, c in after]


def quantile(q: float, cum: list) -> float:
    """Prometheus histogram_quantile over cumulative buckets (last one +Inf)."""
    total = cum[-1][1]
    if total == 0:
        return math.nan
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in cum:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / (c - prev_c)
        prev_le, prev_c = le, c
    return cum[-2][0]


def within(cum: list, below: float, upto: float) -> bool:
    """All observations lie in (below, upto]: bucket le=below is empty, bucket le=upto holds all."""
    c = dict(cum)
    total = cum[-1][1]
    return total > 0 and c[below] == 0 and c[upto] == total


def exposed_name(fam) -> str:
    """The name the exporter registered; the parser drops a counter's _total suffix."""
    return fam.name + "_total" if fam.type == "counter" else fam.name


def types(text: str) -> dict:
    return {exposed_name(f): f.type for f in text_string_to_metric_families(text)}


def helps(text: str) -> dict:
    return {exposed_name(f): f.documentation for f in text_string_to_metric_families(text)}


def upstream_buckets(documented: str) -> list:
    return [float(x) for x in documented.split()] + [math.inf]


def assert_cumulative(text: str) -> None:
    """Every histogram series: bucket counts non-decreasing in le, +Inf == _count."""
    for fam in text_string_to_metric_families(text):
        if fam.type != "histogram":
            continue
        series = {}
        counts = {}
        for s in fam.samples:
            lab = dict(s.labels)
            if s.name.endswith("_bucket"):
                le = lab.pop("le")
                series.setdefault(frozenset(lab.items()), []).append((float(le), s.value))
            elif s.name.endswith("_count"):
                counts[frozenset(lab.items())] = s.value
        for key, bs in series.items():
            les = [le for le, _ in bs]
            assert les == sorted(les) and math.isinf(les[-1]), (fam.name, les)
            vals = [c for _, c in bs]
            assert vals == sorted(vals), (fam.name, vals)
            assert vals[-1] == counts[key], fam.name


def monotonic_samples(text: str) -> dict:
    """Samples that must never go down: counters, histogram buckets/counts/sums of non-negative data."""
    out = {}
    for fam in text_string_to_metric_families(text):
        if fam.type in ("counter", "histogram"):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def assert_monotonic(before: dict, after: dict) -> None:
    for key, v in before.items():
        assert key in after, f"series vanished: {key}"
        assert after[key] >= v - 1e-9, f"{key} went down: {v} -> {after[key]}"


@pytest.fixture
def mistral():
    m = FakeMistral()
    m.start()
    yield m
    m.close()


# ------------------------------------------------------------------------------------------------
# every fake


def test_no_created_series():
    """Custom metric families add no _created series (prometheus_client's own Counter would);
    no upstream exporter serves them."""
    for fake in (FakeMistral(), FakeOllamaMetrics("norskhelsenett"), FakeOllamaMetrics("http"), FakeCadvisor(),
                 FakeDcgm()):
        for scenario in fake.SCENARIOS:
            fake.set_scenario(scenario)
            fake.advance(2)
        text = fake.exposition()
        assert text and "_created" not in text, type(fake).__name__


def test_loopback_only():
    with pytest.raises(ValueError):
        FakeMistral(host="0.0.0.0")


# ------------------------------------------------------------------------------------------------
# mistral.rs

HTTP4 = {"method", "path", "model", "status"}
HTTP3 = {"method", "path", "model"}
MISTRAL_EXPECTED = {  # name: (type, label names)
    "http_requests_total": ("counter", HTTP4),
    "http_request_duration_seconds": ("histogram", HTTP4),
    "http_requests_in_flight": ("gauge", HTTP3),
    "http_request_body_bytes": ("histogram", HTTP3),
    "mistralrs_time_to_first_token_seconds": ("histogram", HTTP4),
    "mistralrs_inter_token_latency_seconds": ("histogram", HTTP4),
    "mistralrs_tokens_processed_total": ("counter", set()),
    "mistralrs_prefix_cache_lookups_total": ("counter", set()),
    "mistralrs_prefix_cache_hits_total": ("counter", set()),
    "mistralrs_prefix_cache_evictions_total": ("counter", set()),
    "mistralrs_paged_preemptions_total": ("counter", set()),
    "mistralrs_sequences_completed_total": ("counter", {"reason"}),
    "mistralrs_sequences_running": ("gauge", set()),
    "mistralrs_sequences_waiting": ("gauge", set()),
    "mistralrs_sequences_capacity": ("gauge", set()),
    "mistralrs_requests_pending_admission": ("gauge", set()),
    "mistralrs_kv_cache_blocks_used": ("gauge", set()),
    "mistralrs_kv_cache_blocks_total": ("gauge", set()),
}
MISTRAL_BUCKETS = {  # mistralrs-server-core/src/metrics.rs, as the README lists them
    "http_request_duration_seconds": "0.001 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 30 60 120 300 600 1200",
    "http_request_body_bytes": "128 512 1024 4096 16384 65536 262144 1048576 4194304 16777216 52428800 104857600",
    "mistralrs_time_to_first_token_seconds": "0.001 0.005 0.01 0.02 0.04 0.06 0.08 0.1 0.25 0.5 0.75 1 2.5 5 7.5 10 20 40 80 160 640 2560",
    "mistralrs_inter_token_latency_seconds": "0.01 0.025 0.05 0.075 0.1 0.15 0.2 0.3 0.4 0.5 0.75 1 2.5 5 7.5 10 20 40 80",
}
CHAT = {"method": "POST", "path": "/v1/chat/completions", "model": "Qwen/Qwen3-4B"}
OK = dict(CHAT, status="200")
ERR = dict(CHAT, status="500")


def _exercise_all(m: FakeMistral) -> str:
    for sc in ("healthy", "error_burst", "kv_cache_exhaustion"):
        m.set_scenario(sc)
        m.advance(2)
    return scrape(m)


def assert_labels_and_buckets(text: str, expected: dict, buckets_text: dict) -> None:
    """Every sample has exactly the expected label names (plus le on buckets), and every histogram
    series has exactly the documented buckets."""
    for fam in text_string_to_metric_families(text):
        name = exposed_name(fam)
        labelnames = expected[name][1]
        for s in fam.samples:
            assert set(s.labels) - ({"le"} if s.name.endswith("_bucket") else set()) == labelnames, s.name
        if fam.type == "histogram":
            series = {frozenset((k, v) for k, v in s.labels.items() if k != "le") for s in fam.samples}
            for labels in series:
                bounds = [le for le, _ in buckets(text, name, **dict(labels))]
                assert bounds == upstream_buckets(buckets_text[name]), (name, labels)


def test_mistral_names_types_labels_buckets(mistral):
    text = _exercise_all(mistral)
    assert types(text) == {k: v[0] for k, v in MISTRAL_EXPECTED.items()}
    assert set(helps(text).values()) == {NO_HELP}  # upstream prints no HELP; prometheus_client needs one
    assert_labels_and_buckets(text, MISTRAL_EXPECTED, MISTRAL_BUCKETS)
    # label values as metrics.rs and sequence.rs set them
    assert value(text, "http_requests_total", **OK) > 0 and value(text, "http_requests_total", **ERR) > 0
    reasons = {s.labels["reason"] for s in families(text)["mistralrs_sequences_completed_total"].samples}
    assert reasons == {"stop", "error"} and reasons <= set(FakeMistral.COMPLETION_REASONS)
    assert_cumulative(text)


def test_mistral_http_endpoints(mistral):
    status, ctype, body = fetch(f"http://127.0.0.1:{mistral.port}/health")
    assert (status, body) == (200, "OK") and ctype.startswith("text/plain")
    status, ctype, body = fetch(f"http://127.0.0.1:{mistral.port}/v1/models")
    assert status == 200 and ctype == "application/json"
    models = json.loads(body)
    assert models["object"] == "list"
    assert [d["id"] for d in models["data"]] == ["default", "Qwen/Qwen3-4B"]
    assert models["data"][1]["status"] == "loaded" and "status" not in models["data"][0]
    assert mistral.url == f"http://127.0.0.1:{mistral.port}/metrics"
    # housekeeping routes are not counted
    assert "http_requests_total" not in scrape(mistral)
    mistral.metrics_enabled = False
    assert fetch(mistral.url)[0] == 503


# POST /v1/completions, as the blackbox exporter's generation probe sends it

COMPLETIONS = {"method": "POST", "path": "/v1/completions"}  # plus model, status


def post(url: str, body, timeout: float = 5):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type"), resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def _probe_module(model: str) -> tuple[dict, re.Pattern]:
    """The body and the expected-answer regexp of the rendered mistral.rs generation probe."""
    cfg = cfgmod.load_defaults("dev", mistralModelId=model)
    http = yaml.safe_load(probes.render_blackbox_yml(cfg))["modules"]["mistralrs_generation"]["http"]
    [pattern] = http["fail_if_body_not_matches_regexp"]
    return json.loads(http["body"]), re.compile(pattern)


def completions_url(m: FakeMistral) -> str:
    return f"http://127.0.0.1:{m.port}/v1/completions"


def test_mistral_completion_answers_the_probe_like_mistralrs(mistral):
    body, answer = _probe_module(mistral.model)
    status, ctype, text = post(completions_url(mistral), body)
    assert (status, ctype) == (200, "application/json")
    assert answer.search(text), text
    doc = json.loads(text)
    # mistralrs-core response.rs CompletionResponse, as pipeline/sampling.rs fills it
    assert list(doc) == ["id", "choices", "created", "model", "system_fingerprint", "object", "usage"]
    assert doc["object"] == "text_completion" and doc["model"] == mistral.model and doc["system_fingerprint"] == "local"
    assert doc["choices"] == [{"finish_reason": "length", "index": 0, "text": "pong", "logprobs": None}]
    assert doc["usage"]["completion_tokens"] == 1
    assert doc["usage"]["total_tokens"] == doc["usage"]["prompt_tokens"] + 1
    assert abs(doc["created"] - time.time()) < 60
    # counted like any /v1 request (metrics.rs observe_http), and by the engine
    text = scrape(mistral)
    assert value(text, "http_requests_total", **COMPLETIONS, model=mistral.model, status="200") == 1
    assert value(text, "http_request_duration_seconds_count", **COMPLETIONS, model=mistral.model, status="200") == 1
    assert value(text, "http_request_body_bytes_count", **COMPLETIONS, model=mistral.model) == 1
    assert value(text, "http_request_body_bytes_sum", **COMPLETIONS, model=mistral.model) == len(json.dumps(body))
    assert value(text, "http_requests_in_flight", **COMPLETIONS, model=mistral.model) == 0
    assert value(text, "mistralrs_sequences_completed_total", reason="length") == 1
    assert value(text, "mistralrs_tokens_processed_total") == 2
    assert mistral.completions == 1
    assert_labels_and_buckets(text, MISTRAL_EXPECTED, MISTRAL_BUCKETS)
    # a second request gets the next sequence id
    assert json.loads(post(completions_url(mistral), body)[2])["id"] != doc["id"]


def test_mistral_completion_refusals(mistral):
    url = completions_url(mistral)
    status, ctype, text = post(url, {"model": "other/model", "prompt": "ping"})
    assert status == 500 and ctype == "application/json" and "not available" in json.loads(text)["message"]
    assert post(url, {"model": "default", "prompt": "ping"})[0] == 200  # "default": the loaded model
    assert post(url, {"prompt": "ping", "max_tokens": 0})[0] == 500
    assert post(url, b"{not json")[0] == 400
    assert post(url, {"model": mistral.model})[0] == 422  # no prompt
    assert fetch(url)[0] == 405  # GET on a POST route
    assert post(mistral.url, {})[0] == 405  # POST on /metrics
    text = scrape(mistral)
    assert value(text, "http_requests_total", **COMPLETIONS, model="unknown", status="500") == 1
    assert value(text, "http_requests_total", **COMPLETIONS, model="unknown", status="400") == 1
    assert value(text, "http_requests_total", **COMPLETIONS, model=mistral.model, status="200") == 1
    with pytest.raises(ValueError):
        mistral.set_generation("slow")


def test_mistral_generation_fails_while_metrics_and_health_answer(mistral):
    body, answer = _probe_module(mistral.model)
    mistral.set_generation("fail")
    assert mistral.generation == "fail"
    status, ctype, text = post(completions_url(mistral), body)
    assert (status, ctype) == (500, "application/json")
    assert not answer.search(text) and json.loads(text) == {"message": FakeMistral.GENERATION_ERROR}
    status, _, health = fetch(f"http://127.0.0.1:{mistral.port}/health")
    assert (status, health) == (200, "OK")
    metrics = scrape(mistral)
    assert value(metrics, "http_requests_total", **COMPLETIONS, model=mistral.model, status="500") == 1
    assert "reason=\"length\"" not in metrics
    mistral.set_generation("ok")
    assert post(completions_url(mistral), body)[0] == 200


def test_mistral_generation_hangs_while_metrics_and_health_answer(mistral):
    body, answer = _probe_module(mistral.model)
    url = completions_url(mistral)
    mistral.set_generation("hang")
    t = time.monotonic()
    with pytest.raises(OSError):  # urllib's read timeout (socket.timeout / URLError)
        post(url, body, timeout=0.5)
    assert time.monotonic() - t < 3
    # the server still describes itself as healthy, with the hung request in flight
    assert fetch(f"http://127.0.0.1:{mistral.port}/health")[0] == 200
    assert value(scrape(mistral), "http_requests_in_flight", **COMPLETIONS, model=mistral.model) == 1
    # back to "ok": the hung request ends (its client is gone: nothing is written) and is counted
    mistral.set_generation("ok")
    deadline = time.monotonic() + 5
    while mistral.completions < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    text = scrape(mistral)
    assert value(text, "http_requests_in_flight", **COMPLETIONS, model=mistral.model) == 0
    assert value(text, "http_requests_total", **COMPLETIONS, model=mistral.model, status="200") == 1
    status, _, answered = post(url, body)
    assert status == 200 and answer.search(answered)


def test_mistral_hang_is_bounded(mistral):
    body, _ = _probe_module(mistral.model)
    mistral.hang_timeout_s = 0.5
    mistral.set_generation("hang")
    t = time.monotonic()
    status, _, text = post(completions_url(mistral), body, timeout=5)
    assert status == 500 and 0.4 <= time.monotonic() - t < 3
    assert value(scrape(mistral), "http_request_duration_seconds_count", **COMPLETIONS, model=mistral.model, status="500") == 1


def test_mistral_stop_releases_hung_completions():
    m = FakeMistral()
    m.start()
    m.set_generation("hang")
    body, _ = _probe_module(m.model)
    errors = []
    worker = threading.Thread(target=lambda: errors.append(post(completions_url(m), body, timeout=10)[0]), daemon=True)
    worker.start()
    deadline = time.monotonic() + 5
    while not value(m.exposition(), "http_requests_in_flight", **COMPLETIONS, model=m.model) and time.monotonic() < deadline:
        time.sleep(0.02)
    t = time.monotonic()
    m.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and time.monotonic() - t < 5
    assert m.completions == 1


def test_mistral_v092_has_no_capacity_gauge():
    m = FakeMistral(upstream="v0.9.2")
    m.advance(1)
    text = m.exposition()
    assert "mistralrs_sequences_capacity" not in text
    assert "mistralrs_requests_pending_admission" not in text
    assert value(text, "mistralrs_sequences_running") == 4


def test_mistral_counters_monotonic_and_histograms_cumulative(mistral):
    prev = monotonic_samples(scrape(mistral))
    for sc in MISTRAL_SCENARIOS + ("healthy", "error_burst"):
        mistral.set_scenario(sc)
        mistral.advance(3)
        text = scrape(mistral)
        assert_cumulative(text)
        cur = monotonic_samples(text)
        assert_monotonic(prev, cur)
        prev = cur


def _window(m: FakeMistral, scenario: str, seconds: float = 20.0):
    m.set_scenario(scenario)
    m.advance(1)
    before = m.exposition()
    m.advance(seconds)
    return before, m.exposition()


def test_mistral_healthy_shape():
    m = FakeMistral()
    before, after = _window(m, "healthy", 20)
    d = lambda name, **lab: value(after, name, **lab) - value(before, name, **lab)  # noqa: E731
    assert d("http_requests_total", **OK) == pytest.approx(FakeMistral.HEALTHY_RPS * 20, abs=1)
    assert d("http_requests_total", **ERR) == 0
    dur = delta(buckets(after, "http_request_duration_seconds", **OK), buckets(before, "http_request_duration_seconds", **OK))
    assert 0.25 <= quantile(0.5, dur) and quantile(0.95, dur) < 5
    ttft = delta(buckets(after, "mistralrs_time_to_first_token_seconds", **OK),
                 buckets(before, "mistralrs_time_to_first_token_seconds", **OK))
    assert within(ttft, 0.08, 0.5)  # TTFT 0.1-0.5 s
    itl = delta(buckets(after, "mistralrs_inter_token_latency_seconds", **OK),
                buckets(before, "mistralrs_inter_token_latency_seconds", **OK))
    assert within(itl, 0.01, 0.05)  # ITL 0.02-0.05 s
    # one ITL sample per decode step after the first: (50 - 1) per request
    assert d("mistralrs_inter_token_latency_seconds_count", **OK) == 49 * d("http_requests_total", **OK)
    assert d("mistralrs_tokens_processed_total") == pytest.approx(5 * (200 + 50) * 20, rel=0.06)
    hits, lookups = d("mistralrs_prefix_cache_hits_total"), d("mistralrs_prefix_cache_lookups_total")
    assert hits / lookups == pytest.approx(0.5, abs=0.02)
    assert value(after, "mistralrs_sequences_running") == 4
    assert value(after, "mistralrs_sequences_waiting") == 0
    assert value(after, "mistralrs_sequences_capacity") == 16
    kv = value(after, "mistralrs_kv_cache_blocks_used") / value(after, "mistralrs_kv_cache_blocks_total")
    assert kv == pytest.approx(0.30, abs=0.001)
    assert "mistralrs_paged_preemptions_total" not in after
    assert set(s.labels["reason"] for s in families(after)["mistralrs_sequences_completed_total"].samples) == {"stop"}


def test_mistral_latency_regression_moves_mass_to_high_buckets():
    m = FakeMistral()
    h_before, h_after = _window(m, "healthy", 20)
    l_before, l_after = _window(m, "latency_regression", 20)
    name = "http_request_duration_seconds"
    healthy = delta(buckets(h_after, name, **OK), buckets(h_before, name, **OK))
    slow = delta(buckets(l_after, name, **OK), buckets(l_before, name, **OK))
    assert quantile(0.95, healthy) < 5 < 30 < quantile(0.95, slow)
    # mass above le=10: none when healthy, all of it during the regression
    above = lambda cum: cum[-1][1] - dict(cum)[10.0]  # noqa: E731
    assert above(healthy) == 0 and above(slow) == slow[-1][1] > 0
    ttft = delta(buckets(l_after, "mistralrs_time_to_first_token_seconds", **OK),
                 buckets(l_before, "mistralrs_time_to_first_token_seconds", **OK))
    assert within(ttft, 2.5, 20)  # TTFT 5-20 s
    itl = delta(buckets(l_after, "mistralrs_inter_token_latency_seconds", **OK),
                buckets(l_before, "mistralrs_inter_token_latency_seconds", **OK))
    assert within(itl, 0.2, 1.0)  # ITL 0.3-1 s


def test_mistral_error_burst_shape():
    m = FakeMistral()
    before, after = _window(m, "error_burst", 20)
    d = lambda name, **lab: value(after, name, **lab) - value(before, name, **lab)  # noqa: E731
    ok, err = d("http_requests_total", **OK), d("http_requests_total", **ERR)
    assert ok + err == pytest.approx(100, abs=1)
    assert err / (ok + err) == pytest.approx(FakeMistral.ERROR_BURST_RATIO, abs=0.02)
    assert d("mistralrs_sequences_completed_total", reason="error") == err
    # errors are plain 500s, not streams: no TTFT/ITL series for status 500
    assert not buckets(after, "mistralrs_time_to_first_token_seconds", **ERR)
    assert buckets(after, "http_request_duration_seconds", **ERR)


def test_mistral_queue_saturation_and_kv_exhaustion():
    m = FakeMistral(capacity=16, kv_blocks_total=4096)
    _, text = _window(m, "queue_saturation", 5)
    assert value(text, "mistralrs_sequences_running") == value(text, "mistralrs_sequences_capacity") == 16
    assert value(text, "mistralrs_sequences_waiting") == FakeMistral.QUEUE_SATURATION_WAITING
    dur = buckets(text, "http_request_duration_seconds", **OK)
    assert dict(dur)[2.5] == 0  # nothing faster than 5 s
    before, after = _window(m, "kv_cache_exhaustion", 10)
    used, total = value(after, "mistralrs_kv_cache_blocks_used"), value(after, "mistralrs_kv_cache_blocks_total")
    assert total == 4096 and used / total == pytest.approx(0.99, abs=0.001)
    pre = value(after, "mistralrs_paged_preemptions_total") - value(before, "mistralrs_paged_preemptions_total")
    assert pre == pytest.approx(FakeMistral.KV_EXHAUSTION_PREEMPTIONS_PER_S * 10, abs=1)
    assert value(after, "mistralrs_sequences_waiting") == 3
    assert value(after, "mistralrs_sequences_running") == 10


def test_mistral_idle_shape():
    m = FakeMistral()
    m.advance(5)
    before, after = _window(m, "idle", 10)
    assert value(after, "http_requests_total", **OK) == value(before, "http_requests_total", **OK)
    for g in ("mistralrs_sequences_running", "mistralrs_sequences_waiting", "mistralrs_kv_cache_blocks_used"):
        assert value(after, g) == 0
    assert value(after, "http_requests_in_flight", **CHAT) == 0
    assert value(after, "mistralrs_kv_cache_blocks_total") == 4096
    # a fresh idle process: engine gauges exist, no request series yet
    fresh = FakeMistral()
    fresh.set_scenario("idle")
    text = fresh.exposition()
    assert ("mistralrs_sequences_running", frozenset()) in samples(text) and "http_requests_total" not in text


def test_mistral_stop_start_keeps_counters_restart_resets(mistral):
    mistral.advance(4)
    port = mistral.port
    first = value(scrape(mistral), "http_requests_total", **OK)
    assert first == 20
    mistral.stop()
    with pytest.raises(OSError):
        _OPENER.open(mistral.url, timeout=2)
    mistral.advance(2)  # the process keeps working while the target is unreachable
    mistral.start()
    mistral.start()  # idempotent
    assert mistral.port == port
    assert value(scrape(mistral), "http_requests_total", **OK) == 30
    mistral.restart_process()
    text = scrape(mistral)
    assert "http_requests_total" not in text
    mistral.advance(1)
    assert value(scrape(mistral), "http_requests_total", **OK) == 5


def test_mistral_run_clock_is_bounded():
    m = FakeMistral()
    m.run_clock(interval_s=0.05, max_ticks=4)
    deadline = time.monotonic() + 5
    while value(m.exposition(), "http_requests_total", **OK) < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    m._clock_thread.join(timeout=5)
    assert not m._clock_thread.is_alive()
    total = value(m.exposition(), "http_requests_total", **OK)
    assert total == 1  # 4 ticks * 0.05 s * 5 req/s
    m.run_clock(interval_s=0.05)
    m.stop_clock()
    with pytest.raises(ValueError):
        m.set_scenario("nope")


def test_mistral_is_deterministic():
    a, b = FakeMistral(), FakeMistral()
    for f in (a, b):
        f.set_scenario("latency_regression")
        f.advance(7.5)
    assert a.exposition() == b.exposition()


# ------------------------------------------------------------------------------------------------
# Ollama

NORSK_EXPECTED = {  # name: (type, label names, HELP)
    "ollama_prompt_tokens_total": ("counter", {"model"}, "Total number of prompt tokens sent to the model"),
    "ollama_generated_tokens_total": ("counter", {"model"}, "Total number of tokens generated by the model"),
    "ollama_request_duration_seconds": ("histogram", {"endpoint", "model"}, "Duration of Ollama requests in seconds"),
    "ollama_time_per_token_seconds": ("histogram", {"model"}, "Time per generated token (seconds per token)"),
    "ollama_loaded_models": ("gauge", set(), "Number of models currently loaded in memory in Ollama"),
    "ollama_model_loaded": ("gauge", {"model"}, "Indicator (1/0) if a model is loaded in memory"),
    "ollama_model_ram_mb": ("gauge", {"model"}, "RAM usage in megabytes for each loaded model"),
}
NORSK_BUCKETS = {  # NorskHelsenett/ollama-metrics main.go
    "ollama_request_duration_seconds": "0.1 0.5 1 2 5 10 30 60",
    "ollama_time_per_token_seconds": "0.01 0.05 0.1 0.2 0.5 1 2",
}
GO_RUNTIME = {  # the subset of client_golang's default registry the fake serves: name -> (type, label names)
    "go_goroutines": ("gauge", set()),
    "go_threads": ("gauge", set()),
    "process_cpu_seconds_total": ("counter", set()),
    "process_resident_memory_bytes": ("gauge", set()),
    "process_start_time_seconds": ("gauge", set()),
    "promhttp_metric_handler_requests_in_flight": ("gauge", set()),
    "promhttp_metric_handler_requests_total": ("counter", {"code"}),
}


def test_ollama_norskhelsenett_exact():
    o = FakeOllamaMetrics("norskhelsenett", model="llama3.2:3b")
    o.start()
    try:
        first = scrape(o)
        assert value(first, "ollama_loaded_models") == 0 and "ollama_prompt_tokens_total" not in first
        o.advance(4)
        text = scrape(o)
    finally:
        o.close()
    assert types(text) == {name: v[0] for name, v in {**NORSK_EXPECTED, **GO_RUNTIME}.items()}
    assert {name: h for name, h in helps(text).items() if name.startswith("ollama_")} == {
        name: v[2] for name, v in NORSK_EXPECTED.items()}
    assert_labels_and_buckets(text, {**NORSK_EXPECTED, **GO_RUNTIME}, NORSK_BUCKETS)
    assert value(text, "ollama_request_duration_seconds_count", endpoint="chat", model="llama3.2:3b") == 20
    assert value(text, "ollama_prompt_tokens_total", model="llama3.2:3b") == 20 * 200
    assert value(text, "ollama_generated_tokens_total", model="llama3.2:3b") == 20 * 50
    assert value(text, "ollama_model_loaded", model="llama3.2:3b") == 1
    assert value(text, "ollama_model_ram_mb", model="llama3.2:3b") == 3200
    assert value(text, "promhttp_metric_handler_requests_total", code="200") == 1
    assert value(text, "promhttp_metric_handler_requests_in_flight") == 1
    assert {s.labels["code"] for s in families(text)["promhttp_metric_handler_requests_total"].samples} == {"200", "500", "503"}
    assert_cumulative(text)
    # ensureModelTag
    assert FakeOllamaMetrics(model="llama3").model == "llama3:latest"


def test_ollama_norskhelsenett_scenarios():
    o = FakeOllamaMetrics("norskhelsenett")
    o.advance(1)
    dur = "ollama_request_duration_seconds"
    lab = {"endpoint": "chat", "model": "llama3.2:3b"}
    shots = {}
    prev = monotonic_samples(o.exposition())
    for sc in ("healthy", "latency_regression", "error_burst", "idle"):
        o.set_scenario(sc)
        before = o.exposition()
        o.advance(20)
        after = o.exposition()
        assert_monotonic(prev, monotonic_samples(after))
        prev = monotonic_samples(after)
        shots[sc] = delta(buckets(after, dur, **lab), buckets(before, dur, **lab))
    assert shots["healthy"][-1][1] == 100 and quantile(0.95, shots["healthy"]) < 5
    assert quantile(0.95, shots["latency_regression"]) > 30
    # the exporter has no error label: an error burst is only missing observations
    assert shots["error_burst"][-1][1] == pytest.approx(70, abs=1)
    assert shots["idle"][-1][1] == 0
    assert "error_burst" in FakeOllamaMetrics.NORSKHELSENETT_CANNOT_EXPRESS
    assert 'status="' not in o.exposition()


HTTP_FLAVOUR_EXPECTED = {
    "ollama_http_requests_total": ("counter", {"method", "path", "status", "model"}),
    "ollama_http_request_duration_seconds": ("histogram", {"method", "path", "status", "model"}),
}


def test_ollama_http_flavour():
    o = FakeOllamaMetrics("http")
    o.start()
    try:
        before = scrape(o)
        o.set_scenario("error_burst")
        o.advance(20)
        text = scrape(o)
    finally:
        o.close()
    assert before == ""  # no request yet, so no series and no HELP/TYPE lines either
    assert types(text) == {name: v[0] for name, v in HTTP_FLAVOUR_EXPECTED.items()}
    # the same buckets as mistral.rs's http_request_duration_seconds
    assert_labels_and_buckets(text, HTTP_FLAVOUR_EXPECTED,
                              {"ollama_http_request_duration_seconds": MISTRAL_BUCKETS["http_request_duration_seconds"]})
    ok = value(text, "ollama_http_requests_total", method="POST", path="/api/chat", status="200", model="llama3.2:3b")
    err = value(text, "ollama_http_requests_total", method="POST", path="/api/chat", status="500", model="llama3.2:3b")
    assert ok + err == 100 and err == 30
    assert_cumulative(text)
    o.set_scenario("latency_regression")
    b = o.exposition()
    o.advance(20)
    lab = dict(method="POST", path="/api/chat", status="200", model="llama3.2:3b")
    slow = delta(buckets(o.exposition(), "ollama_http_request_duration_seconds", **lab),
                 buckets(b, "ollama_http_request_duration_seconds", **lab))
    assert quantile(0.95, slow) > 30
    assert FakeOllamaMetrics.FLAVOURS == ("norskhelsenett", "http")


# ------------------------------------------------------------------------------------------------
# cAdvisor

CADVISOR_EXPECTED = {
    "container_cpu_usage_seconds_total": ("counter", "Cumulative cpu time consumed in seconds."),
    "container_last_seen": ("gauge", "Last time a container was seen by the exporter"),
    "container_memory_usage_bytes": ("gauge", "Current memory usage in bytes, including all memory regardless of when it was accessed"),
    "container_memory_working_set_bytes": ("gauge", "Current working set in bytes."),
    "container_scrape_error": ("gauge", "1 if there was an error while getting container metrics, 0 otherwise"),
    "container_spec_memory_limit_bytes": ("gauge", "Memory limit for the container."),
    "container_start_time_seconds": ("gauge", "Start time of the container since unix epoch in seconds."),
}


CADVISOR_RUNTIME = ("go_goroutines", "go_threads", "process_cpu_seconds_total", "process_resident_memory_bytes",
                    "process_start_time_seconds")
# The machine collector (cadvisor v0.53.0 metrics/prometheus_machine.go): the one machine family served.
MACHINE_MEMORY = ("machine_memory_bytes", "gauge", "Amount of memory installed on the machine.")
MACHINE_LABELS = {"boot_id", "machine_id", "system_uuid"}  # baseLabelsNames
UNSTAMPED = ("container_start_time_seconds", "container_spec_memory_limit_bytes", "container_scrape_error")


def test_cadvisor_exact():
    now = 1_790_000_000.0
    c = FakeCadvisor(memory_limit_bytes=8 * 1024 ** 3, clock=lambda: now, start_time=now - 600,
                     docker_labels={"grafana": {"com.docker.compose.service": "grafana"}})
    c.start()
    try:
        text = scrape(c)
    finally:
        c.close()
    assert {n: t for n, t in types(text).items() if n.startswith("container_")} == {
        n: v[0] for n, v in CADVISOR_EXPECTED.items()}
    assert set(types(text)) - set(CADVISOR_EXPECTED) == set(CADVISOR_RUNTIME) | {MACHINE_MEMORY[0]}
    assert {n: h for n, h in helps(text).items() if n.startswith("container_")} == {
        n: v[1] for n, v in CADVISOR_EXPECTED.items()}
    base = {"id", "image", "name", "container_label_com_docker_compose_service"}
    for fam in text_string_to_metric_families(text):
        name = exposed_name(fam)
        if name == MACHINE_MEMORY[0]:
            continue  # test_cadvisor_machine_memory
        if name not in CADVISOR_EXPECTED:
            assert all(not s.labels and s.timestamp is None for s in fam.samples), name
            continue
        if name == "container_scrape_error":
            assert [(s.labels, s.value) for s in fam.samples] == [({}, 0.0)]
            continue
        assert {s.labels["name"] for s in fam.samples} == {"mistral", "prometheus", "grafana"}
        for s in fam.samples:
            extra = {"cpu"} if name == "container_cpu_usage_seconds_total" else set()
            assert set(s.labels) == base | extra
            assert re.fullmatch(r"/system\.slice/docker-[0-9a-f]{64}\.scope", s.labels["id"])
            if extra:
                assert s.labels["cpu"] == "total"
            # per-container stats carry cAdvisor's read time in milliseconds; spec and start time carry none
            assert s.timestamp is None if name in UNSTAMPED else float(s.timestamp) == now, (name, s.timestamp)
    # union of labels: containers without the Docker label get ""
    compose = {s.labels["name"]: s.labels["container_label_com_docker_compose_service"]
               for s in families(text)["container_memory_working_set_bytes"].samples}
    assert compose == {"mistral": "", "prometheus": "", "grafana": "grafana"}
    assert value(text, "container_start_time_seconds", **_cad_labels(c, "mistral")) == now - 600
    assert value(text, "container_last_seen", **_cad_labels(c, "grafana")) == now
    assert re.search(r"^container_last_seen\{.*\} \S+ 1790000000000$", text, re.M)  # milliseconds on the wire


def test_cadvisor_machine_memory():
    """The host's memory as cAdvisor's machine collector serves it: a gauge with only the machine
    labels (no container's id, name or image), stamped with the last read of the machine's info, at
    the process start and then every 5 minutes; and the base of the ratios of a container without a
    limit."""
    now = [1_790_000_000.0]
    c = FakeCadvisor(memory_limit_bytes={"prometheus": 2 * 1024 ** 3}, machine_memory_bytes=128 * 1024 ** 3,
                     clock=lambda: now[0])
    c.start()
    try:
        text = scrape(c)
    finally:
        c.close()
    name, mtype, help_text = MACHINE_MEMORY
    assert (types(text)[name], helps(text)[name]) == (mtype, help_text)
    [sample] = families(text)[name].samples
    assert set(sample.labels) == MACHINE_LABELS
    assert re.fullmatch(r"[0-9a-f]{32}", sample.labels["machine_id"])
    uuid = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
    assert re.fullmatch(uuid, sample.labels["system_uuid"]) and re.fullmatch(uuid, sample.labels["boot_id"])
    assert sample.value == 128 * 1024 ** 3
    assert float(sample.timestamp) == now[0]
    assert re.search(r"^machine_memory_bytes\{.*\} \S+ 1790000000000$", text, re.M)  # milliseconds on the wire

    def stamp() -> float:
        [s] = families(c.exposition())[name].samples
        return float(s.timestamp)

    # Read again on a 5-minute ticker, not when scraped: the sample is up to 5 minutes old.
    now[0] += 299
    assert stamp() == 1_790_000_000
    now[0] += 1
    assert stamp() == 1_790_000_300
    now[0] += 3 * 300 + 42
    assert stamp() == 1_790_001_200
    c.restart_process()  # a new cAdvisor reads it at start
    assert stamp() == now[0]
    assert all(s.timestamp is None for s in families(FakeCadvisor(timestamps=False).exposition())[name].samples)

    # Without a limit (0) the ratios are of the machine's memory; with one, of the limit.
    c.set_scenario("memory_pressure")
    text = c.exposition()
    m, p = _cad_labels(c, "mistral"), _cad_labels(c, "prometheus")
    assert value(text, "container_spec_memory_limit_bytes", **m) == 0
    assert value(text, "container_memory_working_set_bytes", **m) / (128 * 1024 ** 3) == pytest.approx(0.97, abs=0.001)
    assert value(text, "container_memory_working_set_bytes", **p) / (2 * 1024 ** 3) == pytest.approx(0.05, abs=0.001)


def _cad_labels(c: FakeCadvisor, name: str) -> dict:
    return dict(zip(c.label_names, c.labels_for(name)))


def test_cadvisor_scenarios_and_restart():
    limit = 4 * 1024 ** 3
    c = FakeCadvisor(memory_limit_bytes=limit, timestamps=False)
    m = _cad_labels(c, "mistral")
    healthy = c.exposition()
    assert all(s.timestamp is None for f in text_string_to_metric_families(healthy) for s in f.samples)
    ratio = value(healthy, "container_memory_working_set_bytes", **m) / limit
    assert ratio < 0.5
    before = monotonic_samples(healthy)
    c.set_scenario("memory_pressure")
    c.advance(10)
    text = c.exposition()
    assert value(text, "container_memory_working_set_bytes", **m) / limit == pytest.approx(0.97, abs=0.001)
    assert value(text, "container_spec_memory_limit_bytes", **m) == limit
    assert value(text, "container_memory_usage_bytes", **m) >= value(text, "container_memory_working_set_bytes", **m)
    g = _cad_labels(c, "grafana")
    assert value(text, "container_memory_working_set_bytes", **g) / limit < 0.1
    assert_monotonic(before, monotonic_samples(text))
    cpu = lambda t: value(t, "container_cpu_usage_seconds_total", cpu="total", **m)  # noqa: E731
    assert cpu(text) - cpu(healthy) == pytest.approx(15.0)
    c.restart_process()  # cAdvisor restart: kernel counters keep going
    assert cpu(c.exposition()) == pytest.approx(cpu(text))
    c.set_start_time("mistral", 1_800_000_000)  # container restart
    t2 = c.exposition()
    assert value(t2, "container_start_time_seconds", **m) == 1_800_000_000
    assert ("container_cpu_usage_seconds_total", frozenset(dict(m, cpu="total").items())) not in samples(t2)
    c.advance(1)
    assert cpu(c.exposition()) == pytest.approx(1.5)


# ------------------------------------------------------------------------------------------------
# DCGM

DCGM_HELP = {
    "DCGM_FI_DEV_GPU_TEMP": "GPU temperature (in C).",
    "DCGM_FI_DEV_POWER_USAGE": "Power draw (in W).",
    "DCGM_FI_DEV_GPU_UTIL": "GPU utilization (in %).",
    "DCGM_FI_DEV_XID_ERRORS": "Value of the last XID error encountered.",
    "DCGM_FI_DEV_FB_FREE": "Framebuffer memory free (in MiB).",
    "DCGM_FI_DEV_FB_USED": "Framebuffer memory used (in MiB).",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": "Ratio of cycles the tensor (HMMA) pipe is active.",
}
DCGM_LABELS = {"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION"}
DCGM_INT64 = ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_XID_ERRORS", "DCGM_FI_DEV_FB_FREE",
              "DCGM_FI_DEV_FB_USED")


def test_dcgm_exact():
    d = FakeDcgm(gpus=2, fb_total_mib=81920)
    d.start()
    try:
        text = scrape(d)
    finally:
        d.close()
    assert list(helps(text).items()) == list(DCGM_HELP.items())  # field-id order
    assert set(types(text).values()) == {"gauge"}
    fams = families(text)
    for name, fam in fams.items():
        assert len(fam.samples) == 2
        for s in fam.samples:
            xid = {"err_code", "err_msg"} if name == "DCGM_FI_DEV_XID_ERRORS" else set()
            assert set(s.labels) == DCGM_LABELS | xid, name
            gpu = s.labels["gpu"]
            assert s.labels["device"] == f"nvidia{gpu}"
            assert re.fullmatch(r"GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", s.labels["UUID"])
            assert re.fullmatch(r"[0-9A-F]{8}:[0-9A-F]{2}:[0-9A-F]{2}\.\d", s.labels["pci_bus_id"])
            if name in DCGM_INT64:
                assert s.value.is_integer(), (name, s.value)
    (xid,) = [s.labels for s in fams["DCGM_FI_DEV_XID_ERRORS"].samples if s.labels["gpu"] == "0"]
    assert (xid["err_code"], xid["err_msg"]) == ("0", "No Error")
    assert {s.labels["gpu"] for s in fams["DCGM_FI_DEV_FB_USED"].samples} == {"0", "1"}
    gpu0 = fams["DCGM_FI_DEV_FB_USED"].samples[0].labels
    assert value(text, "DCGM_FI_DEV_FB_USED", **gpu0) + value(text, "DCGM_FI_DEV_FB_FREE", **gpu0) == 81920
    assert "DCGM_FI_PROF" not in FakeDcgm(profiling=False).exposition()
    no_host = families(FakeDcgm(hostname="").exposition())
    assert all("Hostname" not in s.labels for f in no_host.values() for s in f.samples)


def test_dcgm_scenarios():
    d = FakeDcgm(fb_total_mib=81920)
    assert d.value("DCGM_FI_DEV_FB_USED") / 81920 < 0.9 and d.value("DCGM_FI_DEV_XID_ERRORS") == 0
    d.set_scenario("gpu_memory_full")
    d.advance(1)
    assert d.value("DCGM_FI_DEV_FB_USED") / 81920 == pytest.approx(FakeDcgm.GPU_MEMORY_FULL_RATIO, abs=0.001)
    assert d.value("DCGM_FI_DEV_FB_FREE") == 81920 - d.value("DCGM_FI_DEV_FB_USED")
    d.set_scenario("xid_errors")
    (xid,) = families(d.exposition())["DCGM_FI_DEV_XID_ERRORS"].samples
    assert (xid.labels["err_code"], xid.labels["err_msg"], xid.value) == ("79", "GPU has fallen off the bus", 79)
