"""When alerts fire, read from promtool's own rule evaluation: the one implementation, for the docs'
detection times (`measure`) and for bench/alert_detection.py (`Promtool`).

The core is a probe: an expression test at one evaluation step that expects *no*
`ALERTS{alertname=<alert>, alertstate="firing"}` series (optionally with given labels), tagged with
a `probe` label through label_replace. promtool then fails exactly the probes at which the alert is
firing, and prints the tag back in the series it got. One `promtool test rules` run answers any
number of probes; the report is cross-checked against the exit code and promtool's count of
failures, so a change in its format raises instead of reading as "never fires". `Promtool.fires`
judges a single probe by the exit code alone.

`measure` replays the firing case of each alert in tests/promtool: the group named
`fires: <alert> (onset <duration>): <incident>`, whose input series are healthy until the onset and
show the incident from the onset's sample on, with a probe at every evaluation step from the onset
to the time its own test expects the alert to fire. The first step at which it fires is the
detection time. Nothing is computed from `for` by hand.

promtool samples and evaluates on one aligned grid, recording rules first (the tests' group order),
so the measured time is the best case. In a real Prometheus the incident can begin just after a
scrape (up to one scrape interval), that scrape can land just after a rule evaluation (up to one
evaluation interval), and an alert over recorded series can run just before the recording group
(the groups have independent offsets: one more evaluation interval). The worst case adds those.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

import yaml

from llmstack.config import duration_seconds, format_duration

FIRES_RE = re.compile(r"^fires: (?P<alert>\w+) \(onset (?P<onset>[0-9a-z]+)\)(?:: (?P<incident>.+))?$")
# An alert that has not fired this long after its onset counts as a broken test, not a slow alert.
MAX_WAIT_SECONDS = 3600

# What promtool prints per failed expression test, and the tag it got back in the series.
_FAILED_TEST = re.compile(r"^\s*expr: .*, time: [0-9a-z.]+,\s*$", re.M)
_GOT_TAG = re.compile(r'probe="(p\d+)"')


def promtool_path() -> str:
    found = shutil.which("promtool")
    if not found:
        raise RuntimeError("promtool is not installed; scripts/test installs Debian's prometheus package")
    return found


@dataclass(frozen=True)
class Probe:
    """Is `alert` firing at `at` seconds in the input of test group `group` (with these labels, if any)?"""

    group: str
    alert: str
    at: float
    labels: tuple[tuple[str, str], ...] = ()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _probe_test(probe: Probe, tag: str) -> dict:
    matchers = [("alertname", probe.alert), ("alertstate", "firing"), *probe.labels]
    selector = "ALERTS{" + ", ".join(f"{name}={_quote(value)}" for name, value in matchers) + "}"
    return {"expr": f'label_replace({selector}, "probe", "{tag}", "", "")', "eval_time": format_duration(probe.at), "exp_samples": []}


class Promtool:
    """`promtool test rules` over fixed rule files, evaluation interval and rule group order.

    Without `group_eval_order`, promtool evaluates rule groups in an unspecified order (it walks a Go
    map), so an alert may read the records of this evaluation or of the previous one, run to run.
    """

    def __init__(self, workdir: str, rule_files: Sequence[str], evaluation_interval: str,
                 group_eval_order: Optional[Sequence[str]] = None, binary: Optional[str] = None, timeout: float = 600):
        self.workdir, self.rule_files, self.evaluation_interval = workdir, list(rule_files), evaluation_interval
        self.group_eval_order = list(group_eval_order or [])
        self.binary, self.timeout = binary or promtool_path(), timeout
        self.runs = 0

    def _run(self, groups: Sequence[dict], probes: Sequence[Probe], name: str) -> tuple[subprocess.CompletedProcess, dict[str, Probe]]:
        tags = {f"p{i}": probe for i, probe in enumerate(probes)}
        by_group: dict[str, list[dict]] = {}
        for tag, probe in tags.items():
            by_group.setdefault(probe.group, []).append(_probe_test(probe, tag))
        inputs = {g["name"]: g for g in groups}
        if set(by_group) - set(inputs):
            raise ValueError(f"probes for unknown test groups: {sorted(set(by_group) - set(inputs))}")
        # Only the inputs of each group: its own alert and expression tests are not what is asked.
        tests = [{**{k: v for k, v in inputs[n].items() if k not in ("alert_rule_test", "promql_expr_test")}, "promql_expr_test": t}
                 for n, t in by_group.items()]
        doc = {"rule_files": self.rule_files, "evaluation_interval": self.evaluation_interval, "tests": tests}
        if self.group_eval_order:
            doc["group_eval_order"] = self.group_eval_order
        self.runs += 1
        path = os.path.join(self.workdir, f"{name}-{self.runs:04d}.yaml")
        with open(path, "w") as fh:
            yaml.safe_dump(doc, fh, sort_keys=False, width=1 << 30)
        done = subprocess.run([self.binary, "test", "rules", path], capture_output=True, text=True,
                              timeout=self.timeout, stdin=subprocess.DEVNULL, cwd=self.workdir)
        return done, tags

    def firing(self, groups: Sequence[dict], probes: Iterable[Probe], name: str = "probes") -> set[Probe]:
        """The probes at which their alert is firing, in one promtool run over `groups` (test groups:
        name, interval, input_series)."""
        done, tags = self._run(groups, list(probes), name)
        report = done.stdout + done.stderr
        failed = set(_GOT_TAG.findall(report))
        failures = len(_FAILED_TEST.findall(report))
        if not failed <= set(tags) or failures != len(failed) or (done.returncode != 0) != bool(failed):
            raise RuntimeError(f"cannot read promtool's report (exit {done.returncode}, {failures} failed tests, "
                               f"{len(failed)} probes read back):\n{report[-3000:]}")
        return {tags[t] for t in failed}

    def fires(self, group: dict, probe: Probe) -> bool:
        """Judged by the exit code alone: the one probe fails exactly when its alert fires."""
        done, _ = self._run([group], [probe], "confirm")
        if done.returncode != 0 and "FAILED" not in done.stdout + done.stderr:
            raise RuntimeError(f"promtool could not run:\n{(done.stdout + done.stderr)[-3000:]}")
        return done.returncode != 0


def first_firing(times: Iterable[float], start: float, end: float = float("inf")) -> Optional[float]:
    """The first time in [start, end) at which the alert fired, or None."""
    return min((t for t in times if start <= t < end), default=None)


def first_resolved(times: Iterable[float], start: float, step: float, end: float) -> Optional[float]:
    """The first evaluation step from `start` to `end` at which the alert no longer fires, or None."""
    firing = set(times)
    steps = int((end - start) // step)
    return next((start + k * step for k in range(steps + 1) if start + k * step not in firing), None)


# --------------------------------------------------------------------------------------------------
# the docs' detection times, from the `fires:` groups of tests/promtool


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


def _firing_case(group: dict, alert: str) -> tuple[dict, float]:
    """The labels the group's own test expects the alert to fire with, and when it checks that."""
    for case in group.get("alert_rule_test") or []:
        if case.get("alertname") == alert and case.get("exp_alerts"):
            return dict(case["exp_alerts"][0].get("exp_labels") or {}), duration_seconds(case["eval_time"])
    raise ValueError(f"firing group {group.get('name')!r} has no alert_rule_test expecting {alert} to fire")


