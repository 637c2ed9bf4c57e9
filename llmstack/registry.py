"""Imports every module that registers artifacts in llmstack.artifacts.ARTIFACTS."""
from . import dashboards  # noqa: F401  (assets/dashboards/*.json)
from . import prometheus_artifacts  # noqa: F401  (assets/prometheus/<env>/..., README Prometheus section)
from . import ollama_artifacts  # noqa: F401  (README Ollama section)
from . import resource_rules  # noqa: F401  (README resources section)
