"""Live remote write on 127.0.0.1: the stack's Prometheus sends its samples to a second Prometheus
that stands in for the long-term store, and loses none across a short outage of that store.

What runs:

* The sender: Debian's Prometheus 2.42 (tests/integration/promserver.py) with the stack's own
  rendered `prometheus.yml` and rule files (llmstack.prometheus) for a dev config whose
  `prometheusRemoteWrite` points at the receiver. The only edits are structural, on the parsed
  YAML: the scrape interval is 500 ms (the config refuses sub-second intervals, and more samples
  make a sharper test), the rule windows are compressed as in test_live_pipeline.py, the mistral
  and self-scrape targets become loopback addresses (the mistral one a FakeMistral), and jobs with
  no fake here are left out. `global.external_labels` and `remote_write` are exactly as rendered.
* The receiver: a second Debian Prometheus with `--web.enable-remote-write-receiver` and nothing to
  scrape. It is stopped for OUTAGE_S and started again on the same port and data directory.

The outage proof compares raw samples: every timestamp of `up{job="mistral"}` the sender's own TSDB
holds for the window around the outage must be in the receiver too, carrying the external labels.
Prometheus's remote write reads from its write-ahead log and retries a refused connection until the
store answers, so within the WAL's reach (at least about an hour; docs/remote-write.md) nothing is lost.

A third check runs its own sender against an HTTP receiver that records headers: the basic-auth
password and the bearer token reach the store from the credential files, never from prometheus.yml.

Every wait is bounded; every process is stopped when its fixture exits (an ExitStack).
"""

from __future__ import annotations

import base64
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import yaml

from llmstack import config as cfgmod
from llmstack import prometheus, remote_write, topology
from tests.integration.fakes import FakeMistral
from tests.integration.promserver import PrometheusServer, free_port, wait_until
from tests.integration.receiver import WebhookReceiver
from tests.integration.test_live_pipeline import compress_rules, in_network_addresses, rewrite_targets

INTERVAL = "500ms"
INTERVAL_S = 0.5
CLUSTER = "rw-live"
OUTAGE_S = 20.0
WARMUP_TIMEOUT_S = 45.0
CATCH_UP_TIMEOUT_S = 60.0
# Queue settings the config allows at their fast end, so a restarted receiver is retried within a
# second; the outage proof does not depend on them (the WAL holds what the queue cannot).
FAST_QUEUE = {"batchSendDeadline": "1s", "minBackoff": "10ms", "maxBackoff": "1s"}


def stack_config(entries: list[dict], secrets: dict[str, str]) -> cfgmod.StackConfig:
    values = {
        "mistralModelId": "Qwen/Qwen3-0.6B",
        "alertEmailAddresses": '["oncall@example.com"]',
        # The probes have a live test of their own; here only the transport matters.
        "probesEnabled": "false",
        "prometheusClusterLabel": CLUSTER,
        "prometheusRemoteWrite": json.dumps(entries),
        **secrets,
    }
    return cfgmod.load(cfgmod.DictSource(values, secret_keys=frozenset(secrets)), "dev")


def live_config(cfg: cfgmod.StackConfig, addresses: dict[str, str], secrets_dir=None) -> dict:
    """The rendered config as this test runs it (see the module docstring for every edit)."""
    doc = yaml.safe_load(prometheus.render_prometheus_yml(cfg))
    doc["scrape_configs"] = [
        job for job in doc["scrape_configs"]
        if all(t in addresses for s in job.get("static_configs") or [] for t in s.get("targets") or [])
    ]
    doc = rewrite_targets(doc, addresses)
    doc["global"].update(scrape_interval=INTERVAL, evaluation_interval=INTERVAL, scrape_timeout=INTERVAL)
    if secrets_dir is not None:
        # The container's secrets directory is a temp directory here; the file names stay.
        text = yaml.safe_dump(doc).replace(topology.PROMETHEUS_SECRETS_DIR, str(secrets_dir))
        doc = yaml.safe_load(text)
    return doc


def write_rules(cfg: cfgmod.StackConfig, root) -> None:
    rules = root / topology.PROMETHEUS_RULES_SUBDIR
    rules.mkdir()
    for name, text in prometheus.render_rule_files(cfg).items():
        (rules / name).write_text(compress_rules(text))


