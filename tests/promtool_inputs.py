"""The input series of promtool test files, parsed: what the engine and rule tests check them against."""

from __future__ import annotations

import re
from typing import Iterable, Optional

import yaml

SERIES_RE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>.*)\}$")
LABEL_RE = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def load(path: str) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def input_series(paths: Iterable[str], engine: Optional[str] = None) -> tuple:
    """(group name, metric name, labels) of every input series in the files; only `engine`'s when given."""
    out = []
    for path in paths:
        for group in load(path).get("tests") or []:
            for s in group.get("input_series") or []:
                m = SERIES_RE.match(s["series"])
                assert m, s["series"]
                labels = dict(LABEL_RE.findall(m["labels"]))
                if engine is None or labels.get("engine") == engine:
                    out.append((group.get("name"), m["name"], labels))
    return tuple(out)
