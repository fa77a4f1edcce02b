"""The video-job workflow on Temporal's time-skipping server: every terminal status, with the
ledger checked after each. Deadlines and long upstreams pass in test time, not wall time."""

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowFailureError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from kyma_video.client import derive_job_id
from kyma_video.errors import ErrorCode, JobStatus
from ledger import EntryKind
from providers.catalog import get_model
from tests.workflows.conftest import STARTING_BALANCE
from tests.workflows.harness import JobHarness
from workflows import JobInput, VideoJobWorkflow

KLING_25 = get_model("kling-2.5-pro")


async def entry_kinds(jobs: JobHarness, job_id: str) -> list[EntryKind]:
    return [entry.kind for entry in await jobs.ledger.entries_for_job(job_id)]


async def test_success_rehosts_the_video_and_charges_the_delivered_seconds(jobs: JobHarness):
    async with jobs.worker():
        handle, admission = await jobs.start_and_admit(jobs.request(duration=5))
        assert admission.replayed is False
        assert admission.job.status is JobStatus.PENDING
        assert admission.job.estimated_cost == Decimal("0.472500")
        outcome = await handle.result()

    job = outcome.job
    assert job.status is JobStatus.SUCCEEDED
    assert job.simulated is True
    assert job.charged_amount == KLING_25.per_second_usd * 5
    assert job.output is not None
    assert job.output.content_type == "video/mp4"
    assert abs(job.output.duration_seconds - 5) < Decimal("0.05")
    stored = await jobs.blobs.read(f"{job.job_id}.mp4")
    assert len(stored) == job.output.size_bytes
    assert await entry_kinds(jobs, job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]
    assert await jobs.assert_balanced() == STARTING_BALANCE - job.charged_amount
    record = await jobs.ledger.get_job(job.job_id)
    assert record is not None and record.view() == job


async def test_shorter_footage_than_requested_is_billed_as_delivered(jobs: JobHarness):
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(
            jobs.request(model="kling-3-pro", duration=5, simulate_delivered_seconds=3.5)
        )
        job = (await handle.result()).job
    rate = get_model("kling-3-pro").per_second_usd
    assert job.status is JobStatus.SUCCEEDED
    assert job.charged_amount == rate * Decimal("3.5")
    assert job.charged_amount < job.estimated_cost
    assert await jobs.assert_balanced() == STARTING_BALANCE - job.charged_amount


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        ("fail", JobStatus.FAILED, ErrorCode.UPSTREAM_FAILED),
        ("reject", JobStatus.FAILED, ErrorCode.CONTENT_REJECTED),
        ("invalid_output", JobStatus.FAILED, ErrorCode.INVALID_OUTPUT),
        ("media_unavailable", JobStatus.REFUNDED, ErrorCode.REHOST_FAILED),
    ],
)
async def test_failures_release_the_whole_hold_exactly_once(
    jobs: JobHarness, outcome: str, status: JobStatus, code: ErrorCode
):
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(simulate_outcome=outcome))
        job = (await handle.result()).job
    assert job.status is status
    assert job.error is not None and job.error.code is code
    assert job.charged_amount is None
    assert job.output is None
    assert await entry_kinds(jobs, job.job_id) == [EntryKind.HOLD, EntryKind.HOLD_RELEASE]
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_a_provider_that_rejects_the_submission_fails_the_job(jobs: JobHarness):
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(simulate_outcome="no-such-outcome"))
        job = (await handle.result()).job
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code is ErrorCode.UPSTREAM_REJECTED
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_a_job_that_never_finishes_expires_at_the_deadline(jobs: JobHarness):
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(simulate_outcome="never"))
        job = (await handle.result()).job
        description = await handle.describe()
    assert job.status is JobStatus.EXPIRED
    assert job.error is not None and job.error.code is ErrorCode.DEADLINE_EXCEEDED
    assert description.close_time is not None
    ran_for = description.close_time - description.start_time
    assert timedelta(minutes=10) <= ran_for < timedelta(minutes=11)
    assert await entry_kinds(jobs, job.job_id) == [EntryKind.HOLD, EntryKind.HOLD_RELEASE]
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_an_upstream_slower_than_the_deadline_expires_even_if_it_would_succeed(
    jobs: JobHarness,
):
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(simulate_seconds=900))
        job = (await handle.result()).job
    assert job.status is JobStatus.EXPIRED
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_a_second_admission_returns_the_same_job_without_a_second_hold(jobs: JobHarness):
    request = jobs.request(idempotency_key="campaign-7")
    async with jobs.worker():
        handle, first = await jobs.start_and_admit(request)
        again, second = await jobs.start_and_admit(request)
        assert again.id == handle.id
        job = (await handle.result()).job
    assert first.replayed is False
    assert second.replayed is True
    assert second.job.job_id == first.job.job_id
    assert await entry_kinds(jobs, job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]
    assert await jobs.assert_balanced() == STARTING_BALANCE - (job.charged_amount or 0)


