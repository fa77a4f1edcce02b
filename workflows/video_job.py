"""One workflow per video request: admit (hold), submit, await upstream, rehost, settle.

Workflow code only orchestrates: no I/O, clocks, randomness or settings. Everything that touches
the world is an activity in ``activities/``; every value that comes from settings arrives in
:class:`JobInput`. A durable deadline (``timings.deadline_seconds``) races submit, await and
rehost; settlement is never raced, so every hold ends in exactly one capture or one release.
A job that ends without its video also has whatever a rehost attempt stored deleted, so no
object outlives a job that was not delivered.

Admission happens through update-with-start (see ``kyma_video.client``): the caller starts or
attaches to the workflow whose id derives from its idempotency key and awaits ``admit``. The
first ``admit`` places the hold; later ones get the same job back marked as a replay.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from activities.billing import BillingActivities
    from activities.messages import (
        AwaitInput,
        CaptureInput,
        PlaceHoldInput,
        RehostedVideo,
        RehostInput,
        ReleaseInput,
    )
    from activities.rehost import RehostActivities
    from activities.upstream import UpstreamActivities
    from kyma_video import search_attributes
    from kyma_video.errors import ErrorCode, terminal_status_for
    from kyma_video.jobs import Admission, JobError, JobView
    from workflows.messages import AdmitRequest, JobInput, JobOutcome

#: Money must settle even through a long database outage: ledger activities retry forever.
LEDGER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
#: Admission is awaited by a caller; give up after a few tries so it gets a db_error answer.
ADMISSION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=5,
)
#: Transient provider trouble (429, 5xx, resets) retries with backoff until the deadline.
PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
#: Runs recorded before ``REHOST_UNTIL_DEADLINE`` gave up on rehosting after five attempts.
REHOST_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
#: Storage (or the provider's media host) being down is transient: rehosting retries until
#: the deadline, like every other step the deadline races. Permanent failures (not a video,
#: a URL that is gone) are non-retryable and end the job at once.
REHOST_UNTIL_DEADLINE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
)
#: Deleting a video nobody will receive; a storage outage only delays it.
DISCARD_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=60),
)
CANCEL_RETRY = RetryPolicy(maximum_attempts=3)


#: ``workflow.patched`` id of the change that moved provider calls to per-provider queues.
PROVIDER_TASK_QUEUES = "provider-task-queues"
#: ``workflow.patched`` id of the change that made rehosting retry until the deadline (a job
#: whose video could not be stored by then is refunded, not expired) and made a job that ends
#: without its video delete whatever a rehost attempt stored.
REHOST_UNTIL_DEADLINE = "rehost-until-deadline"
#: ``workflow.patched`` id of the change that releases a hold placed by an admission whose
#: answer was lost (see ``BillingActivities.release_unconfirmed_hold``).
RELEASE_UNCONFIRMED_HOLDS = "release-unconfirmed-holds"


def provider_task_queue(task_queue: str, provider: str) -> str:
    """The task queue whose workers call ``provider`` (see ``worker.build_worker``)."""
    return f"{task_queue}.{provider}"


class JobFailed(Exception):
    """A job step ended for good; carries the code that decides the terminal status."""

    def __init__(self, code: ErrorCode, message: str, details: Sequence[Any] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = tuple(details)

    def as_application_error(self) -> ApplicationError:
        return ApplicationError(
            self.message, *self.details, type=self.code.value, non_retryable=True
        )


#: What a caller is told when a step failed for an unclassified reason (a database outage, a
#: bug): the exception's own text (SQL, stack details, hostnames) is for operators, who find it
#: in the activity failure in history, not for customers.
_UNCLASSIFIED = {
    ErrorCode.DB_ERROR: "the billing database is unavailable; nothing was charged",
    ErrorCode.PROVIDER_ERROR: "the video provider could not be reached",
    ErrorCode.REHOST_FAILED: "the generated video could not be stored",
}


def _failure(error: ActivityError, fallback: ErrorCode) -> JobFailed:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        try:
            code = ErrorCode(cause.type or "")
        except ValueError:
            pass
        else:
            return JobFailed(code, cause.message, cause.details)
    return JobFailed(fallback, _UNCLASSIFIED.get(fallback, "the job failed"))


@workflow.defn(name="VideoJob")
class VideoJobWorkflow:
    @workflow.init
    def __init__(self, inp: JobInput) -> None:
        self._input = inp
        self._fingerprint = inp.request.fingerprint()
        self._job: JobView | None = None
        self._created_by_this_run = False
        self._rejection: JobFailed | None = None
        #: Set once this run has decided to end refused: later admissions get the same answer.
        self._refused = False
        self._admitting = asyncio.Lock()
        self._provider_queue: str | None = None
        self._rehost_until_deadline = False
        #: Set once ``rehost_output`` is scheduled: from then on a stored video may exist.
        self._rehost_started = False

    # -- operator surface -------------------------------------------------------------------

    @workflow.query
    def status(self) -> JobView | None:
        """The job as this workflow knows it (None until admitted). Callers read jobs from the
        database; this query is for operators and debugging."""
        return self._job

    # -- admission --------------------------------------------------------------------------

    @workflow.update
    async def admit(self, request: AdmitRequest) -> Admission:
        async with self._admitting:
            if self._job is not None:
                return Admission(job=self._job, replayed=True)
            if self._refused:
                assert self._rejection is not None
                raise self._rejection.as_application_error()
            try:
                placed = await workflow.execute_activity_method(
                    BillingActivities.place_hold,
                    PlaceHoldInput(
                        job_id=self._input.job_id,
                        account_id=self._input.account_id,
                        api_key_id=self._input.api_key_id,
                        request=self._input.request,
                        fingerprint=self._fingerprint,
                        max_jobs_in_flight=self._input.max_jobs_in_flight,
                    ),
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=ADMISSION_RETRY,
                    summary="place hold",
                )
            except ActivityError as error:
                # The refusal goes back to this caller; the run then ends as failed so that a
                # retry with the same key (after a top-up) starts afresh.
                self._rejection = _failure(error, ErrorCode.DB_ERROR)
                raise self._rejection.as_application_error() from None
            self._rejection = None
            self._created_by_this_run = placed.created
            self._set_job(placed.job)
            return Admission(job=placed.job, replayed=not placed.created)

    @admit.validator
    def _same_request(self, request: AdmitRequest) -> None:
        """Refuse a reused key with a different request before it reaches history."""
        if request.fingerprint != self._fingerprint:
            raise ApplicationError(
                "idempotency_key was already used with a different request",
                type=ErrorCode.IDEMPOTENCY_CONFLICT.value,
                non_retryable=True,
            )

    # -- the job ----------------------------------------------------------------------------

    @workflow.run
    async def run(self, inp: JobInput) -> JobOutcome:
        try:
            await workflow.wait_condition(
                lambda: (
                    self._job is not None
                    or (self._rejection is not None and workflow.all_handlers_finished())
                ),
                timeout=timedelta(seconds=inp.timings.admission_timeout_seconds),
            )
        except TimeoutError:
            await workflow.wait_condition(workflow.all_handlers_finished)
            if self._job is None:
                raise ApplicationError(
                    "no admission arrived", type="admission_timeout", non_retryable=True
                ) from None
        if self._job is None:
            assert self._rejection is not None
            if self._rejection.code is ErrorCode.DB_ERROR and workflow.patched(
                RELEASE_UNCONFIRMED_HOLDS
            ):
                # An unclassified failure (the database went away, an attempt timed out) does
                # not say whether an attempt committed the hold before the failure. While that
                # is settled (the database may still be away), this run admits nobody else.
                self._refused = True
                await self._release_unconfirmed_hold(self._rejection)
            workflow.upsert_search_attributes(
                [search_attributes.JOB_STATUS.value_set(search_attributes.REJECTED)]
            )
            raise ApplicationError(
                f"admission refused, no job was created: {self._rejection.message}",
                type=self._rejection.code.value,
                non_retryable=True,
            )
        if self._created_by_this_run:
            await self._run_job()
        # else: the job belongs to an earlier run (e.g. after history retention); the admission
        # answered the caller with it and nothing is generated or charged again.
        await workflow.wait_condition(workflow.all_handlers_finished)
        assert self._job is not None
        return JobOutcome(job=self._job, fingerprint=self._fingerprint)

    async def _run_job(self) -> None:
        assert self._job is not None
        if workflow.patched(PROVIDER_TASK_QUEUES):
            # Provider calls run on the provider's own task queue, whose workers enforce that
            # provider's concurrency and request rate (runs recorded before this change used
            # the workflow's queue and replay as they ran).
            self._provider_queue = provider_task_queue(
                workflow.info().task_queue, self._job.provider
            )
        # Runs recorded before this change keep their five rehost attempts and leave what a
        # rehost stored in place; they replay as they ran.
        self._rehost_until_deadline = workflow.patched(REHOST_UNTIL_DEADLINE)
        deadline = self._input.timings.deadline_seconds
        pipeline = asyncio.create_task(self._generate())
        done, _ = await workflow.wait([pipeline], timeout=deadline)
        if pipeline in done:
            try:
                video = pipeline.result()
            except JobFailed as failure:
                await self._release(failure.code, failure.message)
                await self._discard_output()
                return
            await self._capture(video)
            return
        pipeline.cancel()
        if self._rehost_until_deadline and self._rehost_started:
            # The provider delivered, but the video could not be stored in time: our side
            # failed the job, so it is refunded. Money moves at the deadline; the rehost is
            # then awaited (it is cancelled with WAIT_CANCELLATION_COMPLETED), so no upload is
            # still running when whatever it stored is deleted.
            await self._release(
                ErrorCode.REHOST_FAILED,
                f"the video could not be stored within the {deadline} second deadline",
            )
            with contextlib.suppress(asyncio.CancelledError, JobFailed):
                await pipeline
            await self._discard_output()
            return
        with contextlib.suppress(asyncio.CancelledError, JobFailed):
            await pipeline
        await self._cancel_upstream()
        await self._release(
            ErrorCode.DEADLINE_EXCEEDED, f"the job did not finish within {deadline} seconds"
        )

    async def _generate(self) -> RehostedVideo:
        timings = self._input.timings
        job_id = self._input.job_id
        try:
            submitted = await workflow.execute_activity_method(
                UpstreamActivities.submit_upstream,
                job_id,
                task_queue=self._provider_queue,
                start_to_close_timeout=timedelta(seconds=60),
                retry_policy=PROVIDER_RETRY,
                summary="submit to provider",
            )
        except ActivityError as error:
            raise _failure(error, ErrorCode.PROVIDER_ERROR) from None
        self._set_job(submitted.job)
        try:
            media = await workflow.execute_activity_method(
                UpstreamActivities.await_upstream,
                AwaitInput(
                    upstream=submitted.upstream,
                    poll_interval_seconds=timings.poll_interval_seconds,
                ),
                task_queue=self._provider_queue,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=timings.poll_interval_seconds),
                    backoff_coefficient=1.0,
                ),
                summary=f"await {submitted.upstream.request_id}",
            )
        except ActivityError as error:
            raise _failure(error, ErrorCode.PROVIDER_ERROR) from None
        self._rehost_started = True
        try:
            return await workflow.execute_activity_method(
                RehostActivities.rehost_output,
                RehostInput(
                    job_id=job_id,
                    upstream=submitted.upstream,
                    media=media,
                    max_video_bytes=timings.max_video_bytes,
                ),
                start_to_close_timeout=timedelta(seconds=timings.media_fetch_timeout_seconds),
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=(
                    REHOST_UNTIL_DEADLINE_RETRY if self._rehost_until_deadline else REHOST_RETRY
                ),
                cancellation_type=(
                    ActivityCancellationType.WAIT_CANCELLATION_COMPLETED
                    if self._rehost_until_deadline
                    else ActivityCancellationType.TRY_CANCEL
                ),
                summary="rehost video",
            )
        except ActivityError as error:
            raise _failure(error, ErrorCode.REHOST_FAILED) from None

    async def _capture(self, video: RehostedVideo) -> None:
        job = await workflow.execute_activity_method(
            BillingActivities.capture_usage,
            CaptureInput(job_id=self._input.job_id, video=video),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LEDGER_RETRY,
            summary="capture usage",
        )
        self._set_job(job)

    async def _release(self, code: ErrorCode, message: str) -> None:
        job = await workflow.execute_activity_method(
            BillingActivities.release_hold,
            ReleaseInput(
                job_id=self._input.job_id,
                status=terminal_status_for(code),
                error=JobError(code=code, message=message),
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LEDGER_RETRY,
            summary=f"release hold ({code.value})",
        )
        self._set_job(job)

    async def _discard_output(self) -> None:
        """Delete what a rehost attempt may have stored for a job that ended without it."""
        if not (self._rehost_until_deadline and self._rehost_started):
            return
        try:
            await workflow.execute_activity_method(
                RehostActivities.discard_output,
                self._input.job_id,
                start_to_close_timeout=timedelta(seconds=30),
                schedule_to_close_timeout=timedelta(hours=1),
                retry_policy=DISCARD_RETRY,
                summary="discard undelivered video",
            )
        except ActivityError:
            workflow.logger.warning("could not delete the undelivered video of a finished job")

    async def _release_unconfirmed_hold(self, rejection: JobFailed) -> None:
        job = await workflow.execute_activity_method(
            BillingActivities.release_unconfirmed_hold,
            ReleaseInput(
                job_id=self._input.job_id,
                status=terminal_status_for(rejection.code),
                error=JobError(code=rejection.code, message=rejection.message),
            ),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=LEDGER_RETRY,
            summary="release unconfirmed hold",
        )
        if job is not None:
            workflow.logger.warning("released the hold of an admission whose answer was lost")

    async def _cancel_upstream(self) -> None:
        try:
            await workflow.execute_activity_method(
                UpstreamActivities.cancel_upstream,
                self._input.job_id,
                task_queue=self._provider_queue,
                start_to_close_timeout=timedelta(seconds=15),
                retry_policy=CANCEL_RETRY,
                summary="cancel upstream",
            )
        except ActivityError:
            workflow.logger.warning("upstream cancel failed; the hold is released regardless")

    def _set_job(self, job: JobView) -> None:
        previous = self._job
        self._job = job
        updates = []
        if previous is None or previous.status is not job.status:
            updates.append(search_attributes.JOB_STATUS.value_set(job.status.value))
        if previous is None:
            updates.append(search_attributes.PROVIDER.value_set(job.provider))
        if updates:
            workflow.upsert_search_attributes(updates)
