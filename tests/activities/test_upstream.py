"""Submitting and following upstream jobs, under at-least-once delivery."""

from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities import BillingActivities, UpstreamActivities
from activities.errors import UPSTREAM_PENDING
from activities.messages import AwaitInput
from kyma_video.errors import ErrorCode, JobStatus
from tests.activities.conftest import Context, job_id
from tests.activities.test_billing import hold_input


async def admitted(ctx: Context, **body: object) -> str:
    placed = await ctx.env().run(
        BillingActivities(ctx.deps).place_hold, hold_input(ctx, job_id(), **body)
    )
    return placed.job.job_id


async def test_a_retried_submit_does_not_submit_twice(ctx: Context):
    job = await admitted(ctx, seed=42, aspect_ratio="9:16")
    upstream = UpstreamActivities(ctx.deps)
    first = await ctx.env().run(upstream.submit_upstream, job)
    again = await ctx.env().run(upstream.submit_upstream, job)
    assert len(ctx.provider.submitted) == 1
    assert again.upstream == first.upstream
    assert first.job.status is JobStatus.PROCESSING
    sent = ctx.provider.submitted[0]
    # Pass-through params arrive unchanged, next to the model's fixed ones.
    assert sent.params == {"seed": 42, "aspect_ratio": "9:16", "generate_audio": False}
    assert sent.endpoint == "fal-ai/kling-video/v3/pro/text-to-video"
    assert sent.duration_seconds == 5


async def test_awaiting_a_running_job_asks_to_be_retried_quietly(ctx: Context):
    job = await admitted(ctx, simulate_seconds=30)
    upstream = UpstreamActivities(ctx.deps)
    submitted = await ctx.env().run(upstream.submit_upstream, job)
    ctx.clock.advance(10)
    with pytest.raises(ApplicationError) as raised:
        await ctx.env().run(
            upstream.await_upstream,
            AwaitInput(upstream=submitted.upstream, poll_interval_seconds=5),
        )
    assert raised.value.type == UPSTREAM_PENDING
    assert raised.value.non_retryable is False
    assert raised.value.category is ApplicationErrorCategory.BENIGN
    # The simulated upstream says 20 s remain; the hint is honoured within bounds.
    assert raised.value.next_retry_delay == timedelta(seconds=20)

    ctx.clock.advance(20)
    media = await ctx.env().run(
        upstream.await_upstream, AwaitInput(upstream=submitted.upstream, poll_interval_seconds=5)
    )
    assert media.url.startswith("simulated://")


async def test_an_upstream_failure_is_permanent_and_keeps_its_reason(ctx: Context):
    job = await admitted(ctx, simulate_seconds=0, simulate_outcome="reject")
    upstream = UpstreamActivities(ctx.deps)
    submitted = await ctx.env().run(upstream.submit_upstream, job)
    with pytest.raises(ApplicationError) as raised:
        await ctx.env().run(
            upstream.await_upstream,
            AwaitInput(upstream=submitted.upstream, poll_interval_seconds=5),
        )
    assert raised.value.type == ErrorCode.CONTENT_REJECTED.value
    assert raised.value.non_retryable is True


async def test_cancel_finds_the_upstream_job_from_the_ledger(ctx: Context):
    upstream = UpstreamActivities(ctx.deps)
    never_submitted = await admitted(ctx)
    await ctx.env().run(upstream.cancel_upstream, never_submitted)
    assert ctx.provider.cancelled == []

    job = await admitted(ctx)
    submitted = await ctx.env().run(upstream.submit_upstream, job)
    await ctx.env().run(upstream.cancel_upstream, job)
    assert ctx.provider.cancelled == [submitted.upstream]
