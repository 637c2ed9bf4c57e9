"""Alert detection times, measured with promtool on the firing cases of tests/promtool.

Every alert has a firing test group named `fires: <alert> (onset <duration>): <incident>`: its input
series are healthy until the onset and show the incident from the onset's sample on. To measure
the detection time, this module replays that group's input in promtool (one run per alert) with an
expression test at every evaluation step after the onset that passes only while
`ALERTS{alertname=<alert>, alertstate="firing"}` is there with the labels the test expects. The
first step that passes is the detection time. Nothing is computed from `for` by hand: the number
comes out of Prometheus's own rule evaluation.

promtool samples and evaluates on one aligned grid, recording rules first (the tests' group order),
so the measured time is the best case. In a real Prometheus the incident can begin just after a
scrape (up to one scrape interval), that scrape can land just after a rule evaluation (up to one
evaluation interval), and an alert over recorded series can run just before the recording group
(the groups have independent offsets: one more evaluation interval). The worst case adds those.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping, Optional

import yaml

from .config import duration_seconds

FIRES_RE = re.compile(r"^fires: (?P<alert>\w+) \(onset (?P<onset>[0-9a-z]+)\)(?:: (?P<incident>.+))?$")
# An alert that has not fired this long after its onset counts as a broken test, not a slow alert.
MAX_WAIT_SECONDS = 3600


@dataclass(frozen=True)
class Detection:
    alert: str
    incident: str  # what the firing case breaks, from its group name
    measured_seconds: float  # onset to the first evaluation with the alert firing (aligned grid)
    scrape_interval_seconds: float
    evaluation_interval_seconds: float

    def worst_case_seconds(self, reads_recording_rules: bool) -> float:
        """The measured time plus the phases promtool's aligned grid hides (see the module doc)."""
        hops = 2 if reads_recording_rules else 1
        return self.measured_seconds + self.scrape_interval_seconds + hops * self.evaluation_interval_seconds


def promtool_path() -> str:
    found = shutil.which("promtool")
    if not found:
        raise RuntimeError("promtool is not installed; scripts/test installs Debian's prometheus package")
    return found


def _fmt(seconds: float) -> str:
    return f"{int(seconds)}s" if seconds == int(seconds) else f"{int(seconds * 1000)}ms"


def _firing_case(group: dict, alert: str) -> tuple[dict, float]:
    """The labels the group's own test expects the alert to fire with, and when it checks that."""
    for case in group.get("alert_rule_test") or []:
        if case.get("alertname") == alert and case.get("exp_alerts"):
            return dict(case["exp_alerts"][0].get("exp_labels") or {}), duration_seconds(case["eval_time"])
    raise ValueError(f"firing group {group.get('name')!r} has no alert_rule_test expecting {alert} to fire")


def _probe(alert: str, labels: dict, k: int, at: float) -> dict:
    """An expression test that passes only while the alert fires; `probe="k<k>"` names it in promtool's report."""
    selector = f'ALERTS{{alertname="{alert}", alertstate="firing"}}'
    expected = {**labels, "alertname": alert, "alertstate": "firing", "probe": f"k{k}"}
    return {
        "expr": f'label_replace({selector}, "probe", "k{k}", "", "")',
        "eval_time": _fmt(at),
        "exp_samples": [{"labels": "ALERTS{" + ", ".join(f'{n}="{v}"' for n, v in sorted(expected.items())) + "}", "value": 1}],
    }


def _measure_group(promtool: str, workdir: str, doc: dict, group: dict) -> Detection:
    """Replays one firing group once, with a probe at every evaluation step from the onset on."""
    match = FIRES_RE.match(group["name"])
    alert, onset = match["alert"], duration_seconds(match["onset"])
    step = duration_seconds(doc.get("evaluation_interval", "1m"))
    labels, fired_by = _firing_case(group, alert)
    last = int((fired_by - onset) // step)
    if last < 0 or last * step > MAX_WAIT_SECONDS:
        raise ValueError(f"{group['name']!r}: its firing check at {_fmt(fired_by)} must come after the onset")
    # k = -1 is a canary: one step before the onset the alert cannot fire, so promtool must report it.
    # Its absence from the report would mean the report's format changed and nothing can be read from it.
    probes = {k: _probe(alert, labels, k, onset + k * step) for k in range(-1, last + 1)}
    run = {key: value for key, value in group.items() if key not in ("alert_rule_test", "promql_expr_test")}
    run["promql_expr_test"] = list(probes.values())
    path = os.path.join(workdir, f"probe-{alert}.yaml")
    with open(path, "w") as fh:
        yaml.safe_dump(dict(doc, tests=[run]), fh, sort_keys=True)
    done = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True, timeout=300)
    report = done.stdout + done.stderr
    failed = {k for k in probes if f'\\"k{k}\\"' in report or f'"k{k}"' in report}
    if done.returncode == 0 or -1 not in failed:
        raise RuntimeError(f"cannot read promtool's report for {alert}:\n{report}")
    fired = [k for k in range(0, last + 1) if k not in failed]
    if not fired:
        raise ValueError(f"{alert} did not fire by {_fmt(fired_by)} in {group['name']!r}:\n{report}")
    first = fired[0]
    if any(k in failed for k in range(first, last + 1)):
        raise ValueError(f"{alert} fired at onset+{_fmt(first * step)} and then stopped: the incident is not sustained")
    return Detection(
        alert=alert,
        incident=match["incident"] or "",
        measured_seconds=first * step,
        scrape_interval_seconds=duration_seconds(group.get("interval", "1m")),
        evaluation_interval_seconds=step,
    )


def measure(test_texts: Mapping[str, str], rule_texts: Mapping[str, str], promtool: Optional[str] = None) -> dict[str, Detection]:
    """Detection time per alert, from the `fires:` groups of the given promtool test files.

    `test_texts` maps a test file name to its YAML; `rule_texts` maps a rule file's base name to the
    rule text to test against (the files the tests name by path are replaced by these, so a render
    measures the rules it is about to write, not the ones on disk).
    """
    return dict(_measure_cached(tuple(sorted(test_texts.items())), tuple(sorted(rule_texts.items())), promtool or promtool_path()))


@functools.lru_cache(maxsize=4)
def _measure_cached(tests: tuple, rule_files: tuple, promtool: str) -> tuple:
    jobs = []
    with tempfile.TemporaryDirectory(prefix="llmstack-detection-") as workdir:
        for name, text in rule_files:
            with open(os.path.join(workdir, name), "w") as fh:
                fh.write(text)
        for _, text in tests:
            doc = yaml.safe_load(text)
            doc = dict(doc, rule_files=[os.path.basename(path) for path in doc.get("rule_files") or []])
            for group in doc.get("tests") or []:
                if FIRES_RE.match(group.get("name") or ""):
                    jobs.append((doc, copy.deepcopy(group)))
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            found = list(pool.map(lambda job: _measure_group(promtool, workdir, *job), jobs))
    seen: dict[str, Detection] = {}
    for detection in found:
        if detection.alert in seen:
            raise ValueError(f"{detection.alert} has more than one `fires:` group; keep one canonical incident")
        seen[detection.alert] = detection
    return tuple(sorted(seen.items()))
