"""Live delivery test: a real Prometheus fires the stack's alerts into a real Alertmanager, which
delivers them to Slack, PagerDuty and a heartbeat service that are a receiver of the test's own.

What runs (all on 127.0.0.1, one set-up for the whole module, everything stopped at the end):

* Debian's Prometheus 2.42 (tests/integration/promserver.py) with the stack's rendered
  `prometheus.yml` and rule files for a config with alertDelivery=alertmanager and 1 s scrape and
  evaluation intervals (the smallest the config accepts) and the black-box probes off (no blackbox
  exporter fake exists), scraping FakeMistral (`upstream="v0.9.2"`,
  the release the stack pins) and FakeCadvisor, and itself.
* Debian's Alertmanager 0.25 (tests/integration/amserver.py, the version the stack pins) with the
  rendered `alertmanager.yml`, `--storage.path` in a temp dir and `--cluster.listen-address=` (as
  components/alertmanager.py starts it). Routing: Slack (work), PagerDuty (page) and the Watchdog's
  heartbeat, group_wait 1s, group_interval 10s, repeat_interval 1m.
* A webhook receiver of the test's own (tests/integration/receiver.py): an http.server on 127.0.0.1
  that records every POST with its path, arrival time, headers and JSON body. It is Slack (`/slack`),
  PagerDuty's Events API v2 (`/pagerduty`) and the heartbeat service (`/heartbeat`).

What the test rewrites, and why; nothing else differs from the render:

* prometheus.yml, on the parsed YAML: every scrape target becomes the loopback address of its fake
  (or of this Prometheus), with test_live_pipeline's `rewrite_targets` and `in_network_addresses`;
  the one `alerting:` target (`alertmanager:9093`, the stack network's alias) becomes this
  Alertmanager's loopback address. There is no network alias on a test machine.
* The rule files: `compress_rules` (test_live_pipeline) divides every range and `for` by
  TIME_SCALE (20), as the pipeline test does; a faithful run would take an hour.
* Prometheus's `--rules.alert.resend-delay` is 3s, its 1m default divided by TIME_SCALE: Prometheus
  re-sends a firing alert every resend-delay and Alertmanager keeps it for 4 x resend-delay after the
  last one, which is how long the heartbeat outlives a dead Prometheus. Uncompressed, the heartbeat
  check alone would take 4 minutes.
* alertmanager.yml, on the text: the secret file paths `/etc/alertmanager/secrets/<name>` (where the
  stack's container reads them) become `<tmp>/secrets/<name>`; the files hold exactly what
  `secret_files()` says. Then, on the parsed YAML, each `pagerduty_configs[]` gets `url:` the
  receiver's `/pagerduty`: the render leaves PagerDuty's default endpoint, which is on the internet,
  and nothing may leave this machine. The Slack URL needs no rewrite: it is the `alertSlackUrl`
  secret, which this config sets to the receiver's `/slack`, and the heartbeat URL is
  `alertHeartbeatUrl`, the receiver's `/heartbeat`. `test_configs_are_the_rendered_ones` checks that
  undoing these edits gives the render back and that every URL Alertmanager can send to is loopback.
* The receiver answers `/heartbeat` after 100 ms, as a heartbeat service across the internet
  does; a loopback answer takes 1 ms, and Alertmanager 0.25's repeat check compares the time the
  last notification was *logged* (after the answer) with the flush time, so 1 ms makes every other
  heartbeat a coin toss (see test_heartbeat_arrives_every_group_interval).

The story (the `story` fixture drives it once; the tests assert on what it recorded):

1. warm-up: targets up, the Watchdog firing, the first heartbeat received;
2. error burst (FakeMistral "error_burst", 30% of requests fail): LLMHighErrorRatioCritical pages and
   reaches Slack, one grouped notification each; LLMHighErrorRatioWarning fires later and is held back
   (Alertmanager shows it `suppressed`, inhibited by the critical); recovery delivers the resolution;
3. target down (FakeMistral.stop()): LLMTargetDown pages and reaches Slack. Prometheus itself can
   hardly have an instance alert of the same target start firing while LLMTargetDown fires: every one
   but LLMSequencesPreempted reads a 1m window or a gauge, which empty out before LLMTargetDown's
   `for` has passed, and the preemption alert would need its 10 minutes of evidence lined up with the
   outage to the second. So the test posts two such alerts to Alertmanager's API exactly as
   Prometheus would (the label set and annotations LLMHighErrorRatioWarning had in step 2):
   one for the down instance, which must be held back, and one for another instance, which must be
   delivered (the proof that the first would have been). Recovery delivers LLMTargetDown's resolution;
4. a silence for LLMTargetDown is created through the API, Alertmanager is restarted on the same
   storage path, the silence is still listed, and when the target goes down again LLMTargetDown
   reaches Alertmanager `suppressed` by it and is delivered nowhere;
5. Prometheus is stopped: the heartbeat stops.

Times from incident onset to the first notification are printed, compressed and x TIME_SCALE.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import re
import subprocess
import threading
import time
import types
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pytest
import yaml

from components.common import LABEL_COMPONENT, LABEL_ENV
from llmstack import alertmanager, alerts, prometheus, signals, topology
from llmstack import config as cfgmod
from llmstack.alerts import WATCHDOG
from llmstack.engines import mistralrs
from tests.integration.amserver import AMTOOL_BINARY, AlertmanagerServer, parse_rfc3339, rfc3339
from tests.integration.fakes import FakeCadvisor, FakeMistral
from tests.integration.promserver import PrometheusServer, free_port, wait_until
from tests.integration.receiver import Post, WebhookReceiver
from tests.integration.test_live_pipeline import (
    TIME_SCALE,
    compress_expr,
    compress_rules,
    duration_s,
    in_network_addresses,
    rewrite_targets,
    scale_duration,
)

# --- knobs ------------------------------------------------------------------------------------
INTERVAL = "1s"  # scrape, evaluation and scrape timeout: the smallest the config accepts
GROUP_WAIT, GROUP_INTERVAL, REPEAT_INTERVAL = "1s", "10s", "1m"
GROUP_WAIT_S, GROUP_INTERVAL_S = duration_s(GROUP_WAIT), duration_s(GROUP_INTERVAL)
RESEND_DELAY = scale_duration("1m")  # Prometheus's --rules.alert.resend-delay default, compressed
RESEND_DELAY_S = duration_s(RESEND_DELAY)
POLL_S = 0.25
MARGIN_S = 20.0  # slack on top of every computed wait, for a loaded 2-core machine
FAKE_TICK_S = 0.25
MODEL_LOAD_S = 20
HEARTBEAT_LATENCY_S = 0.1  # how long the fake heartbeat service takes to answer (module docstring)

SLACK, PAGERDUTY, HEARTBEAT = "/slack", "/pagerduty", "/heartbeat"
PAGERDUTY_KEY = "pd-routing-key-0123456789abcdef"
HEARTBEAT_TOKEN = "heartbeat-token-0123456789"
SECRET_KEYS = frozenset({"alertSlackUrl", "alertPagerdutyKey", "alertHeartbeatToken"})

CRITICAL, WARNING = "LLMHighErrorRatioCritical", "LLMHighErrorRatioWarning"
TARGET_DOWN = "LLMTargetDown"
CONTROL_INSTANCE = "mistral-canary"  # the instance of the alert that is not inhibited (step 3)

_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


# =============================================================================================
# Notifications as the receiver recorded them
# =============================================================================================

_SUBJECT_RE = re.compile(r"^\[(FIRING|RESOLVED)(?::(\d+))?\] (\S+) (\S+)")


@dataclass(frozen=True)
class Note:
    channel: str  # slack | pagerduty | heartbeat
    at: float
    status: str  # firing | resolved
    alertname: str
    count: Optional[int]  # alerts firing, from the subject ([FIRING:n])
    subject: str  # Slack's title / PagerDuty's summary
    post: Post


def notes(posts: list[Post], channel: Optional[str] = None, alertname: Optional[str] = None,
          status: Optional[str] = None, since: float = 0.0, until: float = float("inf")) -> list[Note]:
    """The POSTs as notifications, filtered. Slack's and PagerDuty's are read from the subject
    Alertmanager's default templates give them (`[FIRING:n] <alertname> <severity> (...)`); the
    heartbeat's from its webhook body."""
    out = []
    for p in posts:
        if not since <= p.at <= until:
            continue
        if p.path == HEARTBEAT:
            names = ",".join(sorted({a["labels"]["alertname"] for a in p.body["alerts"]}))
            note = Note("heartbeat", p.at, p.body["status"], names, len(p.body["alerts"]), "", p)
        elif p.path in (SLACK, PAGERDUTY):
            ch = "slack" if p.path == SLACK else "pagerduty"
            subject = p.body["attachments"][0]["title"] if ch == "slack" else p.body["payload"]["summary"]
            m = _SUBJECT_RE.match(subject)
            assert m, f"unexpected {ch} subject {subject!r}"
            note = Note(ch, p.at, m.group(1).lower(), m.group(3), int(m.group(2)) if m.group(2) else None, subject, p)
        else:
            raise AssertionError(f"a POST to an unknown path {p.path!r}: {p.body!r}")
        if channel in (None, note.channel) and alertname in (None, note.alertname) and status in (None, note.status):
            out.append(note)
    return out