def samples(server: PrometheusServer, selector: str, at: float, window_s: int) -> list[float]:
    """Timestamps of the raw samples `selector` selects in (at - window, at], one series expected."""
    result = server.query(f"{selector}[{window_s}s]", at=at)
    assert len(result) <= 1, f"{selector} selects {len(result)} series: {[r['metric'] for r in result]}"
    return [float(ts) for ts, _ in result[0]["values"]] if result else []


# --- the store and its outage ----------------------------------------------------------------------


@dataclass
class Pair:
    sender: PrometheusServer
    receiver: PrometheusServer
    receiver_port: int
    rendered: dict  # the sender's config as rendered


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-remote-write")
    with ExitStack() as stack:
        receiver_root = root / "receiver"
        receiver_root.mkdir()
        (receiver_root / "prometheus.yml").write_text("global: {}\n")
        receiver = PrometheusServer(
            str(receiver_root / "prometheus.yml"), str(receiver_root / "data"), str(receiver_root / "prometheus.log"),
            extra_args=["--web.enable-remote-write-receiver"],
        )
        stack.callback(receiver.stop)
        receiver.start()

        url = f"http://127.0.0.1:{receiver.port}/api/v1/write"
        cfg = stack_config([{"name": "store", "url": url, "queue": FAST_QUEUE}], {})
        mistral = FakeMistral(model=cfg.mistral.model_id, capacity=cfg.mistral.max_seqs, upstream="v0.9.2")
        mistral.start()
        stack.callback(mistral.close)
        mistral.set_scenario("healthy")
        mistral.run_clock(0.25)

        sender_root = root / "sender"
        sender_root.mkdir()
        write_rules(cfg, sender_root)
        port = free_port()
        sender = PrometheusServer(str(sender_root / "prometheus.yml"), str(sender_root / "data"), str(sender_root / "prometheus.log"))
        rendered = yaml.safe_load(prometheus.render_prometheus_yml(cfg))

        def configure(sender_port: int) -> None:
            doc = live_config(cfg, in_network_addresses({"mistral": mistral}, sender_port))
            (sender_root / "prometheus.yml").write_text(yaml.safe_dump(doc))

        configure(port)
        stack.callback(sender.stop)
        sender.start(port=port)
        if sender.port != port:  # lost the port in a race: point the self-scrape at the new one
            configure(sender.port)
            sender.reload()
        yield Pair(sender, receiver, receiver.port, rendered)


def test_the_sender_runs_the_rendered_remote_write_and_external_labels(pair):
    loaded = yaml.safe_load(pair.sender.api("status/config")["yaml"])
    assert loaded["global"]["external_labels"] == pair.rendered["global"]["external_labels"] == {"cluster": CLUSTER, "env": "dev"}
    (ours,) = pair.rendered["remote_write"]
    (theirs,) = loaded["remote_write"]
    assert theirs["url"] == ours["url"] and theirs["name"] == "store"
    # Every queue setting is written out, so 2.42 here and the image the stack runs behave alike.
    assert {k: theirs["queue_config"][k] for k in ours["queue_config"]} == ours["queue_config"]


def test_the_store_receives_the_stacks_samples_with_cluster_and_env(pair):
    receiver = pair.receiver
    wanted = ('up{job="mistral"}', "mistral_http_requests_total", "llm:requests:rate5m")
    for selector in wanted:
        wait_until(lambda s=selector: receiver.query(f'count({s})'), WARMUP_TIMEOUT_S, what=f"{selector} at the receiver")
    labelled = {tuple(sorted((k, v) for k, v in r["metric"].items() if k in ("cluster", "env"))) for r in receiver.query('{__name__=~".+"}')}
    assert labelled == {(("cluster", CLUSTER), ("env", "dev"))}
    # The sender's own TSDB holds no external label: they are added on the way out.
    assert pair.sender.query('count({cluster!=""})') == []
    assert receiver.query(f'count(up{{job="mistral", cluster="{CLUSTER}", env="dev"}})')


