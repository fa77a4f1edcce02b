"""Where a job's money moves: the hold at admission, and exactly one capture or release.

Each activity is one ledger transaction that is idempotent by job id, so Temporal's
at-least-once delivery can repeat any of them safely. Job state is written in the same
transaction as the money it depends on, so a job's status and its ledger never disagree.
"""

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import classified_failures, permanent
from activities.messages import CaptureInput, HoldPlaced, PlaceHoldInput, ReleaseInput
from kyma_video.errors import ErrorCode
from kyma_video.jobs import JobView
from ledger import LedgerConflict, NewJob
from providers.catalog import get_model


class BillingActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="place_hold")
    async def place_hold(self, inp: PlaceHoldInput) -> HoldPlaced:
        """Route the request, then create the job and hold its estimated cost atomically.

        Refusals (unknown route, insufficient balance, idempotency conflict) are permanent:
        the admission fails and no job exists.
        """
        request = inp.request
        run_id = activity.info().workflow_run_id
        with classified_failures():
            spec = get_model(request.model)
            endpoint = spec.endpoint(with_image=request.image_url is not None)
            provider = self._deps.providers.route(spec)
            outcome = await self._deps.ledger.place_hold(
                NewJob(
                    job_id=inp.job_id,
                    account_id=inp.account_id,
                    api_key_id=inp.api_key_id,
                    idempotency_key=request.idempotency_key,
                    fingerprint=inp.fingerprint,
                    model=spec.id,
                    provider=provider.name.value,
                    endpoint=endpoint,
                    duration=request.duration,
                    upstream_duration=spec.upstream_duration(request.duration),
                    per_second_usd=spec.per_second_usd,
                    prompt=request.prompt,
                    image_url=request.image_url,
                    params=request.params,
                    simulated=provider.simulated,
                    workflow_run_id=run_id,
                ),
                max_jobs_in_flight=inp.max_jobs_in_flight,
            )
        # A retry of this very activity finds the job its first attempt created: still ours.
        created = outcome.created or outcome.job.workflow_run_id == run_id
        return HoldPlaced(job=outcome.job.view(), created=created)

    @activity.defn(name="capture_usage")
    async def capture_usage(self, inp: CaptureInput) -> JobView:
        """Turn the hold into a usage charge for the footage actually delivered."""
        try:
            record = await self._deps.ledger.capture_usage(
                inp.job_id, inp.video.output, output_key=inp.video.key
            )
        except LedgerConflict as conflict:
            raise _settled_otherwise(conflict) from conflict
        return record.view()

    @activity.defn(name="release_hold")
    async def release_hold(self, inp: ReleaseInput) -> JobView:
        """Return the whole hold and record why the job ended without a video."""
        try:
            record = await self._deps.ledger.release_hold(inp.job_id, inp.status, inp.error)
        except LedgerConflict as conflict:
            raise _settled_otherwise(conflict) from conflict
        return record.view()

    @activity.defn(name="release_unconfirmed_hold")
    async def release_unconfirmed_hold(self, inp: ReleaseInput) -> JobView | None:
        """Release a hold that this workflow run's admission may have placed unawares.

        Admission gives up after a few attempts. When the database failed underneath it (a
        lost connection, a timeout), an attempt may have committed the hold and lost only the
        reply; nobody would ever settle that hold, since the caller was told the admission
        failed and the run ends without a job. Returns the released job, or None when this
        run holds nothing (a job recorded by an earlier run under the same id is not touched).
        """
        record = await self._deps.ledger.get_job(inp.job_id)
        if record is None or record.workflow_run_id != activity.info().workflow_run_id:
            return None
        try:
            released = await self._deps.ledger.release_hold(inp.job_id, inp.status, inp.error)
        except LedgerConflict as conflict:
            raise _settled_otherwise(conflict) from conflict
        return released.view()


def _settled_otherwise(conflict: LedgerConflict) -> Exception:
    """The job was already settled the other way: retrying cannot help, an operator must look.
    (Money is safe: the database allows one settlement per job.)"""
    return permanent(ErrorCode.DB_ERROR, f"ledger conflict: {conflict}")
