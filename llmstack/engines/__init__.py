"""The engines the stack maps into the shared `llm:*` catalogue: the registry.

Each engine is one module with `mappings(cfg)` (how its raw metrics become catalogue signals) and
`scrape_jobs(cfg)` (how Prometheus scrapes it). Adding an engine is one module, one entry in
ENGINES, its config knob, its fake and its promtool tests (docs/adding-an-engine.md); the rules,
keep-lists, alerts and dashboards follow from the mappings.
"""

from __future__ import annotations

from ..config import StackConfig
from . import llamacpp, mistralrs, ollama, tgi, vllm
from .base import EngineMapping

ENGINES = (mistralrs, ollama, vllm, tgi, llamacpp)


def mappings(cfg: StackConfig) -> list[EngineMapping]:
    """Every engine mapping, in a stable order."""
    return [m for engine in ENGINES for m in engine.mappings(cfg)]


def scrape_jobs(cfg: StackConfig) -> list:
    """Every engine's scrape jobs (the ones the config asks for), in a stable order."""
    return [j for engine in ENGINES for j in engine.scrape_jobs(cfg)]


def raw_metrics_for_job(cfg: StackConfig, job: str) -> frozenset[str]:
    """The stored metric names the mappings read from `job`: what its scrape must keep."""
    return frozenset().union(*(m.raw_metrics for m in mappings(cfg) if m.job == job))


def engine_jobs(cfg: StackConfig, scraped_only: bool = True) -> list[str]:
    """The scrape jobs that carry an inference engine, without duplicates: the ones this stack
    scrapes, or (scraped_only=False) every one a mapping knows."""
    return sorted({m.job for m in mappings(cfg) if m.enabled(cfg) or not scraped_only})


__all__ = ["ENGINES", "EngineMapping", "engine_jobs", "llamacpp", "mappings", "mistralrs", "ollama", "raw_metrics_for_job", "scrape_jobs", "tgi", "vllm"]
