"""The stack's Grafana dashboards, by the slug that names their asset and their Pulumi resource.

Each dashboard is one module with a `build()` returning the dashboard model; panels.py holds the
factories and the frame they share. tools/render.py commits each as assets/dashboards/<slug>.json,
byte for byte what the Grafana component uploads.
"""

from __future__ import annotations

from . import comparison, fleet, inference
from .panels import DATASOURCE_NAME, DATASOURCE_UID, FOLDER_TITLE, FOLDER_UID, render

DASHBOARDS = {
    "mistral-inference": inference.build,
    "mistral-vs-ollama": comparison.build,
    "llm-fleet": fleet.build,
}


def rendered() -> dict[str, str]:
    """slug -> canonical JSON text of every dashboard."""
    return {slug: render(build()) for slug, build in DASHBOARDS.items()}


__all__ = ["DASHBOARDS", "DATASOURCE_NAME", "DATASOURCE_UID", "FOLDER_TITLE", "FOLDER_UID", "render", "rendered"]
