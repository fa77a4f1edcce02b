"""Reading a job: from the ledger database, never from a workflow query."""

from fastapi import APIRouter

from api.auth import CurrentPrincipal, ServicesDep
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
async def get_job(job_id: str, principal: CurrentPrincipal, services: ServicesDep) -> JobView:
    # A job id is printable ASCII; anything else (NUL, which PostgreSQL cannot even compare)
    # names no job and never reaches the database.
    record = (
        await services.ledger.get_job_for_account(job_id, principal.account_id)
        if job_id.isprintable() and job_id.isascii()
        else None
    )
    if record is None:
        # Another account's job is indistinguishable from no job.
        raise KymaError(ErrorCode.NOT_FOUND, f"no job {job_id[:80]!r}", param="job_id")
    return record.view()
