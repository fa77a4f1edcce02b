"""The documented error contract: every failure leaves as ``{"error": {code, message, param?}}``
with the status the product documents for its code. Nothing escapes as an unshaped 500."""

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from kyma_video.errors import ErrorCode, KymaError, RateLimited

log = logging.getLogger("kyma_video.api")

STATUS_BY_CODE: dict[ErrorCode, int] = {
    ErrorCode.INVALID_MODEL: 400,
    ErrorCode.INVALID_PROMPT: 400,
    ErrorCode.INVALID_DURATION: 400,
    ErrorCode.INVALID_REQUEST: 400,
    ErrorCode.AUTH_ERROR: 401,
    ErrorCode.INSUFFICIENT_BALANCE: 402,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.IDEMPOTENCY_CONFLICT: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.DB_ERROR: 500,
    ErrorCode.PROVIDER_ERROR: 500,
}


class ErrorDetail(BaseModel):
    code: ErrorCode
    message: str
    param: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class BodyTooLarge(KymaError):
    def __init__(self, limit: int) -> None:
        super().__init__(ErrorCode.INVALID_REQUEST, f"request body is larger than {limit} bytes")


def error_response(
    error: KymaError, status: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=error.code, message=error.message, param=error.param))
    sent = dict(headers or {})
    if isinstance(error, RateLimited):
        sent["Retry-After"] = str(error.retry_after_seconds)
    return JSONResponse(
        body.model_dump(mode="json", exclude_none=True),
        status_code=status or STATUS_BY_CODE.get(error.code, 500),
        headers=sent,
    )


def documented(*codes: ErrorCode, too_large: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route that can fail with ``codes`` (and 413 if it reads a
    body)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for code in (*codes, ErrorCode.AUTH_ERROR, ErrorCode.DB_ERROR, ErrorCode.PROVIDER_ERROR):
        entry = responses.setdefault(
            STATUS_BY_CODE[code], {"model": ErrorBody, "description": "error.code:"}
        )
        if f"`{code.value}`" not in entry["description"]:
            entry["description"] += f" `{code.value}`"
    if too_large:
        responses[413] = {
            "model": ErrorBody,
            "description": "error.code: `invalid_request` (body over the size limit)",
        }
    return responses


def error_documented(code: ErrorCode, description: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for a route outside the authenticated API that fails one way."""
    return {
        STATUS_BY_CODE[code]: {
            "model": ErrorBody,
            "description": f"error.code: `{code.value}` ({description})",
        }
    }


def drop_validation_error_responses(openapi: dict[str, Any]) -> None:
    """Remove FastAPI's automatic 422 responses from an OpenAPI document, in place.

    A request that fails validation is answered 400 ``invalid_request`` with the error shape
    above (see ``install_error_handlers``), never 422 with FastAPI's ``detail`` list, so the
    document must not promise that shape.
    """
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = openapi.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BodyTooLarge)
    async def _too_large(_: Request, error: BodyTooLarge) -> JSONResponse:
        return error_response(error, 413)

    @app.exception_handler(KymaError)
    async def _kyma(_: Request, error: KymaError) -> JSONResponse:
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        param = ".".join(str(part) for part in first.get("loc", ())[1:]) or None
        message = str(first.get("msg", "invalid request"))
        return error_response(KymaError(ErrorCode.INVALID_REQUEST, message, param=param))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = ErrorCode.NOT_FOUND if error.status_code == 404 else ErrorCode.INVALID_REQUEST
        # Keep the exception's headers: a 405 must name the allowed methods (``Allow``).
        return error_response(KymaError(code, str(error.detail)), error.status_code, error.headers)

    @app.exception_handler(RPCError)
    async def _job_runner(_: Request, error: RPCError) -> JSONResponse:
        log.error("job runner unavailable: %s", error.message)
        return error_response(
            KymaError(ErrorCode.PROVIDER_ERROR, "the job runner is unavailable; nothing was held")
        )

    @app.exception_handler(SQLAlchemyError)
    async def _database(_: Request, error: SQLAlchemyError) -> JSONResponse:
        log.exception("database failure", exc_info=error)
        return error_response(KymaError(ErrorCode.DB_ERROR, "the ledger is unavailable"))

    @app.exception_handler(Exception)
    async def _internal(_: Request, error: Exception) -> JSONResponse:
        log.exception("internal failure", exc_info=error)
        return error_response(
            KymaError(ErrorCode.PROVIDER_ERROR, "internal failure; no charge was made")
        )
