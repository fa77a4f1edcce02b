"""Kling and Seedance jobs through the whole workflow against the fal queue double over HTTPS:
the endpoint and body fal receives, the rehosted bytes, and fal's failures ending jobs right."""

from decimal import Decimal

import pytest

from kyma_video.errors import ErrorCode, JobStatus
from kyma_video.settings import ProviderLimits
from ledger import EntryKind
from providers.catalog import get_model
from tests.providers.doubles.fal import FalQueueDouble, Fault, Operation, Outcome, Script
from tests.workflows.conftest import STARTING_BALANCE
from tests.workflows.harness import JobHarness

IMAGE = "https://images.example.test/first-frame.png"
FAL_MODELS = [
    "kling-2.5-pro",
    "kling-3-pro",
    "kling-3-pro-audio",
    "seedance-2-pro",
    "seedance-2-fast",
]


@pytest.mark.parametrize("model", FAL_MODELS)
@pytest.mark.parametrize("image", [False, True])
async def test_each_fal_model_runs_to_success_on_fal(
    jobs: JobHarness, fal: FalQueueDouble, model: str, image: bool
):
    spec = get_model(model)
    request = jobs.request(
        model=model, duration=5, image_url=IMAGE if image else None, negative_prompt="blur"
    )
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(request)
        job = (await handle.result()).job
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert (job.provider, job.simulated) == ("fal", False)
    [submit] = fal.requests_to(Operation.SUBMIT)
    assert submit.path == "/" + spec.endpoint(with_image=image)
    expected = {
        "prompt": request.prompt,
        "duration": str(spec.upstream_duration(5)),
        "negative_prompt": "blur",
        **spec.fixed_params,
    }
    if image:
        expected[spec.image_field] = IMAGE
    assert submit.body == expected
    assert await jobs.blobs.read(f"{job.job_id}.mp4") == fal.video
    assert job.output is not None
    billable = min(Decimal(5), job.output.duration_seconds)
    assert job.charged_amount == spec.per_second_usd * billable
    kinds = [e.kind for e in await jobs.ledger.entries_for_job(job.job_id)]
    assert kinds == [EntryKind.HOLD, EntryKind.USAGE]
    await jobs.assert_balanced()


@pytest.mark.parametrize(
    ("outcome", "status", "code"),
    [
        (Outcome.CONTENT_REJECTED, JobStatus.FAILED, ErrorCode.CONTENT_REJECTED),
        (Outcome.MODEL_ERROR, JobStatus.FAILED, ErrorCode.UPSTREAM_FAILED),
    ],
)
async def test_fal_failures_end_the_job_and_release_the_hold(
    jobs: JobHarness, fal: FalQueueDouble, outcome: Outcome, status: JobStatus, code: ErrorCode
):
    request = jobs.request(model="kling-3-pro", prompt=f"a tower ({outcome})")
    fal.script(request.prompt, Script(polls=2, outcome=outcome))
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(request)
        job = (await handle.result()).job
    assert job.status is status
    assert job.error is not None and job.error.code is code
    kinds = [e.kind for e in await jobs.ledger.entries_for_job(job.job_id)]
    assert kinds == [EntryKind.HOLD, EntryKind.HOLD_RELEASE]
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_a_job_fal_never_finishes_expires_is_cancelled_upstream_and_refunded(
    jobs: JobHarness, fal: FalQueueDouble
):
    request = jobs.request(model="seedance-2-fast", prompt="a never-ending render")
    fal.script(request.prompt, Script(polls=None))
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(request)
        job = (await handle.result()).job
    assert job.status is JobStatus.EXPIRED
    assert len(fal.requests_to(Operation.CANCEL)) == 1
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_an_output_url_that_expired_before_rehosting_refunds_the_job(
    jobs: JobHarness, fal: FalQueueDouble
):
    request = jobs.request(model="kling-2.5-pro", prompt="a short-lived output")
    fal.script(request.prompt, Script(polls=1, media_ttl_seconds=0))
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(request)
        job = (await handle.result()).job
    assert job.status is JobStatus.REFUNDED
    assert job.error is not None and job.error.code is ErrorCode.REHOST_FAILED
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_rate_limits_and_platform_errors_shorter_than_the_deadline_still_succeed(
    jobs: JobHarness, fal: FalQueueDouble
):
    fal.inject(Operation.SUBMIT, Fault.rate_limited("2"), times=3)
    fal.inject(Operation.STATUS, Fault.platform(503), times=3)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(model="kling-3-pro"))
        job = (await handle.result()).job
    assert job.status is JobStatus.SUCCEEDED
    assert len(fal.jobs) == 1  # refused submissions made no job upstream


async def test_a_burst_larger_than_the_fal_concurrency_never_exceeds_it_upstream(
    jobs: JobHarness, fal: FalQueueDouble
):
    jobs.settings_overrides = {"provider_limits": {"fal": ProviderLimits(concurrency=2)}}
    fal.inject(Operation.SUBMIT, Fault.slow(0.1), times=8)
    fal.inject(Operation.STATUS, Fault.slow(0.1), times=16)
    async with jobs.worker():
        started = [await jobs.start_and_admit(jobs.request(model="kling-3-pro")) for _ in range(8)]
        finished = [await handle.result() for handle, _ in started]
    assert all(outcome.job.status is JobStatus.SUCCEEDED for outcome in finished)
    assert fal.max_in_flight == 2