async def test_the_same_key_with_a_different_request_is_a_conflict(jobs: JobHarness):
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(idempotency_key="k"))
        with pytest.raises(WorkflowUpdateFailedError) as raised:
            await jobs.start_and_admit(jobs.request(idempotency_key="k", prompt="another"))
        await handle.result()
    assert isinstance(raised.value.cause, ApplicationError)
    assert raised.value.cause.type == ErrorCode.IDEMPOTENCY_CONFLICT.value


async def test_insufficient_balance_creates_no_job_and_a_retry_after_top_up_succeeds(
    jobs: JobHarness,
):
    # seedance-2-pro for 10 s holds $4.0959: two fit in $10, the third does not.
    expensive = {"model": "seedance-2-pro", "duration": 10}
    async with jobs.worker():
        for n in range(2):
            handle, _ = await jobs.start_and_admit(
                jobs.request(idempotency_key=f"ok-{n}", **expensive)
            )
            await handle.result()
        balance = await jobs.assert_balanced()
        assert balance < get_model("seedance-2-pro").price_for(10)

        request = jobs.request(idempotency_key="too-much", **expensive)
        with pytest.raises(WorkflowUpdateFailedError) as raised:
            await jobs.start_and_admit(request)
        cause = raised.value.cause
        assert isinstance(cause, ApplicationError)
        assert cause.type == ErrorCode.INSUFFICIENT_BALANCE.value
        job_id = derive_job_id(jobs.caller.api_key_id, "too-much")
        rejected = jobs.env.client.get_workflow_handle(job_id)
        with pytest.raises(WorkflowFailureError):
            await rejected.result()
        assert await jobs.ledger.get_job(job_id) is None
        assert await jobs.assert_balanced() == balance

        await jobs.ledger.top_up(jobs.caller.account_id, Decimal("5"))
        handle, admission = await jobs.start_and_admit(request)
        assert admission.replayed is False
        job = (await handle.result()).job
    assert job.job_id == job_id
    assert job.status is JobStatus.SUCCEEDED
    await jobs.assert_balanced()


async def test_a_worker_restart_mid_job_loses_nothing(jobs: JobHarness):
    # No workflow cache on the first worker: the time-skipping server does not release a
    # stopped worker's sticky queue (a real server does), which would strand the next task.
    async with jobs.worker(max_cached_workflows=0):
        handle, _ = await jobs.start_and_admit(jobs.request(simulate_seconds=120))
        # Wait (in test time) until the job is upstream.
        for _ in range(100):
            record = await jobs.ledger.get_job(handle.id)
            if record is not None and record.status is JobStatus.PROCESSING:
                break
            await asyncio.sleep(0.05)
        assert record is not None and record.status is JobStatus.PROCESSING
    # The first worker is gone; a fresh one picks the job up where it was.
    async with jobs.worker():
        job = (await handle.result()).job
    assert job.status is JobStatus.SUCCEEDED
    assert await entry_kinds(jobs, job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]
    await jobs.assert_balanced()


async def test_history_size_does_not_grow_with_upstream_time(jobs: JobHarness, capsys):
    lengths = {}
    async with jobs.worker():
        for seconds in (10, 540):
            handle, _ = await jobs.start_and_admit(jobs.request(simulate_seconds=seconds))
            job = (await handle.result()).job
            assert job.status is JobStatus.SUCCEEDED
            lengths[seconds] = await jobs.history_length(handle)
    with capsys.disabled():
        for seconds, (total, from_admission) in lengths.items():
            print(
                f"\nhistory events per job, upstream {seconds:>3} s: {from_admission} after "
                f"admission ({total} in all)",
                end="",
            )
        print()
    assert lengths[10][1] == lengths[540][1]
    # However long upstream takes, the whole history stays the same small size.
    assert abs(lengths[10][0] - lengths[540][0]) <= 3


async def test_a_run_that_is_never_admitted_ends_without_a_job(jobs: JobHarness):
    request = jobs.request()
    job_id = derive_job_id(jobs.caller.api_key_id, "orphan")
    async with jobs.worker():
        handle = await jobs.env.client.start_workflow(
            VideoJobWorkflow.run,
            JobInput(
                job_id=job_id,
                account_id=jobs.caller.account_id,
                api_key_id=jobs.caller.api_key_id,
                request=request,
                timings=jobs.timings,
            ),
            id=job_id,
            task_queue=jobs.task_queue,
        )
        with pytest.raises(WorkflowFailureError) as raised:
            await handle.result()
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "admission_timeout"
    assert await jobs.ledger.get_job(job_id) is None
    assert await jobs.assert_balanced() == STARTING_BALANCE
