"""``kyma-video``: run the stack (``dev``, ``api``, ``worker``), administer accounts and keys,
migrate the ledger, and submit or read jobs through the API."""

from kyma_video.cli import _admin, _processes, _remote  # noqa: F401  (registers commands)
from kyma_video.cli._app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
