"""Faithful fake metrics endpoints for integration and promtool tests (see README.md)."""

from .mistral import FakeMistral
from .ollama import FakeOllamaMetrics
from .resources import FakeCadvisor, FakeDcgm

__all__ = ["FakeMistral", "FakeOllamaMetrics", "FakeCadvisor", "FakeDcgm"]
