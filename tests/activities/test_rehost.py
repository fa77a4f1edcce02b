"""Rehosting inside one activity: bytes go from the provider to blob storage, checked on the way."""

from decimal import Decimal

import pytest
from temporalio.exceptions import ApplicationError

from activities import RehostActivities, UpstreamActivities
from activities.messages import AwaitInput, RehostInput
from activities.rehost import video_key
from kyma_video.errors import ErrorCode
from providers.base import ProviderError
from tests.activities.conftest import Context
from tests.activities.test_upstream import admitted


async def finished_upstream(ctx: Context, **body: object) -> RehostInput:
    job = await admitted(ctx, simulate_seconds=0, **body)
    upstream = UpstreamActivities(ctx.deps)
    submitted = await ctx.env().run(upstream.submit_upstream, job)
    media = await ctx.env().run(
        upstream.await_upstream, AwaitInput(upstream=submitted.upstream, poll_interval_seconds=1)
    )
    return RehostInput(
        job_id=job, upstream=submitted.upstream, media=media, max_video_bytes=50_000_000
    )


async def test_the_video_is_stored_under_the_job_id_with_its_measurements(ctx: Context):
    inp = await finished_upstream(ctx, simulate_delivered_seconds=2.5)
    rehosted = await ctx.env().run(RehostActivities(ctx.deps).rehost_output, inp)
    again = await ctx.env().run(RehostActivities(ctx.deps).rehost_output, inp)
    assert rehosted.key == again.key == video_key(inp.job_id)
    assert rehosted.output.url == f"http://files.test/files/{inp.job_id}.mp4"
    assert abs(rehosted.output.duration_seconds - Decimal("2.5")) < Decimal("0.05")
    stored = await ctx.deps.blobs.read(rehosted.key)
    assert len(stored) == rehosted.output.size_bytes


async def test_output_that_is_not_a_video_is_refused_for_good_and_not_stored(ctx: Context):
    inp = await finished_upstream(ctx, simulate_outcome="invalid_output")
    with pytest.raises(ApplicationError) as raised:
        await ctx.env().run(RehostActivities(ctx.deps).rehost_output, inp)
    assert raised.value.type == ErrorCode.INVALID_OUTPUT.value
    assert raised.value.non_retryable is True
    assert not await ctx.deps.blobs.exists(video_key(inp.job_id))


async def test_an_unreachable_media_host_is_worth_retrying(ctx: Context):
    inp = await finished_upstream(ctx, simulate_outcome="media_unavailable")
    with pytest.raises(ApplicationError) as raised:
        await ctx.env().run(RehostActivities(ctx.deps).rehost_output, inp)
    assert raised.value.type == ErrorCode.REHOST_FAILED.value
    assert raised.value.non_retryable is False
    assert isinstance(raised.value.__cause__, ProviderError)
