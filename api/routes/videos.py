"""Starting jobs: the OpenAI-style alias and the Vertex-style genmedia route."""

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from api.auth import CurrentPrincipal, Principal, ServicesDep
from api.errors import documented
from api.rate_limit import enforce_request_rate
from api.schemas import VideoGenerationBody
from api.services import Services
from kyma_video.client import Caller
from kyma_video.errors import ErrorCode, KymaError
from kyma_video.jobs import JobView, VideoRequest
from providers.catalog import CATALOG, ProviderName

router = APIRouter(tags=["videos"])

#: The genmedia route serves Vertex AI SKUs only.
GENMEDIA_MODELS = frozenset(m.id for m in CATALOG.values() if m.provider is ProviderName.VERTEX)

_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": VideoGenerationBody.model_json_schema()}},
    }
}
_ERRORS = documented(
    ErrorCode.INVALID_MODEL,
    ErrorCode.INVALID_PROMPT,
    ErrorCode.INVALID_DURATION,
    ErrorCode.INVALID_REQUEST,
    ErrorCode.INSUFFICIENT_BALANCE,
    ErrorCode.IDEMPOTENCY_CONFLICT,
    ErrorCode.RATE_LIMITED,
    too_large=True,
)
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobView, "description": "The same idempotency_key was replayed: same job."},
    **_ERRORS,
}


async def _start(
    request: Request,
    response: Response,
    principal: Principal,
    services: Services,
    allowed_models: frozenset[str] | None,
) -> JobView:
    await enforce_request_rate(principal, services)
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise KymaError(ErrorCode.INVALID_REQUEST, "the body is not valid JSON") from None
    video = VideoRequest.from_body(body)
    if allowed_models is not None and video.model not in allowed_models:
        raise KymaError(
            ErrorCode.INVALID_MODEL,
            f"{video.model!r} is not served on this route; use one of {sorted(allowed_models)}",
            param="model",
        )
    limits = services.limits_for(principal.tier)
    admission = await services.jobs.start_job(
        video,
        Caller(
            account_id=principal.account_id,
            api_key_id=principal.key_id,
            max_jobs_in_flight=limits.jobs_in_flight,
        ),
    )
    response.status_code = 200 if admission.replayed else 202
    if admission.replayed:
        # A replay answers with the job as it stands now, not as it was admitted.
        record = await services.ledger.get_job(admission.job.job_id)
        if record is not None:
            return record.view()
    return admission.job


@router.post(
    "/v1/videos/generations",
    status_code=202,
    response_model=JobView,
    responses=_RESPONSES,
    openapi_extra=_REQUEST_BODY,
    summary="Generate a video (OpenAI-style alias)",
    description="Asynchronous: returns 202 with the job at once (200 for a replayed "
    "idempotency_key); poll GET /v1/jobs/{job_id}. The hold of per_second_usd x duration is "
    "placed now; only a succeeded job is charged.",
)
async def create_video_generation(
    request: Request, response: Response, principal: CurrentPrincipal, services: ServicesDep
) -> JobView:
    return await _start(request, response, principal, services, None)


@router.post(
    "/v1/genmedia/jobs",
    status_code=202,
    response_model=JobView,
    responses=_RESPONSES,
    openapi_extra=_REQUEST_BODY,
    summary="Generate a video with a Vertex AI SKU (veo-3-*)",
    description="Same billing and response shape as /v1/videos/generations; any model other "
    "than the Vertex AI SKUs is `invalid_model` here.",
)
async def create_genmedia_job(
    request: Request, response: Response, principal: CurrentPrincipal, services: ServicesDep
) -> JobView:
    return await _start(request, response, principal, services, GENMEDIA_MODELS)