# =============================================================================================
# Structural edits: exactly what the module docstring lists
# =============================================================================================


def rewrite_alertmanagers(doc: dict, addresses: dict[str, str]) -> dict:
    """A copy of the parsed prometheus.yml with every `alerting:` target mapped through `addresses`;
    a target not mapped to 127.0.0.1 is an error."""
    doc = copy.deepcopy(doc)
    for am in (doc.get("alerting") or {}).get("alertmanagers") or []:
        for static in am.get("static_configs") or []:
            mapped = [addresses.get(t, t) for t in static.get("targets") or []]
            bad = [t for t in mapped if not t.startswith("127.0.0.1:")]
            if bad:
                raise AssertionError(f"Prometheus would send alerts to {bad}, which is not this test's Alertmanager")
            static["targets"] = mapped
    return doc


def local_secret_paths(text: str, secrets_dir: str) -> str:
    """The rendered alertmanager.yml with the container's secret directory replaced by `secrets_dir`."""
    return text.replace(topology.ALERTMANAGER_SECRETS_DIR + "/", secrets_dir.rstrip("/") + "/")


def with_pagerduty_url(doc: dict, url: str) -> dict:
    doc = copy.deepcopy(doc)
    for receiver in doc.get("receivers") or []:
        for pd in receiver.get("pagerduty_configs") or []:
            pd["url"] = url
    return doc


def outbound_urls(doc: dict, secrets_dir: str) -> list[str]:
    """Every URL the loaded alertmanager.yml can send a notification to, secret files read."""
    urls = []
    for receiver in doc.get("receivers") or []:
        for kind, configs in receiver.items():
            if not kind.endswith("_configs"):
                continue
            for c in configs:
                if kind == "slack_configs":
                    urls.append(c["api_url"] if "api_url" in c else open(c["api_url_file"]).read().strip())
                elif kind == "pagerduty_configs":
                    urls.append(c.get("url", "https://events.pagerduty.com/v2/enqueue (the default)"))
                elif kind == "webhook_configs":
                    urls.append(c["url"])
                else:
                    urls.append(f"{kind}: not handled by this test")
    return urls


