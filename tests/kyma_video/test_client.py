"""The typed client's update-with-start admission, on the real ``temporal`` dev server (the
time-skipping server cannot run update-with-start)."""

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from blob import LocalBlobStore
from kyma_video import search_attributes
from kyma_video.client import derive_job_id
from kyma_video.errors import ErrorCode, JobStatus, KymaError
from ledger import EntryKind, Ledger
from providers.catalog import get_model
from tests.workflows.harness import JobHarness, make_caller, wall_clock
from workflows import JobTimings, VideoJobWorkflow


@pytest.fixture
async def live(
    dev_env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> AsyncIterator[JobHarness]:
    yield JobHarness(
        env=dev_env,
        ledger=sqlite_ledger,
        blobs=LocalBlobStore(tmp_path / "blobs", "http://files.test/files"),
        caller=await make_caller(sqlite_ledger, Decimal("10")),
        clock=wall_clock,
        timings=JobTimings(poll_interval_seconds=0.5),
    )


async def kinds(live: JobHarness, job_id: str) -> list[EntryKind]:
    return [entry.kind for entry in await live.ledger.entries_for_job(job_id)]


async def test_a_keyed_request_is_admitted_once_and_replayed_before_and_after_it_finishes(
    live: JobHarness,
):
    client = live.job_client()
    request = live.request(idempotency_key="spring-asset-7", simulate_seconds=1)
    async with live.worker():
        first = await client.start_job(request, live.caller)
        while_running = await client.start_job(request, live.caller)
        outcome = await live.env.client.get_workflow_handle_for(
            VideoJobWorkflow.run, first.job.job_id
        ).result()
        after_finish = await client.start_job(request, live.caller)

    assert first.replayed is False
    assert first.job.job_id == derive_job_id(live.caller.api_key_id, "spring-asset-7")
    assert while_running.replayed is True
    assert while_running.job.job_id == first.job.job_id
    assert outcome.job.status is JobStatus.SUCCEEDED
    assert after_finish.replayed is True
    assert after_finish.job == outcome.job
    assert await kinds(live, first.job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]
    await live.assert_balanced()


async def test_concurrent_requests_with_one_key_place_one_hold(live: JobHarness):
    client = live.job_client()
    request = live.request(idempotency_key="burst", simulate_seconds=1)
    async with live.worker():
        admissions = await asyncio.gather(
            *(client.start_job(request, live.caller) for _ in range(8))
        )
        await live.env.client.get_workflow_handle(admissions[0].job.job_id).result()
    assert len({a.job.job_id for a in admissions}) == 1
    assert [a.replayed for a in admissions].count(False) == 1
    assert await kinds(live, admissions[0].job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]
    await live.assert_balanced()


async def test_the_same_key_with_another_request_is_refused_while_running_and_after(
    live: JobHarness,
):
    client = live.job_client()
    original = live.request(idempotency_key="k1", simulate_seconds=1)
    changed = live.request(idempotency_key="k1", prompt="something else", simulate_seconds=1)
    async with live.worker():
        admission = await client.start_job(original, live.caller)
        with pytest.raises(KymaError) as while_running:
            await client.start_job(changed, live.caller)
        await live.env.client.get_workflow_handle(admission.job.job_id).result()
        with pytest.raises(KymaError) as after_finish:
            await client.start_job(changed, live.caller)
    assert while_running.value.code is ErrorCode.IDEMPOTENCY_CONFLICT
    assert after_finish.value.code is ErrorCode.IDEMPOTENCY_CONFLICT
    assert await kinds(live, admission.job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]


async def test_a_refused_admission_creates_no_job_and_the_same_key_works_after_a_top_up(
    live: JobHarness,
):
    client = live.job_client()
    # veo-3 for 10 s holds $5.40; two do not fit in $10.
    request = live.request(model="veo-3", duration=10, simulate_seconds=1)
    async with live.worker():
        first = await client.start_job(
            request.model_copy(update={"idempotency_key": "a"}), live.caller
        )
        retry = request.model_copy(update={"idempotency_key": "b"})
        with pytest.raises(KymaError) as refused:
            await client.start_job(retry, live.caller)
        assert refused.value.code is ErrorCode.INSUFFICIENT_BALANCE
        assert await live.ledger.get_job(derive_job_id(live.caller.api_key_id, "b")) is None

        await live.ledger.top_up(live.caller.account_id, Decimal("5"))
        admitted = await client.start_job(retry, live.caller)
        for admission in (first, admitted):
            await live.env.client.get_workflow_handle(admission.job.job_id).result()
    assert admitted.replayed is False
    job = await live.ledger.get_job(admitted.job.job_id)
    assert job is not None and job.status is JobStatus.SUCCEEDED
    await live.assert_balanced()


async def test_requests_without_a_key_are_separate_jobs(live: JobHarness):
    client = live.job_client()
    request = live.request(simulate_seconds=0)
    async with live.worker():
        a = await client.start_job(request, live.caller)
        b = await client.start_job(request, live.caller)
        for admission in (a, b):
            await live.env.client.get_workflow_handle(admission.job.job_id).result()
    assert a.job.job_id != b.job.job_id
    assert not a.replayed and not b.replayed


async def test_operators_can_filter_and_read_runs_in_the_temporal_ui(live: JobHarness):
    client = live.job_client()
    request = live.request(
        model="kling-3-pro", prompt="a glass tower at sunset", simulate_seconds=1
    )
    async with live.worker():
        admission = await client.start_job(request, live.caller)
        handle = live.env.client.get_workflow_handle_for(VideoJobWorkflow.run, admission.job.job_id)
        queried = await handle.query(VideoJobWorkflow.status)
        await handle.result()
        description = await handle.describe()
    assert queried is not None and queried.job_id == admission.job.job_id
    attributes = description.typed_search_attributes
    assert attributes.get(search_attributes.MODEL) == "kling-3-pro"
    assert attributes.get(search_attributes.PROVIDER) == "simulated"
    assert attributes.get(search_attributes.ACCOUNT) == live.caller.account_id
    assert attributes.get(search_attributes.JOB_STATUS) == JobStatus.SUCCEEDED.value
    summary = await description.static_summary()
    assert summary is not None and summary.startswith("kling-3-pro · 5s · text-to-video")
    assert get_model("kling-3-pro").per_second_usd * 5 == admission.job.estimated_cost
