"""Imports every module that registers artifacts in llmstack.artifacts.ARTIFACTS."""