def _measure_group(promtool: Promtool, group: dict) -> Detection:
    match = FIRES_RE.match(group["name"])
    alert, onset = match["alert"], duration_seconds(match["onset"])
    step = duration_seconds(promtool.evaluation_interval)
    labels, fired_by = _firing_case(group, alert)
    last = int((fired_by - onset) // step)
    if last < 0 or last * step > MAX_WAIT_SECONDS:
        raise ValueError(f"{group['name']!r}: its firing check at {format_duration(fired_by)} must come after the onset")
    wanted = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
    probes = [Probe(group["name"], alert, onset + k * step, wanted) for k in range(last + 1)]
    fired = sorted(p.at for p in promtool.firing([group], probes, name=f"probe-{alert}"))
    if onset + last * step not in fired:
        raise ValueError(f"{alert} did not fire by {format_duration(fired_by)} in {group['name']!r}")
    first = fired[0]
    if len(fired) != last + 1 - int((first - onset) // step):
        raise ValueError(f"{alert} fired at onset+{format_duration(first - onset)} and then stopped: the incident is not sustained")
    return Detection(
        alert=alert,
        incident=match["incident"] or "",
        measured_seconds=first - onset,
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
def _measure_cached(tests: tuple, rule_files: tuple, binary: str) -> tuple:
    jobs = []
    with tempfile.TemporaryDirectory(prefix="llmstack-detection-") as workdir:
        for name, text in rule_files:
            with open(os.path.join(workdir, name), "w") as fh:
                fh.write(text)
        for _, text in tests:
            doc = yaml.safe_load(text)
            runner = Promtool(workdir, [os.path.basename(path) for path in doc.get("rule_files") or []],
                              doc.get("evaluation_interval", "1m"), doc.get("group_eval_order"), binary, timeout=300)
            jobs += [(runner, group) for group in doc.get("tests") or [] if FIRES_RE.match(group.get("name") or "")]
        with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
            found = list(pool.map(lambda job: _measure_group(*job), jobs))
    seen: dict[str, Detection] = {}
    for detection in found:
        if detection.alert in seen:
            raise ValueError(f"{detection.alert} has more than one `fires:` group; keep one canonical incident")
        seen[detection.alert] = detection
    return tuple(sorted(seen.items()))
