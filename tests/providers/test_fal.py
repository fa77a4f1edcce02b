"""The fal adapter against a protocol-faithful double of fal's queue, over real HTTPS.

The double (``doubles.fal``) checks every request as fal would and records what it refused as a
violation; the ``double`` fixture fails any test that leaves one behind. The adapter trusts the
double's test CA through ``SSL_CERT_FILE`` and fetches media through the deployment's SSRF-guarded
fetcher (loopback allowed, as for every local double). Throughout, the fal key must never appear
in an exception, a repr or a log line.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import JsonValue, SecretStr
from starlette.applications import Starlette
from starlette.routing import Mount

from kyma_video.errors import ErrorCode
from kyma_video.settings import Settings
from providers.base import (
    MediaRef,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from providers.catalog import CATALOG, InputMode, ProviderName
from providers.fal import FalProvider, from_settings
from providers.http_media import media_client, media_fetcher
from tests.providers.doubles.fal import (
    MODERATION_TYPE,
    FalQueueDouble,
    Fault,
    Operation,
    Outcome,
    Script,
    new_key,
    sample_video,
)
from tests.providers.doubles.https import ca_bundle, serve_https

KEY = new_key()
FAL_MODELS = (
    "kling-2.5-pro",
    "kling-3-pro",
    "kling-3-pro-audio",
    "seedance-2-pro",
    "seedance-2-fast",
)
IMAGE_URL = "https://images.example.test/first-frame.png"
REQUESTED_SECONDS = 7

#: ``make_fal(key=..., timeout=..., url=...)``: a new adapter, closed after the test.
MakeFal = Callable[..., FalProvider]


# Fixtures.


@pytest.fixture(autouse=True)
def key_never_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test runs with DEBUG logging captured, and no record (message or traceback) of
    its setup or call may contain the key."""
    caplog.set_level(logging.DEBUG)
    yield
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in [*caplog.get_records("setup"), *caplog.get_records("call")]:
        assert KEY not in formatter.format(record)


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle()))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.fixture
async def served(trust_test_ca: None) -> AsyncIterator[tuple[FalQueueDouble, str]]:
    double = FalQueueDouble(KEY, video=sample_video())
    async with serve_https(double) as url:
        yield double, url
    assert double.violations == []


@pytest.fixture
def double(served: tuple[FalQueueDouble, str]) -> FalQueueDouble:
    return served[0]


@pytest.fixture
def queue_url(served: tuple[FalQueueDouble, str]) -> str:
    return served[1]


@pytest.fixture
async def media_http(trust_test_ca: None) -> AsyncIterator[httpx.AsyncClient]:
    client = media_client(Settings(allow_private_media_urls=True))
    yield client
    await client.aclose()


@pytest.fixture
async def make_fal(queue_url: str, media_http: httpx.AsyncClient) -> AsyncIterator[MakeFal]:
    """Builds adapters on the double, as a worker would after any restart."""
    built: list[FalProvider] = []
    fetch = media_fetcher(Settings(allow_private_media_urls=True), media_http)

    def make(*, key: str = KEY, timeout: float = 5.0, url: str | None = None) -> FalProvider:
        provider = FalProvider(
            key=SecretStr(key),
            queue_url=url or queue_url,
            fetch_media=fetch,
            request_timeout_seconds=timeout,
        )
        assert key not in repr(provider)
        built.append(provider)
        return provider

    yield make
    for provider in built:
        await provider.aclose()


@pytest.fixture
def fal(make_fal: MakeFal) -> FalProvider:
    return make_fal()


# Helpers.


def submit_request(
    model: str,
    *,
    mode: InputMode = InputMode.TEXT,
    prompt: str = "a red fox running through snow",
    params: dict[str, JsonValue] | None = None,
    seconds: int = REQUESTED_SECONDS,
) -> SubmitRequest:
    """Exactly what ``activities.upstream.submit_upstream`` sends for a job of ``model``."""
    spec = CATALOG[model]
    with_image = mode is InputMode.IMAGE
    return SubmitRequest(
        job_id="job-1",
        model=model,
        endpoint=spec.endpoint(with_image=with_image),
        prompt=prompt,
        duration_seconds=spec.upstream_duration(seconds),
        image_url=IMAGE_URL if with_image else None,
        image_field=spec.image_field,
        params={**(params or {}), **spec.fixed_params},
    )


