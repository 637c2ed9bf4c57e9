"""A scrape job as data: its `scrape_configs` entry and the metric names it leaves in the TSDB."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class ScrapeJob:
    config: dict  # one entry of scrape_configs
    series: frozenset[str]  # metric names (or fnmatch patterns) the job leaves in the TSDB


def set_label(name: str, value: str) -> dict:
    """A relabel rule that always sets `name`: with no source labels the empty input matches the default regex."""
    return {"target_label": name, "replacement": value.replace("$", "$$")}


def name_alternation(names: Iterable[str]) -> str:
    return "|".join(sorted(names))


def keep_only(names: Iterable[str]) -> dict:
    """A metric relabel rule that drops every series but these metrics."""
    return {"source_labels": ["__name__"], "regex": name_alternation(names), "action": "keep"}
