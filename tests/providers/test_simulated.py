"""The simulated provider behaves like a stateless upstream on a clock the test controls.

It runs for ``simulate_seconds`` of its clock, then succeeds (or fails, or is rejected, or never
finishes) as ``simulate_outcome`` asks, and delivers a real MP4 of
``simulate_delivered_seconds`` (the submitted duration by default). Everything about a job lives
in its request id, so any instance (any worker) can answer for it.
"""

import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import av
import pytest

from kyma_video.errors import ErrorCode
from providers import simulated
from providers.base import (
    MediaRef,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from providers.catalog import ProviderName
from providers.simulated import SimulatedProvider

FPS = 24
ONE_FRAME = Fraction(1, FPS)


class ManualClock:
    """An async clock that moves only when the test says so."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    async def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 3, 14, 9, 26, 53, 589000, tzinfo=UTC))


@pytest.fixture
def provider(clock: ManualClock) -> SimulatedProvider:
    return SimulatedProvider(default_seconds=3.0, clock=clock)


def submit_request(
    *, duration: int = 5, job_id: str = "vid_0123456789abcdef", **params: Any
) -> SubmitRequest:
    return SubmitRequest(
        job_id=job_id,
        model="kling-3-pro",
        endpoint="fal-ai/kling-video/v3/pro/text-to-video",
        prompt="an hourglass on a wooden desk",
        duration_seconds=duration,
        image_url=None,
        image_field="start_image_url",
        params=dict(params),
    )


def upstream(request_id: str) -> UpstreamJob:
    return UpstreamJob(
        provider=ProviderName.SIMULATED,
        endpoint="fal-ai/kling-video/v3/pro/text-to-video",
        request_id=request_id,
    )


async def start(provider: SimulatedProvider, **kwargs: Any) -> UpstreamJob:
    return upstream(await provider.submit(submit_request(**kwargs)))


async def finished(provider: SimulatedProvider, clock: ManualClock, job: UpstreamJob) -> MediaRef:
    """Let a day pass and return the finished job's media."""
    clock.advance(days=1)
    status = await provider.status(job)
    assert status.state is UpstreamState.SUCCEEDED
    assert status.media is not None
    return status.media


async def read_media(provider: SimulatedProvider, job: UpstreamJob, media: MediaRef) -> bytes:
    return b"".join([chunk async for chunk in provider.open_media(job, media)])


def mp4_duration(data: bytes) -> Fraction:
    with av.open(io.BytesIO(data), mode="r") as container:
        assert container.format.name.startswith("mov,mp4")
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.duration is not None
        return Fraction(container.duration, av.time_base)


# --- the provider's identity -----------------------------------------------------------------


def test_it_is_the_simulated_provider_and_says_so() -> None:
    provider = SimulatedProvider()
    assert provider.name is ProviderName.SIMULATED
    assert provider.simulated is True


# --- running, then finished ------------------------------------------------------------------


async def test_a_job_runs_until_simulate_seconds_have_passed_then_succeeds(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, simulate_seconds=30)

    assert (await provider.status(job)).state is UpstreamState.RUNNING
    clock.advance(seconds=29.999)
    assert (await provider.status(job)).state is UpstreamState.RUNNING

    clock.advance(seconds=0.001)
    status = await provider.status(job)
    assert status.state is UpstreamState.SUCCEEDED
    assert status.media is not None
    assert status.media.url.startswith("simulated://")
    assert status.media.content_type == "video/mp4"
    assert status.error_code is None


async def test_a_finished_job_stays_finished(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, simulate_seconds=1)
    clock.advance(seconds=1)
    first = await provider.status(job)
    clock.advance(hours=5)
    assert await provider.status(job) == first


async def test_a_running_job_hints_when_it_will_be_done(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, simulate_seconds=10)
    clock.advance(seconds=4)
    status = await provider.status(job)
    assert status.state is UpstreamState.RUNNING
    assert status.retry_after_seconds == pytest.approx(6.0)


async def test_without_simulate_seconds_a_job_runs_for_the_configured_default(
    clock: ManualClock,
) -> None:
    provider = SimulatedProvider(default_seconds=7.5, clock=clock)
    job = await start(provider)
    clock.advance(seconds=7.499)
    assert (await provider.status(job)).state is UpstreamState.RUNNING
    clock.advance(seconds=0.001)
    assert (await provider.status(job)).state is UpstreamState.SUCCEEDED


async def test_zero_simulate_seconds_finishes_at_once(provider: SimulatedProvider) -> None:
    job = await start(provider, simulate_seconds=0)
    assert (await provider.status(job)).state is UpstreamState.SUCCEEDED


async def test_only_the_injected_clock_decides_progress(
    provider: SimulatedProvider,
) -> None:
    # The wall clock moves during the test; the injected one does not.
    job = await start(provider, simulate_seconds=0.001)
    for _ in range(3):
        assert (await provider.status(job)).state is UpstreamState.RUNNING


async def test_a_never_job_is_still_running_after_a_day(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, simulate_outcome="never", simulate_seconds=1)
    clock.advance(days=1, seconds=1)
    status = await provider.status(job)
    assert status.state is UpstreamState.RUNNING
    assert status.retry_after_seconds is None
    assert status.media is None


@pytest.mark.parametrize(
    ("outcome", "code"),
    [("fail", ErrorCode.UPSTREAM_FAILED), ("reject", ErrorCode.CONTENT_REJECTED)],
)
async def test_a_failing_outcome_runs_its_time_then_fails_with_its_code(
    provider: SimulatedProvider, clock: ManualClock, outcome: str, code: ErrorCode
) -> None:
    job = await start(provider, simulate_outcome=outcome, simulate_seconds=2)
    assert (await provider.status(job)).state is UpstreamState.RUNNING
    clock.advance(seconds=2)
    status = await provider.status(job)
    assert status.state is UpstreamState.FAILED
    assert status.error_code is code
    assert status.error_message
    assert status.media is None


# --- statelessness ---------------------------------------------------------------------------


async def test_another_instance_answers_for_a_job_the_first_one_started(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, simulate_seconds=5, simulate_outcome="reject")
    other_worker = SimulatedProvider(default_seconds=600.0, clock=clock)

    assert (await other_worker.status(job)).state is UpstreamState.RUNNING
    clock.advance(seconds=5)
    status = await other_worker.status(job)
    assert status.state is UpstreamState.FAILED
    assert status.error_code is ErrorCode.CONTENT_REJECTED


async def test_another_instance_delivers_the_media_of_a_job_the_first_one_started(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, duration=2, simulate_seconds=1)
    other_worker = SimulatedProvider(clock=clock)
    media = await finished(other_worker, clock, job)
    assert abs(mp4_duration(await read_media(other_worker, job, media)) - 2) <= ONE_FRAME


async def test_every_submission_gets_its_own_request_id(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    ids = {await provider.submit(submit_request(job_id="vid_a"))}
    ids.add(await provider.submit(submit_request(job_id="vid_b")))
    clock.advance(seconds=1)
    ids.add(await provider.submit(submit_request(job_id="vid_a")))
    assert len(ids) == 3


async def test_a_job_id_containing_a_dot_can_still_be_followed(
    provider: SimulatedProvider,
) -> None:
    job = await start(provider, job_id="vid_a.b", simulate_seconds=0)
    assert (await provider.status(job)).state is UpstreamState.SUCCEEDED


# --- unknown request ids ---------------------------------------------------------------------


UNKNOWN_IDS = [
    "",
    "fal-7b3c2e",
    "sim",
    "sim.vid_1.notanumber.0.succeed.5000.0",
    "sim.vid_1.1700000000000.0.explode.5000.0",
    "fal.vid_1.1700000000000.0.succeed.5000.0",
]


@pytest.mark.parametrize("request_id", UNKNOWN_IDS)
async def test_status_of_an_unknown_request_id_is_a_permanent_provider_error(
    provider: SimulatedProvider, request_id: str
) -> None:
    with pytest.raises(ProviderError) as refused:
        await provider.status(upstream(request_id))
    assert refused.value.retryable is False


@pytest.mark.parametrize("request_id", UNKNOWN_IDS)
async def test_media_of_an_unknown_request_id_is_a_permanent_provider_error(
    provider: SimulatedProvider, request_id: str
) -> None:
    with pytest.raises(ProviderError) as refused:
        await read_media(provider, upstream(request_id), MediaRef(url="simulated://x.mp4"))
    assert refused.value.retryable is False


# --- refused submissions ---------------------------------------------------------------------


def assert_upstream_rejected(error: ProviderError) -> None:
    assert error.code is ErrorCode.UPSTREAM_REJECTED
    assert error.retryable is False


@pytest.mark.parametrize("outcome", ["explode", "SUCCEED", "", 1, None])
async def test_an_unknown_simulate_outcome_is_rejected_for_good(
    provider: SimulatedProvider, outcome: object
) -> None:
    with pytest.raises(ProviderError) as refused:
        await provider.submit(submit_request(simulate_outcome=outcome))
    assert_upstream_rejected(refused.value)


@pytest.mark.parametrize(
    "seconds",
    [-1, -0.001, "3", "fast", True, None, [3], {"s": 3}, float("nan"), float("inf"), 86400.001],
    ids=str,
)
@pytest.mark.parametrize("name", ["simulate_seconds", "simulate_delivered_seconds"])
async def test_a_negative_non_numeric_or_absurd_number_of_seconds_is_rejected_for_good(
    provider: SimulatedProvider, name: str, seconds: object
) -> None:
    params: dict[str, Any] = {name: seconds}
    with pytest.raises(ProviderError) as refused:
        await provider.submit(submit_request(**params))
    assert_upstream_rejected(refused.value)


@pytest.mark.parametrize("delivered", [0, 0.0])
async def test_zero_delivered_seconds_is_rejected_for_good(
    provider: SimulatedProvider, delivered: float
) -> None:
    with pytest.raises(ProviderError) as refused:
        await provider.submit(submit_request(simulate_delivered_seconds=delivered))
    assert_upstream_rejected(refused.value)


async def test_a_whole_day_is_the_longest_a_simulated_job_may_take(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, simulate_seconds=86400)
    clock.advance(hours=23, minutes=59, seconds=59)
    assert (await provider.status(job)).state is UpstreamState.RUNNING
    clock.advance(seconds=1)
    assert (await provider.status(job)).state is UpstreamState.SUCCEEDED


# --- media -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "params", "expected_seconds"),
    [
        (3, {}, Fraction(3)),
        (5, {"simulate_delivered_seconds": 2.5}, Fraction(5, 2)),
        (6, {"simulate_delivered_seconds": 1}, Fraction(1)),
        (4, {"simulate_delivered_seconds": 4.75, "seed": 9}, Fraction(19, 4)),
    ],
    ids=["default-is-the-submitted-duration", "2.5s", "1s", "4.75s-seeded"],
)
async def test_a_succeeded_job_delivers_a_real_mp4_of_the_delivered_duration(
    provider: SimulatedProvider,
    clock: ManualClock,
    duration: int,
    params: Mapping[str, Any],
    expected_seconds: Fraction,
) -> None:
    job = await start(provider, duration=duration, simulate_seconds=1, **params)
    data = await read_media(provider, job, await finished(provider, clock, job))
    assert data[4:8] == b"ftyp"
    assert abs(mp4_duration(data) - expected_seconds) <= ONE_FRAME


async def test_different_seeds_deliver_different_videos(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    first = await start(provider, duration=1, seed=1, simulate_seconds=0)
    second = await start(provider, duration=1, seed=2, simulate_seconds=0)
    one = await read_media(provider, first, await finished(provider, clock, first))
    two = await read_media(provider, second, await finished(provider, clock, second))
    assert one != two


async def test_a_clip_of_the_same_length_and_seed_is_rendered_once_and_served_identically(
    provider: SimulatedProvider, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real upstream hands over a finished file: serving the same clip again must not cost
    another encode (that is the provider's work, not the pipeline's), nor change a byte."""
    renders: list[float] = []
    real_render = simulated.render_mp4

    def counting_render(path: Any, seconds: float, *, seed: int) -> None:
        renders.append(seconds)
        real_render(path, seconds, seed=seed)

    monkeypatch.setattr(simulated, "render_mp4", counting_render)
    first = await start(provider, duration=1, seed=5, simulate_seconds=0, job_id="vid_a")
    again = await start(provider, duration=1, seed=5, simulate_seconds=0, job_id="vid_b")
    other = await start(provider, duration=1, seed=6, simulate_seconds=0, job_id="vid_c")
    one = await read_media(provider, first, await finished(provider, clock, first))
    two = await read_media(provider, again, await finished(provider, clock, again))
    three = await read_media(provider, other, await finished(provider, clock, other))
    assert one == two != three
    assert len(renders) == 2


async def test_invalid_output_finishes_but_delivers_bytes_that_are_not_an_mp4(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, simulate_outcome="invalid_output", simulate_seconds=1)
    data = await read_media(provider, job, await finished(provider, clock, job))
    assert data
    assert data[4:8] != b"ftyp"
    with pytest.raises(av.error.InvalidDataError):
        av.open(io.BytesIO(data))


async def test_media_unavailable_finishes_but_fetching_fails_retryably_as_rehost_failed(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    job = await start(provider, simulate_outcome="media_unavailable", simulate_seconds=1)
    media = await finished(provider, clock, job)
    with pytest.raises(ProviderError) as refused:
        await read_media(provider, job, media)
    assert refused.value.code is ErrorCode.REHOST_FAILED
    assert refused.value.retryable is True


async def test_a_positive_delivered_duration_shorter_than_a_millisecond_is_refused_or_delivered(
    provider: SimulatedProvider, clock: ManualClock
) -> None:
    try:
        job = await start(provider, simulate_delivered_seconds=0.0004, simulate_seconds=0)
    except ProviderError as error:
        assert_upstream_rejected(error)
        return
    data = await read_media(provider, job, await finished(provider, clock, job))
    assert mp4_duration(data) <= ONE_FRAME


# --- cancel ----------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["succeed", "never", "fail"])
async def test_cancelling_a_valid_job_is_a_no_op(
    provider: SimulatedProvider, clock: ManualClock, outcome: str
) -> None:
    job = await start(provider, simulate_outcome=outcome, simulate_seconds=2)
    before: UpstreamStatus = await provider.status(job)
    await provider.cancel(job)
    assert await provider.status(job) == before
    clock.advance(seconds=2)
    await provider.cancel(job)
    expected = {
        "succeed": UpstreamState.SUCCEEDED,
        "never": UpstreamState.RUNNING,
        "fail": UpstreamState.FAILED,
    }[outcome]
    assert (await provider.status(job)).state is expected