@contextmanager
def no_proxy_environment():
    """Child processes start without proxy variables: no notification may be routed elsewhere."""
    saved = {k: os.environ.pop(k) for k in _PROXY_VARS if k in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


# =============================================================================================
# The set-up
# =============================================================================================


def delivery_config(receiver: WebhookReceiver, model: str) -> cfgmod.StackConfig:
    values = {
        "mistralModelId": model,
        "scrapeInterval": INTERVAL,
        "evaluationInterval": INTERVAL,
        "scrapeTimeout": INTERVAL,
        "alertDelivery": "alertmanager",
        "alertSlackUrl": receiver.url(SLACK),
        "alertPagerdutyKey": PAGERDUTY_KEY,
        "alertHeartbeatUrl": receiver.url(HEARTBEAT),
        "alertHeartbeatToken": HEARTBEAT_TOKEN,
        "alertGroupWait": GROUP_WAIT,
        "alertGroupInterval": GROUP_INTERVAL,
        "alertRepeatInterval": REPEAT_INTERVAL,
    }
    # The black-box probes need a blackbox exporter, which has no fake here (and probe every 30s,
    # slower than this test's whole incident); delivery does not depend on them.
    if "probesEnabled" in {k.key for k in cfgmod.knobs()}:
        values["probesEnabled"] = "false"
    return cfgmod.load(cfgmod.DictSource(values, secret_keys=SECRET_KEYS), "dev")


class AlertStates:
    """Polls Prometheus's /api/v1/alerts in a thread and records when each alert was first seen
    firing, and when it was last seen active, so the story can read onset-to-firing times."""

    def __init__(self, prom: PrometheusServer):
        self.prom = prom
        self.samples: list[tuple[float, dict[str, str]]] = []
        self.alerts: dict[str, dict] = {}  # alertname -> the last Prometheus alert seen (labels, annotations)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="alert-states", daemon=True)

    def start(self) -> "AlertStates":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                active = self.prom.alerts()
            except Exception:  # noqa: BLE001 (a missed poll is a gap in the record, nothing more)
                active = None
            now = time.time()
            if active is not None:
                states: dict[str, str] = {}
                for a in active:
                    name = a["labels"]["alertname"]
                    if states.get(name) != "firing":
                        states[name] = a["state"]
                    if a["state"] == "firing":
                        with self._lock:
                            self.alerts[name] = a
                with self._lock:
                    self.samples.append((now, states))
            self._stop.wait(POLL_S)

    def first_firing(self, name: str, since: float) -> Optional[float]:
        with self._lock:
            return next((t for t, s in self.samples if t >= since and s.get(name) == "firing"), None)

    def first_inactive(self, name: str, since: float) -> Optional[float]:
        with self._lock:
            return next((t for t, s in self.samples if t >= since and name not in s), None)

    def state(self, name: str) -> Optional[str]:
        with self._lock:
            return self.samples[-1][1].get(name) if self.samples else None


@dataclass
class Setup:
    cfg: cfgmod.StackConfig
    prom: PrometheusServer
    am: AlertmanagerServer
    rx: WebhookReceiver
    mistral: FakeMistral
    states: AlertStates
    secrets_dir: str
    am_config_path: str
    prom_config_path: str
    rendered_am: dict
    loaded_am: dict
    rendered_prom: dict
    addresses: dict[str, str]
    fakes: dict[str, Any]
    alerts: list  # AlertRule as loaded (compressed)

    def for_s(self, name: str) -> float:
        rule = next(a for a in self.alerts if a.name == name)
        return duration_s(rule.for_) if rule.for_ else 0.0

    def write_prometheus_config(self) -> dict:
        doc = rewrite_alertmanagers(rewrite_targets(self.rendered_prom, self.addresses), self.addresses)
        with open(self.prom_config_path, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=True)
        return doc

    def point_prometheus_at_alertmanager(self) -> None:
        """After an Alertmanager restart that lost its port in a race: follow it."""
        alias, port, _ = topology.TARGETS["alertmanager"]
        if self.addresses[f"{alias}:{port}"] != f"127.0.0.1:{self.am.port}":
            self.fakes["alertmanager"] = types.SimpleNamespace(port=self.am.port)
            self.addresses = in_network_addresses(self.fakes, self.prom.port)
            self.write_prometheus_config()
            self.prom.reload()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("live-delivery")
    with ExitStack() as stack:
        stack.enter_context(no_proxy_environment())
        rx = WebhookReceiver(latency_s={HEARTBEAT: HEARTBEAT_LATENCY_S}).start()
        stack.callback(rx.stop)
        cfg = delivery_config(rx, "Qwen/Qwen3-0.6B")
        rules = alerts.alert_rules(cfg)

        # Alertmanager: the render, its secrets in files, the two edits of the module docstring.
        secrets_dir = root / "secrets"
        secrets_dir.mkdir()
        for path, value in alertmanager.secret_files(cfg, rules).items():
            assert path.startswith(topology.ALERTMANAGER_SECRETS_DIR + "/"), path
            (secrets_dir / os.path.basename(path)).write_text(value)
        rendered_am_text = alertmanager.render_alertmanager_yml(cfg, rules)
        loaded_am = with_pagerduty_url(yaml.safe_load(local_secret_paths(rendered_am_text, str(secrets_dir))), rx.url(PAGERDUTY))
        am_config_path = str(root / "alertmanager.yml")
        with open(am_config_path, "w") as fh:
            yaml.safe_dump(loaded_am, fh, sort_keys=True)
        am = AlertmanagerServer(am_config_path, str(root / "am-data"), str(root / "alertmanager.log"), extra_args=["--log.level=debug"])
        stack.callback(am.stop)
        am.start()

        # The fakes.
        mistral = FakeMistral(model=cfg.mistral.model_id, capacity=cfg.mistral.max_seqs, upstream="v0.9.2")
        containers = {c: cfg.container_name(c) for c in topology.STACK_CONTAINERS}
        cadvisor = FakeCadvisor(
            containers=tuple(containers.values()),
            docker_labels={name: {LABEL_COMPONENT: c, LABEL_ENV: cfg.env} for c, name in containers.items()},
            model_container=containers["mistral"],
            start_time=time.time() - MODEL_LOAD_S,
        )
        for fake in (mistral, cadvisor):
            fake.start()
            stack.callback(fake.close)
            fake.set_scenario("healthy")
            fake.run_clock(FAKE_TICK_S)

        # Prometheus: the render, targets and the alerting target on loopback, compressed rules.
        prom_port = free_port()
        fakes: dict[str, Any] = {"mistral": mistral, "cadvisor": cadvisor, "alertmanager": types.SimpleNamespace(port=am.port)}
        rules_dir = root / topology.PROMETHEUS_RULES_SUBDIR
        rules_dir.mkdir()
        for name, text in prometheus.render_rule_files(cfg).items():
            (rules_dir / name).write_text(compress_rules(text))
        flags = [
            f"--storage.tsdb.retention.time={cfg.prometheus.retention_time}",
            f"--storage.tsdb.retention.size={cfg.prometheus.retention_size}",
            f"--rules.alert.resend-delay={RESEND_DELAY}",
        ]
        prom_config_path = str(root / "prometheus.yml")
        prom = PrometheusServer(prom_config_path, str(root / "prom-data"), str(root / "prometheus.log"), extra_args=flags)
        s = Setup(
            cfg=cfg, prom=prom, am=am, rx=rx, mistral=mistral, states=AlertStates(prom), secrets_dir=str(secrets_dir),
            am_config_path=am_config_path, prom_config_path=prom_config_path, rendered_am=yaml.safe_load(rendered_am_text),
            loaded_am=loaded_am, rendered_prom=yaml.safe_load(prometheus.render_prometheus_yml(cfg)),
            addresses=in_network_addresses(fakes, prom_port), fakes=fakes,
            alerts=[dataclasses.replace(a, expr=compress_expr(a.expr), for_=scale_duration(a.for_) if a.for_ else a.for_) for a in rules],
        )
        s.write_prometheus_config()
        stack.callback(prom.stop)
        prom.start(port=prom_port)
        if prom.port != prom_port:  # lost the port in a race: point the self-scrape at the new one
            s.addresses = in_network_addresses(fakes, prom.port)
            s.write_prometheus_config()
            prom.reload()
        s.states.start()
        stack.callback(s.states.stop)
        yield s


# =============================================================================================
# The story
# =============================================================================================


@dataclass
class Incident:
    name: str
    onset: float
    alert: str  # the alert whose delivery is timed
    fired_at: Optional[float] = None  # first seen firing in Prometheus
    healed: float = 0.0
    resolved_at: Optional[float] = None  # first seen inactive in Prometheus after healing
    end: float = 0.0
    am_snapshot: list = field(default_factory=list)  # /api/v2/alerts while the incident was at its height
    notes: list = field(default_factory=list)  # every notification from onset to end

    def first_note(self, channel: str) -> Optional[Note]:
        return next((n for n in self.notes if n.channel == channel and n.alertname == self.alert and n.status == "firing"), None)


@dataclass
class Injected:
    posted_at: float
    target: dict  # labels of the alert for the down instance (must be held back)
    control: dict  # labels of the alert for another instance (must be delivered)
    am_snapshot: list
    until: float = 0.0
    target_down_fingerprint: str = ""


@dataclass
class SilenceRecord:
    id: str
    created_at: float
    before_restart: dict
    after_restart: Optional[dict]
    pids: tuple[Optional[int], Optional[int]]
    refired: Optional[Incident] = None
    am_snapshot: list = field(default_factory=list)


@dataclass
class Ending:
    prometheus_stopped: float
    watchdog_gone: float  # Watchdog no longer in Alertmanager's API
    watched_until: float


@dataclass
class Story:
    start: float
    warm: float
    burst: Incident
    warning_labels: dict
    down: Incident
    injected: Injected
    silence: SilenceRecord
    ending: Ending
    restart_at: float
    posts: list[Post]
    am_log: str


def _wait(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    return wait_until(pred, timeout=timeout, interval=POLL_S, what=what)


def _am_alert(s: Setup, name: str, **labels: str) -> Optional[dict]:
    return next(
        (a for a in s.am.alerts() if a["labels"].get("alertname") == name and all(a["labels"].get(k) == v for k, v in labels.items())),
        None,
    )


def _notified(s: Setup, name: str, since: float, status: str = "firing", channels=("slack", "pagerduty")) -> bool:
    posts = s.rx.posts(since=since)
    return all(notes(posts, channel=c, alertname=name, status=status) for c in channels)


def _wait_warm(s: Setup) -> None:
    def warm():
        targets = s.prom.targets()
        if not targets or any(t["health"] != "up" for t in targets):
            return False
        if not s.prom.query(signals.REQUESTS_RATE.name):
            return False
        return s.states.state(WATCHDOG) == "firing" and notes(s.rx.posts(), channel="heartbeat")

    _wait(warm, 60, "targets up, the first records, the Watchdog firing and the first heartbeat")
    quiet = {n: st for n, st in (s.states.samples[-1][1] if s.states.samples else {}).items() if n != WATCHDOG}
    assert not quiet, f"alerts active on healthy traffic before any incident: {quiet}"


def _error_burst(s: Setup) -> tuple[Incident, dict]:
    inc = Incident("error_burst", onset=time.time(), alert=CRITICAL)
    s.mistral.set_scenario("error_burst")
    try:
        short_window_s = duration_s(signals.SHORT_WINDOW) / TIME_SCALE
        _wait(lambda: _notified(s, CRITICAL, inc.onset), s.for_s(CRITICAL) + short_window_s + GROUP_WAIT_S + MARGIN_S,
              f"{CRITICAL} delivered to Slack and PagerDuty")
        window_s = duration_s(signals.WINDOW) / TIME_SCALE
        # The warning fires later (its `for` is longer): it reaches Alertmanager while the critical fires.
        warning = _wait(lambda: (a := _am_alert(s, WARNING)) and a["status"]["state"] == "suppressed" and a,
                        s.for_s(WARNING) + window_s + MARGIN_S, f"{WARNING} in Alertmanager, suppressed")
        inc.am_snapshot = s.am.alerts()
        warning_labels = dict(warning["labels"])
        # Two flushes of the warning's group: the first (group_wait) and one group_interval later.
        time.sleep(GROUP_WAIT_S + GROUP_INTERVAL_S + 2)
    finally:
        inc.healed = time.time()
        s.mistral.set_scenario("healthy")
    _wait(lambda: _notified(s, CRITICAL, inc.healed, status="resolved") and s.states.first_inactive(WARNING, inc.healed),
          GROUP_INTERVAL_S + MARGIN_S, f"{CRITICAL} resolved on Slack and PagerDuty, {WARNING} inactive")
    inc.end = time.time()
    inc.fired_at = s.states.first_firing(CRITICAL, inc.onset)
    inc.resolved_at = s.states.first_inactive(CRITICAL, inc.healed)
    inc.notes = notes(s.rx.posts(since=inc.onset, until=inc.end))
    return inc, warning_labels


def _target_down(s: Setup, warning_labels: dict) -> tuple[Incident, Injected]:
    inc = Incident("target_down", onset=time.time(), alert=TARGET_DOWN)
    s.mistral.stop()
    try:
        _wait(lambda: _notified(s, TARGET_DOWN, inc.onset), s.for_s(TARGET_DOWN) + 2 + GROUP_WAIT_S + MARGIN_S,
              f"{TARGET_DOWN} delivered to Slack and PagerDuty")
        td = _wait(lambda: _am_alert(s, TARGET_DOWN), 10, f"{TARGET_DOWN} in Alertmanager's API")
        # Two alerts as Prometheus would send them: for the down instance, and for another one.
        now = time.time()
        # An extra label keeps them apart from Prometheus's own, resolved warning of the burst, which
        # Prometheus keeps re-sending as resolved and which would otherwise overwrite the target's.
        target = {**warning_labels, "injected": "true"}
        assert target["instance"] == td["labels"]["instance"] and target["env"] == td["labels"]["env"], (target, td["labels"])
        control = {**target, "instance": CONTROL_INSTANCE}
        annotations = s.states.alerts[WARNING]["annotations"]

        def post(ends: float) -> None:
            s.am.post_alerts([
                {"labels": labels, "annotations": annotations, "startsAt": rfc3339(now), "endsAt": rfc3339(ends),
                 "generatorURL": f"{s.prom.url}/graph"}
                for labels in (target, control)
            ])

        post(now + 120)
        inj = Injected(posted_at=now, target=target, control=control, am_snapshot=[], target_down_fingerprint=td["fingerprint"])
        _wait(lambda: notes(s.rx.posts(since=now), channel="slack", alertname=WARNING, status="firing"), GROUP_WAIT_S + MARGIN_S,
              f"the {WARNING} of {CONTROL_INSTANCE} delivered")
        inj.am_snapshot = s.am.alerts()
        inc.am_snapshot = inj.am_snapshot
        time.sleep(GROUP_INTERVAL_S + 2)  # one more flush of the group
        inj.until = time.time()
        post(time.time())  # resolve both
    finally:
        inc.healed = time.time()
        s.mistral.start()
    _wait(lambda: _notified(s, TARGET_DOWN, inc.healed, status="resolved"), GROUP_INTERVAL_S + MARGIN_S,
          f"{TARGET_DOWN} resolved on Slack and PagerDuty")
    inc.end = time.time()
    inc.fired_at = s.states.first_firing(TARGET_DOWN, inc.onset)
    inc.resolved_at = s.states.first_inactive(TARGET_DOWN, inc.healed)
    inc.notes = notes(s.rx.posts(since=inc.onset, until=inc.end))
    return inc, inj


def _silence_across_restart(s: Setup, td_labels: dict) -> SilenceRecord:
    created = time.time()
    matchers = {"alertname": TARGET_DOWN, "env": td_labels["env"], "instance": td_labels["instance"]}
    sid = s.am.create_silence(matchers, created, created + 3600, "test_live_delivery", "maintenance across an Alertmanager restart")
    before = next(x for x in s.am.silences() if x["id"] == sid)
    old_pid = s.am.pid
    s.am.restart()
    s.point_prometheus_at_alertmanager()
    after = next((x for x in s.am.silences() if x["id"] == sid), None)
    rec = SilenceRecord(sid, created, before, after, (old_pid, s.am.pid))
    # The target goes down again: LLMTargetDown fires, reaches the restarted Alertmanager, silenced.
    inc = Incident("target_down_silenced", onset=time.time(), alert=TARGET_DOWN)
    s.mistral.stop()
    try:
        _wait(lambda: (a := _am_alert(s, TARGET_DOWN)) and a["status"]["silencedBy"] and a,
              s.for_s(TARGET_DOWN) + 2 + RESEND_DELAY_S + MARGIN_S, f"{TARGET_DOWN} in the restarted Alertmanager, silenced")
        rec.am_snapshot = s.am.alerts()
        time.sleep(GROUP_WAIT_S + GROUP_INTERVAL_S + 2)  # two flushes of its group
    finally:
        inc.healed = time.time()
        s.mistral.start()
    inc.end = time.time()
    inc.fired_at = s.states.first_firing(TARGET_DOWN, inc.onset)
    inc.notes = notes(s.rx.posts(since=inc.onset, until=inc.end))
    rec.refired = inc
    return rec


def _stop_prometheus(s: Setup) -> Ending:
    s.states.stop()
    stopped = time.time()
    s.prom.stop()
    # Alertmanager keeps the Watchdog until its endsAt: 4 x resend-delay after Prometheus last sent it.
    _wait(lambda: _am_alert(s, WATCHDOG) is None, 4 * RESEND_DELAY_S + MARGIN_S, "the Watchdog gone from Alertmanager")
    gone = time.time()
    # Longer than the longest gap between heartbeats so far: one would have arrived by now.
    beats = [n.at for n in notes(s.rx.posts(), channel="heartbeat")]
    longest = max((b - a for a, b in zip(beats, beats[1:])), default=2 * GROUP_INTERVAL_S)
    time.sleep(longest + 2)
    return Ending(stopped, gone, time.time())


@pytest.fixture(scope="module")
def story(setup: Setup) -> Story:
    s = setup
    t0 = time.time()
    _wait_warm(s)
    warm = time.time()
    burst, warning_labels = _error_burst(s)
    down, injected = _target_down(s, warning_labels)
    td_labels = s.states.alerts[TARGET_DOWN]["labels"]
    restart_at = time.time()
    silence = _silence_across_restart(s, td_labels)
    ending = _stop_prometheus(s)
    with open(s.am.log_file, errors="replace") as fh:
        am_log = fh.read()
    st = Story(t0, warm, burst, warning_labels, down, injected, silence, ending, restart_at, s.rx.posts(), am_log)
    _print_summary(st)
    return st


def _print_summary(st: Story) -> None:
    print(f"\nlive delivery: warm-up {st.warm - st.start:.1f}s, run {st.ending.watched_until - st.start:.0f}s")
    for inc in (st.burst, st.down):
        print(f"  {inc.name}: {inc.alert}")
        fired = inc.fired_at - inc.onset if inc.fired_at else None
        for ch in ("slack", "pagerduty"):
            n = inc.first_note(ch)
            if n:
                d = n.at - inc.onset
                print(f"    onset -> {ch:9s} {d:5.1f}s compressed, x{TIME_SCALE} = {d * TIME_SCALE:6.0f}s"
                      f" (firing in Prometheus after {fired:.1f}s, x{TIME_SCALE} = {fired * TIME_SCALE:.0f}s;"
                      f" Alertmanager to {ch} {n.at - inc.fired_at:.1f}s, group_wait {GROUP_WAIT})")
        res = [n for n in inc.notes if n.alertname == inc.alert and n.status == "resolved"]
        if res and inc.resolved_at:
            print(f"    healed -> resolved in Prometheus {inc.resolved_at - inc.healed:.1f}s, "
                  f"-> resolution delivered {min(n.at for n in res) - inc.healed:.1f}s")
    beats = [round(n.at - st.start, 1) for n in notes(st.posts, channel="heartbeat")]
    print(f"  heartbeats at {beats} (s since start); Prometheus stopped at {st.ending.prometheus_stopped - st.start:.1f}s, "
          f"Watchdog gone from Alertmanager at {st.ending.watchdog_gone - st.start:.1f}s")


# =============================================================================================
# Tests
# =============================================================================================


def test_rewrite_alertmanagers_refuses_a_target_not_on_loopback():
    doc = {"alerting": {"alertmanagers": [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]}}
    out = rewrite_alertmanagers(doc, {"alertmanager:9093": "127.0.0.1:5"})
    assert out["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["127.0.0.1:5"]
    assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]  # a copy
    with pytest.raises(AssertionError, match="not this test's Alertmanager"):
        rewrite_alertmanagers(doc, {})


def test_only_the_secret_directory_moves():
    text = "a: /etc/alertmanager/secrets/slack-api-url\nb: /etc/alertmanager/alertmanager.yml\n"
    assert local_secret_paths(text, "/tmp/x/") == "a: /tmp/x/slack-api-url\nb: /etc/alertmanager/alertmanager.yml\n"


def test_configs_are_the_rendered_ones(setup: Setup):
    """Only the edits the module docstring lists; Alertmanager accepts the file; every place a
    notification can go is this test's receiver on 127.0.0.1."""
    undone = copy.deepcopy(setup.loaded_am)
    for receiver in undone["receivers"]:
        for pd in receiver.get("pagerduty_configs") or []:
            assert pd.pop("url") == setup.rx.url(PAGERDUTY)
    restored = yaml.safe_load(yaml.safe_dump(undone).replace(setup.secrets_dir.rstrip("/") + "/", topology.ALERTMANAGER_SECRETS_DIR + "/"))
    assert restored == setup.rendered_am
    check = subprocess.run([AMTOOL_BINARY, "check-config", setup.am_config_path], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert outbound_urls(setup.loaded_am, setup.secrets_dir) and all(
        u.startswith(f"http://127.0.0.1:{setup.rx.port}/") for u in outbound_urls(setup.loaded_am, setup.secrets_dir)
    ), outbound_urls(setup.loaded_am, setup.secrets_dir)
    with open(setup.prom_config_path) as fh:
        loaded = yaml.safe_load(fh)
    assert loaded["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [f"127.0.0.1:{setup.am.port}"]
    rendered = copy.deepcopy(setup.rendered_prom)
    for doc in (loaded, rendered):
        for job in doc["scrape_configs"]:
            for static in job.get("static_configs") or []:
                static["targets"] = ["<address>"] * len(static["targets"])
        for am in doc["alerting"]["alertmanagers"]:
            for static in am["static_configs"]:
                static["targets"] = ["<address>"] * len(static["targets"])
    assert loaded == rendered


def test_outage_delivers_one_grouped_notification_per_receiver(story: Story):
    """The critical reaches Slack (work) and PagerDuty (page) once each while it fires, as one
    group; the warning reaches neither, and nothing else is delivered during the burst."""
    b = story.burst
    firing = [n for n in b.notes if n.status == "firing" and n.channel != "heartbeat" and n.at < b.healed]
    assert [(n.channel, n.alertname, n.count) for n in firing] and sorted((n.channel, n.alertname, n.count) for n in firing) == [
        ("pagerduty", CRITICAL, 1), ("slack", CRITICAL, 1),
    ], [(n.channel, n.subject) for n in firing]
    pd = b.first_note("pagerduty").post.body
    assert pd["event_action"] == "trigger" and pd["routing_key"] == PAGERDUTY_KEY, pd
    assert pd["payload"]["severity"] == "critical", pd
    # Everything from onset to recovery went to the two channels the routing names, or the heartbeat.
    assert {n.channel for n in b.notes} <= {"slack", "pagerduty", "heartbeat"}
    assert all(n.alertname == WATCHDOG for n in b.notes if n.channel == "heartbeat")


def test_pagerduty_carries_the_labels_annotations_and_runbook(setup: Setup, story: Story):
    """Alertmanager 0.25's PagerDuty v2 event: `payload.custom_details` holds `firing` (the default
    template's alert list: every label, every annotation, the source), `resolved`, `num_firing` and
    `num_resolved`; the summary is the group's subject."""
    pd = story.burst.first_note("pagerduty").post.body
    details = pd["payload"]["custom_details"]
    assert set(details) == {"firing", "resolved", "num_firing", "num_resolved"}, details
    assert details["num_firing"] == "1" and details["num_resolved"] == "0" and details["resolved"] == ""
    fired = setup.states.alerts[CRITICAL]
    for name, value in fired["labels"].items():
        assert f" - {name} = {value}\n" in details["firing"], (name, details["firing"])
    for name, value in fired["annotations"].items():
        assert f" - {name} = {value}\n" in details["firing"], (name, details["firing"])
    rule = next(a for a in setup.alerts if a.name == CRITICAL)
    assert f" - runbook_url = {rule.runbook_url}\n" in details["firing"]
    assert rule.runbook_url.endswith("#" + CRITICAL.lower())
    assert "\nSource: http" in details["firing"], details["firing"]  # the generator URL: Prometheus's graph link
    assert pd["payload"]["summary"].startswith(f"[FIRING:1] {CRITICAL} critical ")
    assert fired["labels"]["instance"] in pd["payload"]["summary"]


def test_slack_message_names_the_alert_and_its_labels(setup: Setup, story: Story):
    """What Alertmanager 0.25's default Slack template sends: the subject as the attachment title
    (status, count, the group labels, then the values of the other common labels) and a red colour."""
    slack = story.burst.first_note("slack").post.body
    att = slack["attachments"][0]
    fired = setup.states.alerts[CRITICAL]["labels"]
    assert att["title"].startswith(f"[FIRING:1] {CRITICAL} critical (")
    for name in ("engine", "env", "instance", "model"):
        assert fired[name] in att["title"], (name, att["title"])
    assert att["color"] == "danger"
    assert slack["username"] == "Alertmanager"


def test_slack_message_carries_the_annotations_and_runbook(setup: Setup, story: Story):
    slack = story.burst.first_note("slack").post.raw.decode()
    rule = next(a for a in setup.alerts if a.name == CRITICAL)
    assert rule.runbook_url in slack
    assert setup.states.alerts[CRITICAL]["annotations"]["summary"] in slack


def test_a_firing_critical_holds_back_its_warning(story: Story):
    b = story.burst
    # Alertmanager's own view: the warning suppressed, inhibited by the critical of the same instance.
    by_name = {a["labels"]["alertname"]: a for a in b.am_snapshot}
    assert by_name[CRITICAL]["status"]["state"] == "active", by_name[CRITICAL]
    w = by_name[WARNING]
    assert w["status"]["state"] == "suppressed" and w["status"]["inhibitedBy"] == [by_name[CRITICAL]["fingerprint"]], w
    assert w["status"]["silencedBy"] == []
    # And no channel heard of the warning while the critical fired.
    critical_resolved = b.resolved_at or b.end
    leaked = [(n.channel, n.subject) for n in notes(story.posts, alertname=WARNING, since=b.onset, until=critical_resolved)]
    assert leaked == []
    after = [(n.channel, n.subject, round(n.at - critical_resolved, 1)) for n in notes(story.posts, alertname=WARNING, since=critical_resolved, until=b.end)]
    if after:
        print(f"\n{WARNING} delivered after its critical resolved (the critical lets go first): {after}")


def test_target_down_holds_back_the_instance_alerts_of_its_instance(story: Story):
    inj = story.injected
    snap = {a["labels"]["instance"]: a for a in inj.am_snapshot if a["labels"]["alertname"] == WARNING}
    target, control = snap[inj.target["instance"]], snap[CONTROL_INSTANCE]
    assert target["status"]["state"] == "suppressed", target
    assert target["status"]["inhibitedBy"] == [inj.target_down_fingerprint], target
    assert control["status"]["state"] == "active" and control["status"]["inhibitedBy"] == [], control
    delivered = notes(story.posts, alertname=WARNING, since=inj.posted_at, until=inj.until)
    # The control instance was delivered (so the held-back one would have been), alone in its group.
    assert delivered and all(n.channel == "slack" and n.status == "firing" and n.count == 1 for n in delivered), [
        (n.channel, n.subject) for n in delivered
    ]
    for n in delivered:
        assert CONTROL_INSTANCE in n.subject and f" {inj.target['instance']} " not in n.subject, n.subject
    assert len(delivered) == 1, [(n.channel, n.subject) for n in delivered]


def test_target_down_pages_and_reaches_slack(story: Story):
    d = story.down
    firing = sorted((n.channel, n.alertname, n.count) for n in d.notes if n.status == "firing" and n.alertname == TARGET_DOWN)
    assert firing == [("pagerduty", TARGET_DOWN, 1), ("slack", TARGET_DOWN, 1)], firing
    details = d.first_note("pagerduty").post.body["payload"]["custom_details"]["firing"]
    assert f" - job = {mistralrs.JOB}\n" in details and f" - instance = {topology.MISTRAL_INSTANCE}\n" in details, details
    assert " - runbook_url = " in details and "#" + TARGET_DOWN.lower() in details


@pytest.mark.parametrize("incident", ["burst", "down"])
def test_the_resolution_arrives_after_recovery(story: Story, incident: str):
    inc = getattr(story, incident)
    resolved = [n for n in inc.notes if n.alertname == inc.alert and n.status == "resolved" and n.at >= inc.healed]
    assert sorted(n.channel for n in resolved) == ["pagerduty", "slack"], [(n.channel, n.subject) for n in resolved]
    pd = next(n for n in resolved if n.channel == "pagerduty").post.body
    first = inc.first_note("pagerduty").post.body
    assert pd["event_action"] == "resolve" and pd["dedup_key"] == first["dedup_key"], pd
    assert pd["payload"]["custom_details"]["num_resolved"] == "1" and pd["payload"]["custom_details"]["num_firing"] == "0"
    slack = next(n for n in resolved if n.channel == "slack").post.body["attachments"][0]
    assert slack["title"].startswith(f"[RESOLVED] {inc.alert} critical") and slack["color"] == "good", slack
    # Within a group_interval (plus the time the alert takes to let go) of recovery.
    assert inc.resolved_at is not None
    assert min(n.at for n in resolved) - inc.resolved_at <= GROUP_INTERVAL_S + 3, (min(n.at for n in resolved), inc.resolved_at)


def _heartbeats(story: Story, until: float) -> list[Note]:
    return notes(story.posts, channel="heartbeat", since=story.start, until=until)


def test_heartbeat_carries_the_watchdog_and_the_token(setup: Setup, story: Story):
    beats = _heartbeats(story, story.ending.watched_until)
    assert len(beats) >= 3, [b.at for b in beats]
    for b in beats:
        body = b.post.body
        assert b.post.headers.get("authorization") == f"Bearer {HEARTBEAT_TOKEN}"
        assert body["status"] == "firing" and body["version"] == "4"
        assert [a["labels"]["alertname"] for a in body["alerts"]] == [WATCHDOG]
        assert body["receiver"] == f"llmstack-{setup.cfg.env}-heartbeat"
    # Nothing but the Watchdog ever went to the heartbeat, and the Watchdog nowhere else.
    assert {n.alertname for n in notes(story.posts, channel="heartbeat")} == {WATCHDOG}
    assert not notes(story.posts, channel="slack", alertname=WATCHDOG) and not notes(story.posts, channel="pagerduty", alertname=WATCHDOG)


def test_alerts_carry_the_external_labels(setup: Setup, story: Story):
    # The Watchdog's rule gives it neither label: both come from prometheus.yml's external_labels.
    expected = {"cluster": setup.cfg.prometheus.cluster_label, "env": setup.cfg.env}
    for b in _heartbeats(story, story.ending.watched_until):
        for alert in b.post.body["alerts"]:
            assert {k: alert["labels"].get(k) for k in expected} == expected, alert["labels"]


def _steady_gaps(story: Story) -> list[float]:
    """Gaps between heartbeats from warm-up to the Alertmanager restart (the restart resets the
    group's timer, so the gap across it says nothing about the interval)."""
    beats = [b.at for b in _heartbeats(story, story.restart_at)]
    return [round(b - a, 2) for a, b in zip(beats, beats[1:])]


def test_heartbeat_keeps_arriving_at_most_two_group_intervals_apart(story: Story):
    gaps = _steady_gaps(story)
    print(f"\nheartbeat gaps before the restart: {gaps} (group_interval {GROUP_INTERVAL}, repeat_interval of the route "
          f"{GROUP_INTERVAL})")
    assert len(gaps) >= 3, gaps
    assert all(GROUP_INTERVAL_S - 1 <= g <= 2 * GROUP_INTERVAL_S + 1 for g in gaps), gaps


def test_heartbeat_arrives_every_group_interval(story: Story):
    gaps = _steady_gaps(story)
    assert len(gaps) >= 3 and all(abs(g - GROUP_INTERVAL_S) <= 1 for g in gaps), gaps


def test_heartbeat_stops_when_prometheus_stops(story: Story):
    e = story.ending
    beats = [b.at for b in _heartbeats(story, e.watched_until)]
    assert beats and beats[0] < e.prometheus_stopped
    # Alertmanager let the Watchdog go within 4 x resend-delay of Prometheus's last send.
    assert e.watchdog_gone - e.prometheus_stopped <= 4 * RESEND_DELAY_S + 3, e
    # The last heartbeat is no later than the Watchdog's expiry, and none came after it.
    assert beats[-1] <= e.watchdog_gone, (beats[-1] - e.prometheus_stopped, e)
    steady = max(_steady_gaps(story))
    assert e.watched_until - e.watchdog_gone > steady, "watched for less than a heartbeat interval"
    print(f"\nlast heartbeat {beats[-1] - e.prometheus_stopped:.1f}s after Prometheus stopped; watched "
          f"{e.watched_until - beats[-1]:.0f}s more (longest steady gap {steady}s)")


def test_a_restarted_alertmanager_keeps_its_silence_and_it_still_silences(story: Story):
    sil = story.silence
    assert sil.pids[0] != sil.pids[1] and None not in sil.pids, sil.pids
    assert sil.after_restart is not None, "the silence is gone after the restart"
    assert sil.after_restart["status"]["state"] == "active"
    keep = ("matchers", "startsAt", "endsAt", "createdBy", "comment")
    assert {k: sil.after_restart[k] for k in keep} == {k: sil.before_restart[k] for k in keep}
    # The same alert that was delivered before the restart (story.down) is now silenced by it.
    td = next(a for a in sil.am_snapshot if a["labels"]["alertname"] == TARGET_DOWN)
    assert td["status"]["state"] == "suppressed" and td["status"]["silencedBy"] == [sil.id], td
    assert parse_rfc3339(td["startsAt"]) >= sil.refired.onset - 1, "not a fresh firing after the restart"
    # The same label set was paged before the silence (story.down): only the silence holds it back now.
    paged = story.down.first_note("pagerduty").post.body["payload"]["custom_details"]["firing"]
    assert all(f" - {k} = {v}\n" in paged for k, v in td["labels"].items()), (td["labels"], paged)
    assert notes(story.posts, alertname=TARGET_DOWN, since=sil.created_at, until=sil.refired.end) == []


def test_onset_to_first_notification(setup: Setup, story: Story):
    """Onset to the first notification, per incident and channel. The bound: the alert's compressed
    `for`, plus its short window (how long the breach takes to show), two scrape/evaluation
    intervals, group_wait and a few seconds for a loaded machine."""
    rows = []
    short_window_s = duration_s(signals.SHORT_WINDOW) / TIME_SCALE
    for inc in (story.burst, story.down):
        assert inc.fired_at is not None, f"{inc.alert} never seen firing in Prometheus"
        bound = setup.for_s(inc.alert) + short_window_s + 2 * duration_s(INTERVAL) + GROUP_WAIT_S + 5
        for ch in ("slack", "pagerduty"):
            n = inc.first_note(ch)
            assert n is not None, (inc.name, ch)
            rows.append((inc.name, ch, n.at - inc.onset, inc.fired_at - inc.onset))
            # Delivery after Prometheus fires: group_wait, a Prometheus evaluation and the send.
            assert n.at - inc.fired_at <= GROUP_WAIT_S + 3, (inc.name, ch, n.at - inc.fired_at)
            assert n.at - inc.onset <= bound, (inc.name, ch, n.at - inc.onset, bound)
    print("\nonset -> first notification (compressed s, x TIME_SCALE = real-time s):")
    for name, ch, total, fired in rows:
        print(f"  {name:12s} {ch:9s} {total:5.1f}s -> {total * TIME_SCALE:5.0f}s   (firing after {fired:.1f}s -> {fired * TIME_SCALE:.0f}s)")


def test_alertmanager_logged_no_failed_notification(story: Story):
    failures = [line for line in story.am_log.splitlines() if "level=error" in line or "Notify for alerts failed" in line]
    assert failures == [], failures[:5]
    assert "Notify success" in story.am_log  # debug logging on: the absence of failures means something
