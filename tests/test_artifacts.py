"""Committed generated files equal what the code renders, and rendering is deterministic."""

import os

import pytest

from tools.render import all_artifacts

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RENDERED = all_artifacts()


@pytest.mark.parametrize("path", sorted(RENDERED))
def test_committed_artifact_is_up_to_date(path):
    with open(os.path.join(ROOT, path)) as fh:
        assert fh.read() == RENDERED[path], f"{path} is stale: run scripts/render"


def test_rendering_twice_gives_identical_bytes():
    assert all_artifacts() == RENDERED