def test_no_sample_is_lost_across_an_outage_of_the_store(pair):
    sender, receiver = pair.sender, pair.receiver
    selector = 'up{job="mistral"}'
    wait_until(lambda: receiver.query(f"count({selector})"), WARMUP_TIMEOUT_S, what="samples at the receiver before the outage")

    down_at = time.time()
    receiver.stop()
    time.sleep(OUTAGE_S)
    receiver.start(port=pair.receiver_port)
    assert receiver.port == pair.receiver_port, "the store came back on another port; the sender cannot follow"
    up_at = time.time()

    # The window: from before the outage to after the store is back; the same for both servers.
    at = up_at + 2.0
    window_s = int(at - down_at) + 5
    wait_until(lambda: time.time() > at + INTERVAL_S, 10, what="the window's end")
    sent = samples(sender, selector, at, window_s)
    assert len(sent) >= 0.8 * window_s / INTERVAL_S, f"the sender itself scraped only {len(sent)} times in {window_s}s"
    during = [ts for ts in sent if down_at < ts < up_at]
    assert len(during) >= 0.8 * OUTAGE_S / INTERVAL_S, f"only {len(during)} scrapes fell in the outage"

    stored = f'up{{job="mistral", cluster="{CLUSTER}", env="dev"}}'
    try:
        wait_until(lambda: samples(receiver, stored, at, window_s) == sent, CATCH_UP_TIMEOUT_S, what="the outage's samples at the store")
    except TimeoutError:
        got = set(samples(receiver, stored, at, window_s))
        missing = [ts for ts in sent if ts not in got]
        pytest.fail(f"{len(missing)} of {len(sent)} samples never reached the store, e.g. {missing[:5]}; during the outage {len(during)}")
    # And every series of a counter the store rates over the gap, sample for sample.
    def counts(server: PrometheusServer, selector: str) -> dict:
        result = server.query(f"count_over_time({selector}[{window_s}s])", at=at)
        return {frozenset((k, v) for k, v in r["metric"].items() if k != "cluster"): float(r["value"][1]) for r in result}

    own = counts(sender, "mistral_http_requests_total")
    assert own and counts(receiver, f'mistral_http_requests_total{{cluster="{CLUSTER}"}}') == own


# --- credentials from files --------------------------------------------------------------------------

USER = "llm-team"
PASSWORD = "live-password-secret-value"
TOKEN = "live-token-secret-value"


def test_credentials_are_read_from_their_files(tmp_path):
    with ExitStack() as stack:
        store = WebhookReceiver().start()
        stack.callback(store.stop)
        secrets = {"rwPassword": PASSWORD, "rwToken": TOKEN}
        entries = [
            {"url": store.url("/basic/api/v1/write"), "basicAuth": {"username": USER, "passwordKey": "rwPassword"}, "queue": FAST_QUEUE},
            {"url": store.url("/bearer/api/v1/write"), "bearerTokenKey": "rwToken", "queue": FAST_QUEUE},
        ]
        cfg = stack_config(entries, secrets)
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir()
        for path, value in remote_write.secret_files(cfg).items():
            (secrets_dir / path.rsplit("/", 1)[1]).write_text(value)
        write_rules(cfg, tmp_path)
        port = free_port()
        doc = live_config(cfg, in_network_addresses({}, port), secrets_dir)
        assert {job["job_name"] for job in doc["scrape_configs"]} == {"prometheus"}
        text = yaml.safe_dump(doc)
        assert PASSWORD not in text and TOKEN not in text
        (tmp_path / "prometheus.yml").write_text(text)
        sender = PrometheusServer(str(tmp_path / "prometheus.yml"), str(tmp_path / "data"), str(tmp_path / "prometheus.log"))
        stack.callback(sender.stop)
        sender.start(port=port)

        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        for path, expected in (("/basic/api/v1/write", basic), ("/bearer/api/v1/write", f"Bearer {TOKEN}")):
            posts = store.wait_for(lambda ps, p=path: [x for x in ps if x.path == p], WARMUP_TIMEOUT_S, what=f"a remote write to {path}")
            assert {x.headers.get("authorization") for x in posts} == {expected}
            assert posts[0].headers.get("content-encoding") == "snappy"

