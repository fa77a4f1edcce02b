"""Starting jobs: the OpenAI-style alias and the Vertex-style genmedia route."""

import json
from typing import Any

from fastapi import APIRouter, Request, Response

from api.auth import CurrentPrincipal, Principal, ServicesDep
from api.errors import documented
from api.rate_limit import enforce_request_rate
from api.schemas import VideoGenerationBody
from api.services import Services
from kyma_video.client import Caller, derive_job_id
from kyma_video.errors import ErrorCode, IdempotencyConflict, KymaError
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


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _parse_json(raw: bytes) -> Any:
    """The body as JSON, refusing what parsers disagree on or cannot hold: a repeated key (the
    first and the last value would both be "the" value), nesting deep enough to exhaust the
    parser's stack, integers over Python's 4300-digit conversion limit."""
    try:
        # Strictly UTF-8 (RFC 8259; a leading BOM is ignored): json.loads(bytes) would also
        # guess UTF-16/32 and let encoded surrogates through.
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise KymaError(ErrorCode.INVALID_REQUEST, "the body is not valid UTF-8") from None
    try:
        return json.loads(text, object_pairs_hook=_without_duplicate_keys)
    except _DuplicateKey as duplicate:
        raise KymaError(
            ErrorCode.INVALID_REQUEST, f"the body repeats the key {duplicate.key[:80]!r}"
        ) from None
    except RecursionError:
        raise KymaError(ErrorCode.INVALID_REQUEST, "the body nests JSON too deeply") from None
    except ValueError:
        # JSONDecodeError, and integers over Python's 4300-digit conversion limit.
        raise KymaError(ErrorCode.INVALID_REQUEST, "the body is not valid JSON") from None


def _require_json_content_type(request: Request) -> None:
    """A declared media type must be JSON (an absent one is read as JSON)."""
    declared = request.headers.get("content-type")
    if declared is None:
        return
    media_type = declared.split(";", 1)[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise KymaError(
            ErrorCode.INVALID_REQUEST,
            f"Content-Type must be application/json, not {declared[:80]!r}",
        )


async def _start(
    request: Request,
    response: Response,
    principal: Principal,
    services: Services,
    allowed_models: frozenset[str] | None,
) -> JobView:
    await enforce_request_rate(principal, services)
    _require_json_content_type(request)
    video = VideoRequest.from_body(_parse_json(await request.body()))
    if allowed_models is not None and video.model not in allowed_models:
        raise KymaError(
            ErrorCode.INVALID_MODEL,
            f"{video.model!r} is not served on this route; use one of {sorted(allowed_models)}",
            param="model",
        )
    replayed = await _replay_from_ledger(video, principal, services)
    if replayed is not None:
        response.status_code = 200
        return replayed
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


async def _replay_from_ledger(
    video: VideoRequest, principal: Principal, services: Services
) -> JobView | None:
    """Answer a retried request whose job is already recorded without asking Temporal.

    Retries come in bursts (a client timing out and retrying, many workers submitting the same
    key): each one sent to Temporal is an update on the same workflow, and a workflow accepts
    only a few in-flight updates at once, so a burst would queue behind Temporal's own
    back-off. The job row is the answer anyway: a replay returns the job as it stands now.
    Requests whose job is not recorded yet (still being admitted, or refused) go through
    Temporal, which decides them exactly once.
    """
    if video.idempotency_key is None:
        return None
    record = await services.ledger.get_job(derive_job_id(principal.key_id, video.idempotency_key))
    if record is None or record.account_id != principal.account_id:
        return None
    if record.fingerprint != video.fingerprint():
        raise IdempotencyConflict()
    return record.view()


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
