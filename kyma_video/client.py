"""The typed client for backend services: start (or attach to) a video job and get its admission.

This is the same code path the HTTP API uses. The caller must already have authenticated the
API key; only the key's *id* (never the key) reaches Temporal.

Idempotency: the workflow id is the job id, derived from (api key id, idempotency key), and the
start uses update-with-start with ``USE_EXISTING``, so concurrent and repeated requests meet in
one workflow whose ``admit`` update places at most one hold. The id-reuse policy
``ALLOW_DUPLICATE_FAILED_ONLY`` lets a key whose admission was refused (a failed run, no job)
be retried, while a finished job's id can never start a second generation; its replay is
answered from the finished run's result.
"""

import contextlib
import dataclasses
import hashlib
import uuid
from dataclasses import dataclass

from temporalio.api.failure.v1 import Failure
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverter, PayloadConverter
from temporalio.exceptions import (
    ApplicationError,
    ApplicationErrorCategory,
    WorkflowAlreadyStartedError,
)
from temporalio.runtime import Runtime

from kyma_video import search_attributes
from kyma_video.errors import ErrorCode, IdempotencyConflict, JobStatus, KymaError, RateLimited
from kyma_video.jobs import Admission, VideoRequest
from kyma_video.settings import Settings
from workflows.messages import AdmitRequest, JobInput, JobOutcome, JobTimings
from workflows.video_job import VideoJobWorkflow

JOB_ID_PREFIX = "vid_"


class _BenignWithoutTraceback(DefaultFailureConverter):
    """The default failure converter, minus the stack trace of a benign application error.

    A benign error is an expected outcome, not a fault: ``upstream_pending``, raised on every
    poll of a running upstream job so that Temporal retries the look after the poll interval
    (see ``activities.upstream``). Formatting its traceback (``traceback.format_tb`` parses the
    source of every frame) was the largest single cost of a poll in the worker, paid a thousand
    times per interval with a thousand jobs waiting, for a trace nobody reads. Every other
    failure keeps its stack trace; a benign error with a cause keeps it too.
    """

    def to_failure(
        self, exception: BaseException, payload_converter: PayloadConverter, failure: Failure
    ) -> None:
        if not (
            isinstance(exception, ApplicationError)
            and exception.category is ApplicationErrorCategory.BENIGN
            and exception.__cause__ is None
        ):
            super().to_failure(exception, payload_converter, failure)
            return
        traceback = exception.__traceback__
        exception.__traceback__ = None
        try:
            super().to_failure(exception, payload_converter, failure)
        finally:
            exception.__traceback__ = traceback


#: The data converter every kyma-video process must share: pydantic payloads, and failures
#: encoded as by default except that benign ones travel without a stack trace.
DATA_CONVERTER: DataConverter = dataclasses.replace(
    pydantic_data_converter, failure_converter_class=_BenignWithoutTraceback
)


def derive_job_id(api_key_id: str, idempotency_key: str | None) -> str:
    """A stable id for a keyed request (same key, same job), a fresh one otherwise."""
    if idempotency_key is None:
        return JOB_ID_PREFIX + uuid.uuid4().hex
    digest = hashlib.sha256(f"{api_key_id}\n{idempotency_key}".encode()).hexdigest()
    return JOB_ID_PREFIX + digest[:32]


@dataclass(frozen=True)
class Caller:
    """Who is asking, after authentication: ids only, never the key itself."""

    account_id: str
    api_key_id: str
    #: The caller's tier limit on unfinished jobs (None: unlimited).
    max_jobs_in_flight: int | None = None


def timings_from(settings: Settings) -> JobTimings:
    return JobTimings(
        deadline_seconds=settings.job_timeout_seconds,
        poll_interval_seconds=settings.poll_interval_seconds,
        admission_timeout_seconds=settings.admission_timeout_seconds,
        media_fetch_timeout_seconds=settings.media_fetch_timeout_seconds,
        max_video_bytes=settings.max_video_bytes,
    )


