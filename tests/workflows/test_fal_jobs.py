"""Kling and Seedance jobs through the whole workflow against the fal queue double over HTTPS:
the endpoint and body fal receives, the rehosted bytes, and fal's failures ending jobs right."""

from decimal import Decimal

import pytest

from kyma_video.errors import ErrorCode, JobStatus
from ledger import EntryKind
from providers.catalog import get_model
from tests.providers.doubles.fal import FalQueueDouble, Operation, Outcome, Script
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
