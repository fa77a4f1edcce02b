"""Probes and the local backend's file route."""

from fastapi import APIRouter
from fastapi.responses import FileResponse
from sqlalchemy import text

from api.auth import ServicesDep
from api.errors import error_documented
from api.schemas import Health
from blob import LocalBlobStore
from kyma_video.errors import ErrorCode, KymaError

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness: the process answers")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses=error_documented(ErrorCode.DB_ERROR, "the ledger does not answer"),
    summary="Readiness: the ledger answers",
)
async def readyz(services: ServicesDep) -> Health:
    async with services.ledger.engine.connect() as connection:
        await connection.execute(text("SELECT 1"))
    return Health(status="ready")


@router.get(
    "/files/{key:path}",
    response_class=FileResponse,
    summary="A rehosted video (local blob backend only)",
    responses={
        200: {"content": {"video/mp4": {}}},
        **error_documented(ErrorCode.NOT_FOUND, "no such file, or the S3 backend is in use"),
    },
)
async def get_file(key: str, services: ServicesDep) -> FileResponse:
    store = services.blobs
    if isinstance(store, LocalBlobStore):
        try:
            path = store.path_for(key)
        except ValueError:
            path = None
        if path is not None and await store.exists(key):
            return FileResponse(path, media_type="video/mp4")
    raise KymaError(ErrorCode.NOT_FOUND, "no such file")