def upstream(request: SubmitRequest, request_id: str) -> UpstreamJob:
    return UpstreamJob(provider=ProviderName.FAL, endpoint=request.endpoint, request_id=request_id)


async def submitted(
    fal: FalProvider, model: str = "kling-3-pro", **kwargs: Any
) -> tuple[SubmitRequest, UpstreamJob]:
    request = submit_request(model, **kwargs)
    return request, upstream(request, await fal.submit(request))


async def read_all(chunks: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in chunks])


def assert_secret_free(error: BaseException) -> None:
    """Neither the error nor anything in its chain mentions the key."""
    seen: BaseException | None = error
    while seen is not None:
        assert KEY not in str(seen)
        assert KEY not in repr(seen)
        seen = seen.__cause__ or seen.__context__


async def provider_error(call: Awaitable[object]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    assert_secret_free(caught.value)
    return caught.value


async def poll_until_done(fal: FalProvider, job: UpstreamJob, *, limit: int = 10) -> UpstreamStatus:
    for _ in range(limit):
        status = await fal.status(job)
        if status.state is not UpstreamState.RUNNING:
            return status
    raise AssertionError(f"{job.request_id} still running after {limit} polls")


def expected_body(request: SubmitRequest) -> dict[str, Any]:
    body: dict[str, Any] = {
        **request.params,
        "prompt": request.prompt,
        "duration": str(request.duration_seconds),
    }
    if request.image_url is not None:
        body[request.image_field] = request.image_url
    return body


# Every model, both modes: the right endpoint, the right body, a video.


@pytest.mark.parametrize("mode", [InputMode.TEXT, InputMode.IMAGE])
@pytest.mark.parametrize("model", FAL_MODELS)
async def test_each_model_submits_its_input_and_delivers_the_video(
    fal: FalProvider, double: FalQueueDouble, queue_url: str, model: str, mode: InputMode
) -> None:
    request = submit_request(model, mode=mode)

    request_id = await fal.submit(request)

    [posted] = double.requests_to(Operation.SUBMIT)
    assert posted.path == f"/{request.endpoint}"
    assert posted.headers["authorization"] == "Key <valid>"
    assert posted.body == expected_body(request)
    assert isinstance(posted.body["duration"], str)

    job = upstream(request, request_id)
    assert (await fal.status(job)).state is UpstreamState.RUNNING
    done = await fal.status(job)
    assert done.state is UpstreamState.SUCCEEDED
    assert done.media == MediaRef(
        url=double.media_url(queue_url, request_id), content_type="video/mp4"
    )
    assert done.media is not None
    assert await read_all(fal.open_media(job, done.media)) == double.video


@pytest.mark.parametrize(
    ("model", "duration", "image_field", "generate_audio"),
    [
        ("kling-2.5-pro", "10", "image_url", None),
        ("kling-3-pro", "7", "start_image_url", False),
        ("kling-3-pro-audio", "7", "start_image_url", True),
        ("seedance-2-pro", "7", "image_url", None),
        ("seedance-2-fast", "7", "image_url", None),
    ],
)
async def test_the_body_speaks_each_endpoints_dialect(
    fal: FalProvider,
    double: FalQueueDouble,
    model: str,
    duration: str,
    image_field: str,
    generate_audio: bool | None,
) -> None:
    await fal.submit(submit_request(model, mode=InputMode.IMAGE))

    [posted] = double.requests_to(Operation.SUBMIT)
    assert posted.body["duration"] == duration
    assert posted.body[image_field] == IMAGE_URL
    assert posted.body.get("generate_audio") == generate_audio
    if model.startswith("seedance"):
        assert posted.body["resolution"] == "720p"


async def test_pass_through_params_arrive_unchanged(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    params: dict[str, JsonValue] = {
        "seed": 42,
        "aspect_ratio": "9:16",
        "negative_prompt": "blurry, watermark",
        "camera_wobble": {"x": 0.25, "modes": ["pan", "tilt"]},
    }

    _, job = await submitted(fal, "kling-3-pro", params=params)

    [posted] = double.requests_to(Operation.SUBMIT)
    assert {name: posted.body[name] for name in params} == params
    assert posted.body["generate_audio"] is False
    # Kling 3 has no seed; fal ignores unknown fields, and so does the double (noting them).
    assert double.jobs[job.request_id].ignored == ("seed", "camera_wobble")


async def test_seedance_reports_the_seed_it_used(fal: FalProvider, double: FalQueueDouble) -> None:
    _, job = await submitted(fal, "seedance-2-fast", params={"seed": 99})

    assert (await poll_until_done(fal, job)).state is UpstreamState.SUCCEEDED
    [result] = double.requests_to(Operation.RESULT)
    assert double.jobs[job.request_id].ignored == ("seed",)
    assert result.path == f"/bytedance/seedance-2.0/requests/{job.request_id}"


async def test_a_queued_request_is_running_until_completed(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.default_script = Script(polls=4, queued_polls=2)
    _, job = await submitted(fal)

    states = [await fal.status(job) for _ in range(5)]

    assert [s.state for s in states] == [UpstreamState.RUNNING] * 4 + [UpstreamState.SUCCEEDED]
    assert all(s.retry_after_seconds is None for s in states)


async def test_a_request_that_never_finishes_stays_running(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.default_script = Script(polls=None)
    _, job = await submitted(fal)

    for _ in range(6):
        assert (await fal.status(job)).state is UpstreamState.RUNNING
    assert double.requests_to(Operation.RESULT) == []


# Following a request after a restart; the queue URL.


async def test_a_new_adapter_follows_a_request_another_submitted(
    make_fal: MakeFal, double: FalQueueDouble
) -> None:
    first = make_fal()
    _, job = await submitted(first, "kling-2.5-pro", mode=InputMode.IMAGE)
    await first.aclose()

    restarted = make_fal()
    done = await poll_until_done(restarted, job)

    assert done.state is UpstreamState.SUCCEEDED
    # fal's addressing: owner/app only, the endpoint's sub-path dropped, on the same queue.
    base = f"/fal-ai/kling-video/requests/{job.request_id}"
    assert {r.path for r in double.requests_to(Operation.STATUS)} == {f"{base}/status"}
    assert {r.path for r in double.requests_to(Operation.RESULT)} == {base}
    assert all(r.headers["authorization"] == "Key <valid>" for r in double.requests)


async def test_a_new_adapter_cancels_a_request_another_submitted(
    make_fal: MakeFal, double: FalQueueDouble
) -> None:
    double.default_script = Script(polls=None)
    first = make_fal()
    _, job = await submitted(first, "seedance-2-pro")

    await make_fal().cancel(job)

    [cancel] = double.requests_to(Operation.CANCEL)
    assert cancel.method == "PUT"
    assert cancel.path == f"/bytedance/seedance-2.0/requests/{job.request_id}/cancel"
    assert double.jobs[job.request_id].cancelled


async def test_a_queue_url_with_a_path_keeps_it_for_every_call(
    trust_test_ca: None, make_fal: MakeFal
) -> None:
    double = FalQueueDouble(KEY, video=sample_video())
    behind_a_proxy = Starlette(routes=[Mount("/fal-proxy", app=double)])
    async with serve_https(behind_a_proxy) as url:
        fal = make_fal(url=f"{url}/fal-proxy/")
        request, job = await submitted(fal, "kling-3-pro", mode=InputMode.IMAGE)
        assert (await poll_until_done(fal, job)).state is UpstreamState.SUCCEEDED
        await fal.cancel(job)
        await fal.aclose()  # before the server stops, which waits for open connections

    base = f"/fal-proxy/fal-ai/kling-video/requests/{job.request_id}"
    assert [(r.method, r.path) for r in double.requests] == [
        ("POST", f"/fal-proxy/{request.endpoint}"),
        ("GET", f"{base}/status"),
        ("GET", f"{base}/status"),
        ("GET", f"{base}/status"),
        ("GET", base),
        ("PUT", f"{base}/cancel"),
    ]
    assert double.violations == []


# Cancel.


async def test_cancel_of_a_queued_request_removes_it(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.default_script = Script(polls=3, queued_polls=3)
    _, job = await submitted(fal)

    await fal.cancel(job)

    assert double.jobs[job.request_id].cancelled
    failed = await fal.status(job)
    assert failed.state is UpstreamState.FAILED
    assert failed.error_code is ErrorCode.PROVIDER_ERROR


async def test_cancel_tolerates_an_already_completed_request(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    _, job = await submitted(fal)
    assert (await poll_until_done(fal, job)).state is UpstreamState.SUCCEEDED

    await fal.cancel(job)

    assert not double.jobs[job.request_id].cancelled
    assert len(double.requests_to(Operation.CANCEL)) == 1


async def test_cancel_tolerates_an_unknown_request(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    request = submit_request("kling-3-pro")

    await fal.cancel(upstream(request, "00000000-0000-0000-0000-000000000000"))

    assert len(double.requests_to(Operation.CANCEL)) == 1


async def test_cancel_reports_a_transient_failure_as_retryable(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.default_script = Script(polls=None)
    _, job = await submitted(fal)
    double.inject(Operation.CANCEL, Fault.platform())

    error = await provider_error(fal.cancel(job))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    await fal.cancel(job)
    assert double.jobs[job.request_id].cancelled


# Classification: permanent failures.


async def test_a_wrong_key_is_an_authentication_failure(
    make_fal: MakeFal, double: FalQueueDouble
) -> None:
    wrong_key = new_key()
    intruder = make_fal(key=wrong_key)

    error = await provider_error(intruder.submit(submit_request("kling-3-pro")))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "authentication failed" in error.message
    assert wrong_key not in error.message and wrong_key not in repr(error)
    assert [r.headers["authorization"] for r in double.requests] == ["Key <not the account's key>"]
    assert len(double.take_violations()) == 1


async def test_a_forbidden_answer_is_an_authentication_failure(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    _, job = await submitted(fal)
    double.inject(Operation.STATUS, Fault.http(403, {"detail": "Forbidden"}))

    error = await provider_error(fal.status(job))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "authentication failed" in error.message


async def test_invalid_input_is_rejected_upstream_for_good(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    request = submit_request("kling-2.5-pro", params={"aspect_ratio": "7:3"})

    error = await provider_error(fal.submit(request))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "HTTP 422" in error.message
    assert "aspect_ratio: literal_error" in error.message
    assert double.jobs == {}
    assert double.take_violations() == [
        "POST /fal-ai/kling-video/v2.5-turbo/pro/text-to-video: "
        "invalid input ['body', 'aspect_ratio']: literal_error"
    ]


async def test_a_moderation_rejection_at_submission_is_a_content_rejection(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.inject(Operation.SUBMIT, Fault.content_rejected())

    error = await provider_error(fal.submit(submit_request("seedance-2-pro")))

    assert (error.code, error.retryable) == (ErrorCode.CONTENT_REJECTED, False)
    assert MODERATION_TYPE in error.message


@pytest.mark.parametrize(
    ("outcome", "code"),
    [
        (Outcome.CONTENT_REJECTED, ErrorCode.CONTENT_REJECTED),
        (Outcome.MODEL_ERROR, ErrorCode.UPSTREAM_FAILED),
        (Outcome.RUNNER_FAILURE, ErrorCode.PROVIDER_ERROR),
        (Outcome.NO_VIDEO, ErrorCode.UPSTREAM_FAILED),
    ],
)
async def test_a_request_completed_without_a_video_fails_with_its_reason(
    fal: FalProvider, double: FalQueueDouble, outcome: Outcome, code: ErrorCode
) -> None:
    double.script("doomed", Script(polls=1, outcome=outcome))
    _, job = await submitted(fal, prompt="doomed")

    failed = await poll_until_done(fal, job)

    assert failed.state is UpstreamState.FAILED
    assert failed.error_code is code
    assert failed.error_message and job.request_id in failed.error_message
    assert KEY not in failed.error_message


async def test_an_unknown_request_id_is_a_permanent_failure(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    job = upstream(submit_request("kling-3-pro"), "11111111-1111-1111-1111-111111111111")

    error = await provider_error(fal.status(job))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_FAILED, False)
    assert len(double.take_violations()) == 1


# Classification: transient failures, visible one attempt at a time.


async def test_a_rate_limit_burst_on_submit_is_retryable_and_creates_one_request(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.inject(Operation.SUBMIT, Fault.rate_limited(retry_after="7"), times=2)
    request = submit_request("kling-3-pro")

    for _ in range(2):
        error = await provider_error(fal.submit(request))
        assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
        assert error.retry_after_seconds == 7
    request_id = await fal.submit(request)

    assert list(double.jobs) == [request_id]
    assert len(double.requests_to(Operation.SUBMIT)) == 3


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(None, None), ("2.5", 2.5), ("<in 30 s, as an HTTP date>", 30)],
)
async def test_a_rate_limited_status_look_says_when_to_look_again(
    fal: FalProvider, double: FalQueueDouble, retry_after: str | None, expected: float | None
) -> None:
    if retry_after is not None and retry_after.startswith("<"):
        retry_after = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    _, job = await submitted(fal)
    double.inject(Operation.STATUS, Fault.rate_limited(retry_after=retry_after))

    error = await provider_error(fal.status(job))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    if expected is None:
        assert error.retry_after_seconds is None
    else:
        assert error.retry_after_seconds == pytest.approx(expected, abs=2)


@pytest.mark.parametrize(
    "fault",
    [
        Fault.platform(503, "runner_scheduling_failure"),
        Fault.platform(504, "request_timeout"),
        Fault.platform(504, "startup_timeout"),
        Fault.platform(500, "internal_error"),
        Fault.platform(502, "runner_incomplete_response"),
        Fault.http(502, {"detail": "<html>nginx bad gateway</html>"}),
        Fault.http(408, {"detail": "Request Timeout"}),
    ],
    ids=[
        "503-runner",
        "504-request-timeout",
        "504-startup",
        "500-internal",
        "502",
        "502-nginx",
        "408",
    ],
)
async def test_a_server_failure_burst_is_retryable_then_passes(
    fal: FalProvider, double: FalQueueDouble, fault: Fault
) -> None:
    _, job = await submitted(fal)
    double.inject(Operation.STATUS, fault, times=2)

    for _ in range(2):
        error = await provider_error(fal.status(job))
        assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert (await fal.status(job)).state is UpstreamState.RUNNING
    assert len(double.requests_to(Operation.STATUS)) == 3


async def test_a_server_failure_on_submit_is_retryable(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.inject(Operation.SUBMIT, Fault.platform())
    request = submit_request("kling-2.5-pro")

    error = await provider_error(fal.submit(request))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert "runner_scheduling_failure" in error.message
    assert double.jobs == {}
    await fal.submit(request)


async def test_a_failed_result_fetch_is_retried_by_the_next_look(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    _, job = await submitted(fal)
    assert (await fal.status(job)).state is UpstreamState.RUNNING
    double.inject(Operation.RESULT, Fault.platform())

    error = await provider_error(fal.status(job))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert (await fal.status(job)).state is UpstreamState.SUCCEEDED


@pytest.mark.parametrize("fault", [Fault.malformed(), Fault.drop(), Fault.slow(1.5)])
async def test_an_unreadable_or_late_status_answer_is_retryable(
    make_fal: MakeFal, double: FalQueueDouble, fault: Fault
) -> None:
    fal = make_fal(timeout=0.5)
    _, job = await submitted(fal)
    double.inject(Operation.STATUS, fault)

    error = await provider_error(fal.status(job))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert len(double.requests_to(Operation.STATUS)) == 1  # fal-client did not retry inside


# No duplicate paid submissions.


@pytest.mark.parametrize("fault", [Fault.slow(1.5), Fault.drop(), Fault.malformed()])
async def test_a_submission_with_an_unknown_outcome_is_never_sent_twice(
    make_fal: MakeFal, double: FalQueueDouble, fault: Fault
) -> None:
    fal = make_fal(timeout=0.5)
    double.inject(Operation.SUBMIT, fault)

    error = await provider_error(fal.submit(submit_request("kling-3-pro-audio")))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, False)
    assert "may have accepted it" in error.message
    await asyncio.sleep(1.0)  # fal-client's own retries would start within 0.15 s
    assert len(double.requests_to(Operation.SUBMIT)) == 1
    assert len(double.jobs) == 1  # fal has it; it was not submitted again


async def test_a_submission_that_never_reached_fal_is_retryable(
    make_fal: MakeFal, double: FalQueueDouble
) -> None:
    with_nobody_listening = "https://127.0.0.1:9"
    fal = make_fal(url=with_nobody_listening)

    error = await provider_error(fal.submit(submit_request("kling-3-pro")))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert double.requests == []


# Media.


async def test_an_expired_output_url_fails_rehosting(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.default_script = Script(polls=1, media_ttl_seconds=0.0)
    _, job = await submitted(fal)
    done = await poll_until_done(fal, job)
    assert done.media is not None

    error = await provider_error(read_all(fal.open_media(job, done.media)))

    assert (error.code, error.retryable) == (ErrorCode.REHOST_FAILED, False)
    assert "410" in error.message


async def test_a_media_host_hiccup_is_a_retryable_rehost_failure(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    _, job = await submitted(fal)
    done = await poll_until_done(fal, job)
    assert done.media is not None
    double.inject(Operation.MEDIA, Fault.http(503, {"detail": "Service Unavailable"}))

    error = await provider_error(read_all(fal.open_media(job, done.media)))

    assert (error.code, error.retryable) == (ErrorCode.REHOST_FAILED, True)
    assert await read_all(fal.open_media(job, done.media)) == double.video


# Configuration and concurrency.


async def test_settings_build_the_adapter_only_with_a_key(
    queue_url: str, media_http: httpx.AsyncClient, double: FalQueueDouble
) -> None:
    fetch = media_fetcher(Settings(allow_private_media_urls=True), media_http)
    assert from_settings(Settings(fal_key=None), fetch) is None

    provider = from_settings(Settings(fal_key=SecretStr(KEY), fal_queue_url=queue_url), fetch)

    assert provider is not None
    try:
        assert provider.name is ProviderName.FAL and provider.simulated is False
        assert KEY not in repr(provider)
        await provider.submit(submit_request("seedance-2-fast"))
        assert len(double.jobs) == 1
    finally:
        await provider.aclose()


@pytest.mark.parametrize(
    "url", ["http://queue.example.test", "https://user:pw@queue.example.test", "queue.fal.run"]
)
def test_the_queue_url_must_be_plain_https(url: str) -> None:
    fetch = media_fetcher(Settings())
    with pytest.raises(ValueError, match="https"):
        FalProvider(key=SecretStr(KEY), queue_url=url, fetch_media=fetch)


async def test_requests_from_one_adapter_run_concurrently(
    fal: FalProvider, double: FalQueueDouble
) -> None:
    double.inject(Operation.SUBMIT, Fault.slow(0.3), times=4)
    requests = [submit_request("kling-3-pro", prompt=f"shot {n}") for n in range(4)]

    request_ids = await asyncio.gather(*(fal.submit(r) for r in requests))

    assert len(set(request_ids)) == 4
    assert double.max_in_flight == 4
