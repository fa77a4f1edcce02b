"""Fixtures for the fault scenarios: the full HTTP stack of ``tests/api`` and the workflow
harness of ``tests/workflows`` (with its provider doubles), shared rather than rebuilt."""

from tests.api.conftest import stack
from tests.workflows.conftest import fal, jobs, minimax, served, vertex

__all__ = ["fal", "jobs", "minimax", "served", "stack", "vertex"]
