"""Shared fixtures live in ``tests/fixtures/`` (one module per real service we run)."""

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.s3",
    "tests.fixtures.temporal",
]
