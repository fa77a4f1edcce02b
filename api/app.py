"""The FastAPI application: routes, the documented error contract, the body limit."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.body_limit import BodyLimitMiddleware
from api.errors import drop_validation_error_responses, install_error_handlers
from api.routes import catalog, jobs, operations, videos
from api.services import Services, open_services
from kyma_video.settings import Settings, get_settings

DESCRIPTION = """
Asynchronous AI video generation. `POST /v1/videos/generations` returns a job at once (202) and
places a hold of `per_second_usd x duration`; poll `GET /v1/jobs/{job_id}` until it is
`succeeded`, `failed`, `refunded` or `expired`. Only a succeeded job is charged, for
`min(requested, delivered)` seconds. Errors are `{"error": {"code", "message", "param"?}}`.
Money amounts are decimal strings in US dollars.
"""


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    """The app; ``services`` lets a test (or an embedding process) supply its own."""
    settings = settings or (services.settings if services else get_settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
            yield
            return
        opened = await open_services(settings)
        app.state.services = opened
        try:
            yield
        finally:
            await opened.ledger.close()

    app = FastAPI(
        title="kyma-video",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    install_error_handlers(app)
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate_openapi()  # FastAPI's document, built once and cached
        drop_validation_error_responses(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    for module in (videos, jobs, catalog, operations):
        app.include_router(module.router)
    return app
