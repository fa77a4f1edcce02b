"""Shared fixtures live in ``tests/fixtures/`` (one module per real service we run)."""

pytest_plugins = [
    "tests.fixtures.database",
    "tests.fixtures.s3",
    "tests.fixtures.temporal",
]


#: Credentials that would route models to real providers' clouds, unreachable from tests.
PROVIDER_CREDENTIALS = (
    "FAL_KEY",
    "KYMA_FAL_KEY",
    "KYMA_MINIMAX_API_KEY",
    "KYMA_VERTEX_PROJECT",
    "GOOGLE_CLOUD_PROJECT",
)


def pytest_configure() -> None:
    """Tests configure providers explicitly (pointing them at local doubles); a developer's own
    credentials must not leak in, including into the processes tests start."""
    import os

    for name in PROVIDER_CREDENTIALS:
        os.environ.pop(name, None)
