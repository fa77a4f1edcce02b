"""Hailuo jobs through the whole workflow against the MiniMax double over HTTPS: routed to
MiniMax, the exact body MiniMax receives, the rehosted bytes equal to what it served, and its
failures ending jobs in the right status with the right ledger entries."""

from decimal import Decimal

import pytest

from kyma_video.errors import ErrorCode, JobStatus
from ledger import EntryKind
from providers.catalog import get_model
from tests.providers.doubles.minimax import (
    Endpoint,
    Fault,
    MiniMaxDouble,
    TaskScript,
)
from tests.workflows.conftest import STARTING_BALANCE
from tests.workflows.harness import JobHarness

IMAGE = "https://images.example.test/first-frame.png"


@pytest.mark.parametrize(
    ("model", "image"),
    [
        ("hailuo-02-512p", True),
        ("hailuo-02-768p", False),
        ("hailuo-02-768p", True),
        ("hailuo-02-1080p", False),
        ("hailuo-02-1080p", True),
    ],
)
async def test_each_hailuo_model_runs_to_success_on_minimax(
    jobs: JobHarness, minimax: MiniMaxDouble, model: str, image: bool
):
    request = jobs.request(
        model=model, duration=5, image_url=IMAGE if image else None, prompt_optimizer=False
    )
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(request)
        job = (await handle.result()).job
    assert job.status is JobStatus.SUCCEEDED
    assert (job.provider, job.simulated) == ("minimax", False)
    [create] = minimax.requests_to(Endpoint.CREATE)
    expected = {
        "model": "MiniMax-Hailuo-02",
        "prompt": request.prompt,
        "duration": 6,
        "resolution": get_model(model).resolution,
        "prompt_optimizer": False,
    }
    if image:
        expected["first_frame_image"] = IMAGE
    assert create.body == expected
    assert await jobs.blobs.read(f"{job.job_id}.mp4") == minimax.video
    assert job.output is not None
    delivered = job.output.duration_seconds
    assert job.charged_amount == get_model(model).per_second_usd * min(Decimal(5), delivered)
    kinds = [e.kind for e in await jobs.ledger.entries_for_job(job.job_id)]
    assert kinds == [EntryKind.HOLD, EntryKind.USAGE]
    await jobs.assert_balanced()


async def test_a_content_rejection_fails_the_job_and_releases_the_hold(
    jobs: JobHarness, minimax: MiniMaxDouble
):
    minimax.task_script = TaskScript(running_polls=1, fail=True, fail_code=1026)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(model="hailuo-02-768p"))
        job = (await handle.result()).job
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code is ErrorCode.CONTENT_REJECTED
    kinds = [e.kind for e in await jobs.ledger.entries_for_job(job.job_id)]
    assert kinds == [EntryKind.HOLD, EntryKind.HOLD_RELEASE]
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_a_burst_of_rate_limits_shorter_than_the_deadline_still_succeeds(
    jobs: JobHarness, minimax: MiniMaxDouble
):
    minimax.inject(Endpoint.CREATE, Fault.base_resp(1002), times=3)
    minimax.inject(Endpoint.QUERY, Fault.http(503), times=3)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(model="hailuo-02-768p"))
        job = (await handle.result()).job
    assert job.status is JobStatus.SUCCEEDED
    # Refused submissions created no task upstream: exactly one job was made.
    assert len(minimax.tasks) == 1
    assert await jobs.assert_balanced() == STARTING_BALANCE - (job.charged_amount or Decimal(0))
