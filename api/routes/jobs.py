"""Reading a job: from the ledger database, never from a workflow query."""

from fastapi import APIRouter, Response

from api.auth import INVALID_KEY, PresentedKey, ServicesDep
from api.errors import documented
from kyma_video.errors import ErrorCode, KymaError
from kyma_video.jobs import JobView

router = APIRouter(tags=["jobs"])


@router.get(
    "/v1/jobs/{job_id}",
    response_model=JobView,
    responses=documented(ErrorCode.NOT_FOUND),
    summary="Get a job",
    description="Poll every 2-5 seconds until status is succeeded, failed, refunded or "
    "expired. `output.url` is our rehosted copy; `charged_amount` is null until succeeded.",
)
async def get_job(job_id: str, key: PresentedKey, services: ServicesDep) -> Response:
    # Clients poll this every few seconds for every job, so it is one database round trip: the
    # key is checked and the job read in the same query (``Ledger.job_for_key``), and the view
    # is serialized once here rather than validated again against the response model.
    if not (job_id.isprintable() and job_id.isascii()):
        # A job id is printable ASCII; anything else (NUL, which PostgreSQL cannot even
        # compare) names no job and never reaches the database. The key is still checked, so
        # a bad key gets 401 here as on any other id.
        if await services.ledger.authenticate_account(key) is None:
            raise KymaError(ErrorCode.AUTH_ERROR, INVALID_KEY)
        raise _no_such_job(job_id)
    found = await services.ledger.job_for_key(key, job_id)
    if found is None:
        raise KymaError(ErrorCode.AUTH_ERROR, INVALID_KEY)
    _, record = found
    if record is None:
        # Another account's job is indistinguishable from no job.
        raise _no_such_job(job_id)
    return Response(record.view().model_dump_json(), media_type="application/json")


def _no_such_job(job_id: str) -> KymaError:
    return KymaError(ErrorCode.NOT_FOUND, f"no job {job_id[:80]!r}", param="job_id")