async def connect(
    settings: Settings, *, runtime: Runtime | None = None, lazy: bool = False
) -> Client:
    """A Temporal client with the data converter every kyma-video process must share.

    ``lazy`` connects on first use, so a process that can do useful work without Temporal (the
    API still serves jobs from the database) starts even while Temporal is down.
    """
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
        runtime=runtime,
        lazy=lazy,
    )


def _error_from(failure: BaseException | None) -> KymaError:
    if isinstance(failure, ApplicationError):
        if failure.type == ErrorCode.RATE_LIMITED.value:
            retry_after = failure.details[0] if failure.details else 10
            return RateLimited(failure.message, retry_after_seconds=int(retry_after))
        try:
            return KymaError(ErrorCode(failure.type or ""), failure.message)
        except ValueError:
            pass
    return KymaError(ErrorCode.PROVIDER_ERROR, f"admission failed: {failure}")


class JobClient:
    def __init__(self, client: Client, *, task_queue: str, timings: JobTimings) -> None:
        self._client = client
        self._task_queue = task_queue
        self._timings = timings

    @classmethod
    def from_settings(cls, client: Client, settings: Settings) -> "JobClient":
        return cls(client, task_queue=settings.task_queue, timings=timings_from(settings))

    async def start_job(self, request: VideoRequest, caller: Caller) -> Admission:
        """Start or attach to the job for ``request`` and return its admission.

        Raises:
            KymaError: with the product code: ``insufficient_balance`` (no job was created),
                ``idempotency_conflict``, ``invalid_model``/``invalid_request`` for a model that
                cannot be routed here, ``db_error``/``provider_error`` for internal failures.
        """
        job_id = derive_job_id(caller.api_key_id, request.idempotency_key)
        admit = AdmitRequest(fingerprint=request.fingerprint())
        start = self._start_operation(job_id, request, caller)
        try:
            admission: Admission = await self._client.execute_update_with_start_workflow(
                VideoJobWorkflow.admit, admit, start_workflow_operation=start
            )
        except WorkflowUpdateFailedError as error:
            raise _error_from(error.cause) from None
        except WorkflowAlreadyStartedError:
            # The start half carries the same error; collect it so it is not reported unseen.
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await start.workflow_handle()
            return await self._replay_finished(job_id, admit)
        return admission

    def _start_operation(
        self, job_id: str, request: VideoRequest, caller: Caller
    ) -> WithStartWorkflowOperation[VideoJobWorkflow, JobOutcome]:
        return WithStartWorkflowOperation(
            VideoJobWorkflow.run,
            JobInput(
                job_id=job_id,
                account_id=caller.account_id,
                api_key_id=caller.api_key_id,
                request=request,
                timings=self._timings,
                max_jobs_in_flight=caller.max_jobs_in_flight,
            ),
            id=job_id,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(search_attributes.MODEL, request.model),
                    SearchAttributePair(search_attributes.ACCOUNT, caller.account_id),
                    SearchAttributePair(search_attributes.JOB_STATUS, JobStatus.PENDING.value),
                ]
            ),
            static_summary=_summary(request),
            static_details=f"account {caller.account_id} · key {caller.api_key_id}",
        )

    async def _replay_finished(self, job_id: str, admit: AdmitRequest) -> Admission:
        """The key's job already finished: answer with it, never start it again."""
        handle = self._client.get_workflow_handle_for(VideoJobWorkflow.run, job_id)
        try:
            outcome = await handle.result()
        except WorkflowFailureError as error:
            raise _error_from(error.cause) from None
        if outcome.fingerprint != admit.fingerprint:
            raise IdempotencyConflict()
        return Admission(job=outcome.job, replayed=True)


def _summary(request: VideoRequest) -> str:
    mode = "image-to-video" if request.image_url else "text-to-video"
    prompt = request.prompt if len(request.prompt) <= 60 else request.prompt[:57] + "..."
    return f"{request.model} · {request.duration}s · {mode} — {prompt}"
