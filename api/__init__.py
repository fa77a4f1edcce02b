"""The HTTP API (FastAPI): the documented contract in front of the typed client."""

from api.app import create_app

__all__ = ["create_app"]
