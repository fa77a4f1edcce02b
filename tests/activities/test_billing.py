"""The hold activity: routing, refusals as permanent errors, and telling a retry of the same
admission (still ours) from a replay of an earlier run's job."""

from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError

from activities import BillingActivities
from activities.messages import PlaceHoldInput
from kyma_video.errors import ErrorCode, JobStatus
from kyma_video.jobs import VideoRequest
from ledger import EntryKind
from providers.registry import ProviderRegistry
from tests.activities.conftest import Context, job_id


def hold_input(ctx: Context, job: str, **body: object) -> PlaceHoldInput:
    request = VideoRequest.from_body({"model": "kling-3-pro", "prompt": "a tower", **body})
    return PlaceHoldInput(
        job_id=job,
        account_id=ctx.caller.account_id,
        api_key_id=ctx.caller.api_key_id,
        request=request,
        fingerprint=request.fingerprint(),
    )


async def test_a_hold_creates_a_pending_job_routed_to_the_configured_provider(ctx: Context):
    placed = await ctx.env().run(BillingActivities(ctx.deps).place_hold, hold_input(ctx, job_id()))
    assert placed.created is True
    assert placed.job.status is JobStatus.PENDING
    assert placed.job.provider == "simulated"
    assert placed.job.simulated is True
    assert placed.job.estimated_cost == Decimal("0.756000")
    record = await ctx.deps.ledger.get_job(placed.job.job_id)
    assert record is not None
    assert record.endpoint == "fal-ai/kling-video/v3/pro/text-to-video"
    assert record.upstream_duration == 5


async def test_a_retried_hold_in_the_same_run_is_still_that_runs_new_job(ctx: Context):
    billing = BillingActivities(ctx.deps)
    inp = hold_input(ctx, job_id())
    first = await ctx.env("run-1").run(billing.place_hold, inp)
    retried = await ctx.env("run-1").run(billing.place_hold, inp)
    replayed = await ctx.env("run-2").run(billing.place_hold, inp)
    assert (first.created, retried.created, replayed.created) == (True, True, False)
    kinds = [e.kind for e in await ctx.deps.ledger.entries_for_job(inp.job_id)]
    assert kinds == [EntryKind.HOLD]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"model": "seedance-2-pro", "duration": 10, "idempotency_key": None}, None),
        ({"model": "hailuo-02-512p"}, ErrorCode.INVALID_REQUEST),
    ],
)
async def test_refusals_are_permanent_and_leave_no_job(
    ctx: Context, body: dict[str, object], code: ErrorCode | None
):
    billing = BillingActivities(ctx.deps)
    if code is None:
        # Two 10 s seedance-2-pro holds ($4.0959 each) fit in $10; the third does not.
        for _ in range(2):
            await ctx.env().run(billing.place_hold, hold_input(ctx, job_id(), **body))
        code = ErrorCode.INSUFFICIENT_BALANCE
    refused = job_id()
    with pytest.raises(ApplicationError) as raised:
        await ctx.env().run(billing.place_hold, hold_input(ctx, refused, **body))
    assert raised.value.type == code.value
    assert raised.value.non_retryable is True
    assert await ctx.deps.ledger.get_job(refused) is None


async def test_a_model_without_a_configured_provider_is_refused(ctx: Context):
    deps = type(ctx.deps)(
        ledger=ctx.deps.ledger, providers=ProviderRegistry(), blobs=ctx.deps.blobs
    )
    with pytest.raises(ApplicationError) as raised:
        await ctx.env().run(BillingActivities(deps).place_hold, hold_input(ctx, job_id()))
    assert raised.value.type == ErrorCode.INVALID_MODEL.value
    assert raised.value.non_retryable is True


async def test_settling_a_job_the_other_way_is_a_permanent_error_not_a_retry_loop(ctx: Context):
    from activities.messages import CaptureInput, RehostedVideo, ReleaseInput
    from kyma_video.jobs import JobError, JobOutput

    billing = BillingActivities(ctx.deps)
    placed = await ctx.env().run(billing.place_hold, hold_input(ctx, job_id()))
    error = JobError(code=ErrorCode.UPSTREAM_FAILED, message="no")
    release = ReleaseInput(job_id=placed.job.job_id, status=JobStatus.FAILED, error=error)
    released = await ctx.env().run(billing.release_hold, release)
    assert released.status is JobStatus.FAILED
    video = RehostedVideo(
        key="k.mp4",
        output=JobOutput(
            url="http://files.test/files/k.mp4",
            content_type="video/mp4",
            size_bytes=1,
            duration_seconds=Decimal(5),
            sha256="0" * 64,
        ),
    )
    with pytest.raises(ApplicationError) as raised:
        await ctx.env().run(
            billing.capture_usage, CaptureInput(job_id=released.job_id, video=video)
        )
    assert raised.value.non_retryable is True
    assert raised.value.type == ErrorCode.DB_ERROR.value
    assert await ctx.deps.ledger.audit(ctx.caller.account_id) == (Decimal(10), Decimal(10))
