"""Alert detection times, measured with promtool on the firing cases of tests/promtool, as the
table in docs/alerts.md. A separate, explicit step: rendering never runs promtool.

    scripts/detection_times          rewrite the table in docs/alerts.md
    scripts/detection_times --check  exit 1 when the committed table differs from a fresh measurement
"""

from __future__ import annotations

import glob
import os
import re
import sys

from llmstack import alerts, prometheus
from llmstack.alerts.base import AlertRule, runbook_anchor
from llmstack.config import StackConfig, format_duration

from . import detection
from .sections import replace_section
from .stacks import ROOT, stack_config

DOC = "docs/alerts.md"
SECTION = "detection-times"
PROMTOOL_TESTS = "tests/promtool"


def measured_detections() -> dict[str, detection.Detection]:
    """Detection times from the committed promtool tests, against the dev rules as rendered now."""
    tests = {}
    for path in sorted(glob.glob(os.path.join(ROOT, PROMTOOL_TESTS, "*.yaml"))):
        with open(path) as fh:
            tests[os.path.basename(path)] = fh.read()
    return detection.measure(tests, prometheus.render_rule_files(stack_config("dev")))


def reads_recording_rules(cfg: StackConfig, alert: AlertRule) -> bool:
    """Whether the alert's expression reads a recorded series (one more evaluation hop)."""
    recorded = {r["record"] for group in prometheus.recording_groups(cfg) for r in group["rules"]}
    return any(re.search(rf"(?<![\w:]){re.escape(name)}(?![\w:])", alert.expr) for name in recorded)


def table() -> str:
    cfg = stack_config("dev")
    found = measured_detections()
    rows = [
        "| alert | severity | for | incident in the firing test | detection (measured) | worst case |",
        "|---|---|---|---|---|---|",
    ]
    for alert in alerts.alert_rules(cfg):
        det = found.get(alert.name)
        if det is None:
            incident, measured, worst = "always fires (pipeline heartbeat)", "n/a", "n/a"
        else:
            incident = det.incident.replace("|", "\\|")
            measured = format_duration(det.measured_seconds)
            worst = format_duration(det.worst_case_seconds(reads_recording_rules(cfg, alert)))
        link = f"[`{alert.name}`](runbooks.md#{runbook_anchor(alert.name)})"
        rows.append(f"| {link} | {alert.severity} | {alert.for_} | {incident} | {measured} | {worst} |")
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    path = os.path.join(ROOT, DOC)
    with open(path) as fh:
        current = fh.read()
    fresh = replace_section(current, SECTION, table())
    if "--check" in argv:
        if fresh != current:
            print(f"stale: {DOC} (run scripts/detection_times)")
            return 1
        return 0
    if fresh != current:
        with open(path, "w") as fh:
            fh.write(fresh)
        print(f"wrote: {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
