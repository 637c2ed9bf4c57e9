"""Imports every module that registers artifacts in llmstack.artifacts.ARTIFACTS."""
from . import dashboards  # noqa: F401  (assets/dashboards/*.json)
from . import prometheus_artifacts  # noqa: F401  (assets/prometheus/<env>/..., README Prometheus section)
