"""Veo jobs through the whole workflow against the Vertex AI double over HTTPS: routed to
Vertex, the exact request Vertex receives, and the inline (base64) video going from the
provider into blob storage inside one activity, never through workflow history."""

from decimal import Decimal

import pytest

from kyma_video.errors import ErrorCode, JobStatus
from ledger import EntryKind
from providers.catalog import get_model
from tests.providers.doubles.vertex import (
    VertexDouble,
    filtered,
    never,
    rate_limited,
    sample_mp4,
    unavailable,
)
from tests.workflows.conftest import STARTING_BALANCE
from tests.workflows.harness import JobHarness


@pytest.mark.parametrize("model", ["veo-3-fast", "veo-3"])
@pytest.mark.parametrize("image", [False, True])
async def test_each_veo_model_runs_to_success_on_vertex(
    jobs: JobHarness, vertex: VertexDouble, model: str, image: bool
):
    image_url = vertex.image_url("first-frame.png") if image else None
    request = jobs.request(model=model, duration=10, image_url=image_url, seed=42)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(request)
        job = (await handle.result()).job
        history = await handle.fetch_history()
    assert job.status is JobStatus.SUCCEEDED
    assert (job.provider, job.simulated) == ("vertex", False)
    [predict] = vertex.calls("predictLongRunning")
    assert predict.path.endswith(f"/models/{get_model(model).text_to_video}:predictLongRunning")
    parameters = predict.body["parameters"]
    assert parameters["durationSeconds"] == 8  # 10 s maps onto Veo's longest, 8 s
    assert parameters["seed"] == 42
    assert parameters["generateAudio"] is (model == "veo-3")
    assert ("image" in predict.body["instances"][0]) is image
    assert await jobs.blobs.read(f"{job.job_id}.mp4") == sample_mp4()
    # The video was inline in Vertex's answer, but never in the workflow's history.
    assert len(history.to_json()) < 200_000
    assert job.output is not None
    billable = min(Decimal(10), job.output.duration_seconds)
    assert job.charged_amount == get_model(model).per_second_usd * billable
    kinds = [e.kind for e in await jobs.ledger.entries_for_job(job.job_id)]
    assert kinds == [EntryKind.HOLD, EntryKind.USAGE]
    await jobs.assert_balanced()


async def test_a_safety_filtered_result_fails_the_job_and_releases_the_hold(
    jobs: JobHarness, vertex: VertexDouble
):
    vertex.script(filtered())
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(model="veo-3"))
        job = (await handle.result()).job
    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code is ErrorCode.CONTENT_REJECTED
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_an_operation_that_never_finishes_expires_and_is_refunded(
    jobs: JobHarness, vertex: VertexDouble
):
    vertex.script(never())
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(model="veo-3-fast", duration=4))
        job = (await handle.result()).job
    assert job.status is JobStatus.EXPIRED
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def test_quota_and_availability_errors_shorter_than_the_deadline_still_succeed(
    jobs: JobHarness, vertex: VertexDouble
):
    vertex.inject(rate_limited(), rate_limited(), unavailable())
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(model="veo-3", duration=6))
        job = (await handle.result()).job
    assert job.status is JobStatus.SUCCEEDED
    assert len(vertex.calls("predictLongRunning")) >= 1
