"""VertexProvider (Veo through google-genai) against the Vertex AI double, over real HTTPS.

Requests are built exactly as ``activities/upstream.py`` builds them, so these tests hold the
adapter to what the workflow will really send. The double fails a test on anything the real
API would reject, unless the test takes that violation on purpose.
"""

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from kyma_video.errors import ErrorCode
from kyma_video.settings import Settings
from providers.base import (
    MediaFetcher,
    MediaRef,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from providers.catalog import ProviderName, get_model
from providers.http_media import media_client, media_fetcher
from providers.vertex import (
    POLL_HINT_SECONDS,
    RATE_LIMIT_BACKOFF_SECONDS,
    VertexProvider,
    from_settings,
)
from tests.providers.doubles.https import ca_bundle
from tests.providers.doubles.vertex import (
    LOCATION,
    PROJECT,
    RAI_FILTER_REASON,
    RAI_MESSAGE,
    TOKEN,
    Fault,
    Outcome,
    StaticTokenCredentials,
    VertexDouble,
    dropped,
    failed,
    filtered,
    first_frame_jpeg,
    first_frame_png,
    gateway_html,
    internal,
    malformed_json,
    never,
    permission_denied,
    rate_limited,
    sample_mp4,
    serve,
    service_account_info,
    slow,
    unavailable,
    video,
)

PROMPT = "A lone cowboy rides across an open plain at sunset"
#: Far below Temporal's 2 MB payload cap: proof that no video travels in a status.
MAX_STATUS_JSON_BYTES = 2048
IMAGES = {"first-frame.png": first_frame_png, "first-frame.jpg": first_frame_jpeg}


@pytest.fixture
async def double(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VertexDouble]:
    # httpx (google-genai, the media fetcher) reads SSL_CERT_FILE; google-auth refreshes
    # service-account tokens through requests, which reads REQUESTS_CA_BUNDLE.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle()))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_bundle()))
    async with serve() as running:
        yield running
    assert running.violations == [], "requests the real Vertex AI would have rejected"


@pytest.fixture
async def fetch_media(double: VertexDouble) -> AsyncIterator[MediaFetcher]:
    settings = Settings(allow_private_media_urls=True)
    client = media_client(settings)
    yield media_fetcher(settings, client)
    # Before the double stops: the server waits for open keep-alive connections.
    await client.aclose()


def make_provider(
    double: VertexDouble, fetch_media: MediaFetcher, **overrides: Any
) -> VertexProvider:
    options: dict[str, Any] = {
        "project": PROJECT,
        "location": LOCATION,
        "base_url": double.base_url,
        "credentials": StaticTokenCredentials(),
        "fetch_media": fetch_media,
        **overrides,
    }
    return VertexProvider(**options)


@pytest.fixture
async def provider(
    double: VertexDouble, fetch_media: MediaFetcher
) -> AsyncIterator[VertexProvider]:
    adapter = make_provider(double, fetch_media)
    yield adapter
    await adapter.aclose()


def submit_request(
    model_id: str,
    *,
    duration: int = 5,
    image_url: str | None = None,
    params: dict[str, JsonValue] | None = None,
    endpoint: str | None = None,
) -> SubmitRequest:
    """What ``submit_upstream`` sends for a job with these fields."""
    spec = get_model(model_id)
    return SubmitRequest(
        job_id="job_vertex_test",
        model=spec.id,
        endpoint=endpoint or spec.endpoint(with_image=image_url is not None),
        prompt=PROMPT,
        duration_seconds=spec.upstream_duration(duration),
        image_url=image_url,
        image_field=spec.image_field,
        params={**(params or {}), **spec.fixed_params},
    )


def job_of(name: str, model_id: str = "veo-3-fast") -> UpstreamJob:
    endpoint = get_model(model_id).endpoint(with_image=False)
    return UpstreamJob(provider=ProviderName.VERTEX, endpoint=endpoint, request_id=name)


def submitted(double: VertexDouble) -> dict[str, object]:
    """The body of the last predictLongRunning request the double received."""
    body = double.calls("predictLongRunning")[-1].body
    assert isinstance(body, dict)
    return body


async def read_media(provider: VertexProvider, job: UpstreamJob, media: MediaRef) -> bytes:
    return b"".join([chunk async for chunk in provider.open_media(job, media)])


async def finished(provider: VertexProvider, job: UpstreamJob, limit: int = 10) -> UpstreamStatus:
    for _ in range(limit):
        status = await provider.status(job)
        if status.state is not UpstreamState.RUNNING:
            return status
    raise AssertionError(f"{job.request_id} still running after {limit} looks")


async def rejection(call: Awaitable[object]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


# --- the happy paths -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_id", "duration", "image", "upstream_seconds", "audio", "resolution"),
    [
        ("veo-3-fast", 10, None, 8, False, "720p"),
        ("veo-3-fast", 5, "first-frame.png", 6, False, "720p"),
        ("veo-3", 5, None, 6, True, "1080p"),
        ("veo-3", 10, "first-frame.jpg", 8, True, "1080p"),
    ],
)
async def test_a_job_becomes_one_operation_and_its_video_streams_from_the_operation(
    double: VertexDouble,
    provider: VertexProvider,
    model_id: str,
    duration: int,
    image: str | None,
    upstream_seconds: int,
    audio: bool,
    resolution: str,
) -> None:
    double.script(video(polls=2))
    request = submit_request(
        model_id, duration=duration, image_url=image and double.image_url(image)
    )

    name = await provider.submit(request)

    model = get_model(model_id).endpoint(with_image=image is not None)
    assert name.startswith(f"projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/")
    assert name in double.operations
    [call] = double.calls("predictLongRunning")
    assert call.path == (
        f"/v1/projects/{PROJECT}/locations/{LOCATION}/publishers/google/models/"
        f"{model}:predictLongRunning"
    )
    body = submitted(double)
    assert body["parameters"] == {
        "durationSeconds": upstream_seconds,
        "sampleCount": 1,
        "generateAudio": audio,
        "resolution": resolution,
    }
    [instance] = body["instances"]  # type: ignore[misc]
    assert instance["prompt"] == PROMPT
    if image is None:
        assert "image" not in instance
    else:
        mime_type = "image/png" if image.endswith(".png") else "image/jpeg"
        assert instance["image"]["mimeType"] == mime_type
        assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == IMAGES[image]()

    job = job_of(name, model_id)
    looks = [await provider.status(job) for _ in range(3)]
    assert [look.state for look in looks] == [
        UpstreamState.RUNNING,
        UpstreamState.RUNNING,
        UpstreamState.SUCCEEDED,
    ]
    assert looks[0].retry_after_seconds == POLL_HINT_SECONDS
    for look in looks:
        assert len(look.model_dump_json()) < MAX_STATUS_JSON_BYTES
    media = looks[-1].media
    assert media is not None
    assert media.url == f"vertex-inline://{name}#0"
    assert media.content_type == "video/mp4"

    assert await read_media(provider, job, media) == sample_mp4()


async def test_pass_through_params_arrive_unchanged(
    double: VertexDouble, provider: VertexProvider
) -> None:
    params: dict[str, JsonValue] = {
        "seed": 4294967295,
        "aspect_ratio": "9:16",
        "negativePrompt": "text overlays, watermark",
        "person_generation": "dont_allow",
        "enhancePrompt": False,
        "compressionQuality": "LOSSLESS",
    }

    await provider.submit(submit_request("veo-3", params=params))

    assert submitted(double)["parameters"] == {
        "durationSeconds": 6,
        "sampleCount": 1,
        "generateAudio": True,
        "resolution": "1080p",
        "seed": 4294967295,
        "aspectRatio": "9:16",
        "negativePrompt": "text overlays, watermark",
        "personGeneration": "dont_allow",
        "enhancePrompt": False,
        "compressionQuality": "LOSSLESS",
    }


async def test_both_spellings_of_a_param_may_say_the_same_thing(
    double: VertexDouble, provider: VertexProvider
) -> None:
    params: dict[str, JsonValue] = {"aspectRatio": "9:16", "aspect_ratio": "9:16"}

    await provider.submit(submit_request("veo-3-fast", params=params))

    assert submitted(double)["parameters"]["aspectRatio"] == "9:16"  # type: ignore[index]


async def test_an_unknown_param_is_forwarded_for_vertex_to_reject(
    double: VertexDouble, provider: VertexProvider
) -> None:
    params: dict[str, JsonValue] = {"motionStrength": 0.7, "cameraMotion": {"type": "pan"}}

    error = await rejection(provider.submit(submit_request("veo-3-fast", params=params)))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "400 INVALID_ARGUMENT" in error.message
    assert "motionStrength" in error.message
    parameters = submitted(double)["parameters"]
    assert parameters["motionStrength"] == 0.7  # type: ignore[index]
    assert parameters["cameraMotion"] == {"type": "pan"}  # type: ignore[index]
    violations = double.take_violations()
    assert len(violations) == 1 and "motionStrength" in violations[0]


async def test_a_value_out_of_range_is_vertexs_to_reject(
    double: VertexDouble, provider: VertexProvider
) -> None:
    error = await rejection(provider.submit(submit_request("veo-3", params={"aspectRatio": "4:3"})))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert submitted(double)["parameters"]["aspectRatio"] == "4:3"  # type: ignore[index]
    assert len(double.take_violations()) == 1


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"aspectRatio": "16:9", "aspect_ratio": "9:16"}, "disagree"),
        ({"generate_audio": True}, "disagree"),  # veo-3-fast is sold silent
        ({"seed": "42"}, "must be an integer"),
        ({"seed": True}, "must be an integer"),
        ({"enhance_prompt": "yes"}, "must be a boolean"),
        ({"compression_quality": "optimized"}, "must be one of"),
        ({"durationSeconds": 8}, "durationSeconds"),
        ({"sample_count": 2}, "sample_count"),
        ({"SAMPLECOUNT": 2}, "SAMPLECOUNT"),
        ({"numberOfVideos": 4}, "numberOfVideos"),
        ({"storageUri": "gs://someone-elses-bucket/"}, "storageUri"),
        ({"output_gcs_uri": "gs://someone-elses-bucket/"}, "output_gcs_uri"),
        ({"pubsubTopic": "projects/x/topics/y"}, "pubsubTopic"),
    ],
)
async def test_params_the_adapter_cannot_forward_unchanged_are_refused_without_a_call(
    double: VertexDouble, provider: VertexProvider, params: dict[str, JsonValue], named: str
) -> None:
    error = await rejection(provider.submit(submit_request("veo-3-fast", params=params)))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert named in error.message
    assert double.requests == []


async def test_a_new_adapter_follows_an_operation_another_one_submitted(
    double: VertexDouble, fetch_media: MediaFetcher
) -> None:
    first = make_provider(double, fetch_media)
    name = await first.submit(submit_request("veo-3"))
    await first.aclose()

    second = make_provider(double, fetch_media, credentials=StaticTokenCredentials())
    try:
        job = job_of(name, "veo-3")
        status = await finished(second, job)
        assert status.state is UpstreamState.SUCCEEDED and status.media is not None
        assert await read_media(second, job, status.media) == sample_mp4()
    finally:
        await second.aclose()


async def test_a_video_without_a_mime_type_is_taken_as_mp4(
    double: VertexDouble, provider: VertexProvider
) -> None:
    double.script(video(mime_type=None))
    name = await provider.submit(submit_request("veo-3-fast"))

    status = await finished(provider, job_of(name))

    assert status.media is not None and status.media.content_type == "video/mp4"


# --- how operations end ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("outcome", "code", "mentions"),
    [
        (filtered(), ErrorCode.CONTENT_REJECTED, RAI_FILTER_REASON[:40]),
        (failed(3, RAI_MESSAGE), ErrorCode.CONTENT_REJECTED, "Support codes: 58061214"),
        (failed(3, "Image resolution is too low."), ErrorCode.UPSTREAM_REJECTED, "3 INVALID"),
        (failed(7, "Permission denied on the bucket."), ErrorCode.UPSTREAM_REJECTED, "7 PERM"),
        (failed(8, "Quota exhausted for Veo."), ErrorCode.PROVIDER_ERROR, "8 RESOURCE"),
        (failed(13, "Internal error."), ErrorCode.UPSTREAM_FAILED, "13 INTERNAL"),
        (failed(14, "Service unavailable."), ErrorCode.UPSTREAM_FAILED, "14 UNAVAILABLE"),
    ],
)
async def test_a_finished_operation_without_a_video_is_a_classified_failure(
    double: VertexDouble,
    provider: VertexProvider,
    outcome: Outcome,
    code: ErrorCode,
    mentions: str,
) -> None:
    double.script(outcome)
    name = await provider.submit(submit_request("veo-3"))

    status = await finished(provider, job_of(name, "veo-3"))

    assert (status.state, status.error_code) == (UpstreamState.FAILED, code)
    assert status.error_message is not None and mentions in status.error_message


async def test_an_operation_that_never_finishes_stays_running(
    double: VertexDouble, provider: VertexProvider
) -> None:
    double.script(never())
    name = await provider.submit(submit_request("veo-3-fast"))

    looks = [await provider.status(job_of(name)) for _ in range(5)]

    assert {look.state for look in looks} == {UpstreamState.RUNNING}


# --- HTTP-level failures ---------------------------------------------------------------------

RETRYABLE_FAULTS = [
    pytest.param(rate_limited(), RATE_LIMIT_BACKOFF_SECONDS, id="429"),
    pytest.param(rate_limited(retry_delay="7s"), 7.0, id="429-retry-info"),
    pytest.param(unavailable(), None, id="503"),
    pytest.param(internal(), None, id="500"),
    pytest.param(gateway_html(), None, id="502-html"),
    pytest.param(malformed_json(), None, id="malformed-json"),
    pytest.param(dropped(), None, id="connection-dropped"),
]


@pytest.mark.parametrize(("fault", "retry_after"), RETRYABLE_FAULTS)
async def test_transient_failures_on_submit_are_retryable_and_made_once(
    double: VertexDouble, provider: VertexProvider, fault: Fault, retry_after: float | None
) -> None:
    double.inject(fault)

    error = await rejection(provider.submit(submit_request("veo-3-fast")))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert error.retry_after_seconds == retry_after
    # One attempt is one request: the SDK's own retries stay off.
    assert len(double.calls("predictLongRunning")) == 1


@pytest.mark.parametrize(("fault", "retry_after"), RETRYABLE_FAULTS)
async def test_transient_failures_on_status_are_retryable_and_made_once(
    double: VertexDouble, provider: VertexProvider, fault: Fault, retry_after: float | None
) -> None:
    name = await provider.submit(submit_request("veo-3-fast"))
    double.inject(fault, method="fetchPredictOperation")

    error = await rejection(provider.status(job_of(name)))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert error.retry_after_seconds == retry_after
    assert len(double.calls("fetchPredictOperation")) == 1


async def test_a_slow_answer_is_a_retryable_timeout(
    double: VertexDouble, fetch_media: MediaFetcher
) -> None:
    impatient = make_provider(double, fetch_media, timeout_seconds=0.3)
    double.inject(slow(1.0))
    try:
        error = await rejection(impatient.submit(submit_request("veo-3-fast")))
    finally:
        await impatient.aclose()

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert "did not answer within 0.3 s" in error.message


async def test_a_burst_of_rate_limits_and_outages_ends_in_success(
    double: VertexDouble, provider: VertexProvider
) -> None:
    double.inject(rate_limited(), rate_limited(), unavailable(), method="predictLongRunning")
    double.inject(unavailable(), rate_limited(), method="fetchPredictOperation")

    errors: list[ProviderError] = []
    name = None
    while name is None:
        try:
            name = await provider.submit(submit_request("veo-3"))
        except ProviderError as error:
            errors.append(error)
    status = None
    while status is None or status.state is UpstreamState.RUNNING:
        try:
            status = await provider.status(job_of(name, "veo-3"))
        except ProviderError as error:
            errors.append(error)

    assert len(errors) == 5 and all(error.retryable for error in errors)
    assert status.state is UpstreamState.SUCCEEDED
    assert len(double.operations) == 1


async def test_permission_denied_names_what_to_check(
    double: VertexDouble, provider: VertexProvider
) -> None:
    double.inject(permission_denied())

    error = await rejection(provider.submit(submit_request("veo-3")))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "403 PERMISSION_DENIED" in error.message
    assert "Vertex AI User" in error.message


async def test_credentials_vertex_does_not_accept_are_rejected(
    double: VertexDouble, fetch_media: MediaFetcher
) -> None:
    stranger = make_provider(
        double, fetch_media, credentials=StaticTokenCredentials("ya29.never-issued")
    )
    try:
        error = await rejection(stranger.submit(submit_request("veo-3")))
    finally:
        await stranger.aclose()

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "401 UNAUTHENTICATED" in error.message and "credentials" in error.message
    assert "never-issued" not in error.message
    assert [v.split(":")[0] for v in double.take_violations()] == ["401 UNAUTHENTICATED"]


async def test_a_model_missing_from_the_region_is_rejected(
    double: VertexDouble, provider: VertexProvider
) -> None:
    request = submit_request("veo-3", endpoint="veo-3.0-generate-preview")

    error = await rejection(provider.submit(request))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "404 NOT_FOUND" in error.message
    assert "veo-3.0-generate-preview" in error.message and LOCATION in error.message
    assert len(double.take_violations()) == 1


# --- first-frame images ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "mentions"),
    [
        ("first-frame.gif", "JPEG or PNG"),
        ("missing.png", "404"),
        ("oversized.png", "limit"),
    ],
)
async def test_an_image_veo_cannot_take_is_refused_before_vertex_is_called(
    double: VertexDouble, provider: VertexProvider, image: str, mentions: str
) -> None:
    request = submit_request("veo-3", image_url=double.image_url(image))

    error = await rejection(provider.submit(request))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert mentions in error.message
    assert double.calls("predictLongRunning") == []


async def test_images_are_fetched_through_the_ssrf_guard(double: VertexDouble) -> None:
    guarded = make_provider(double, media_fetcher(Settings(allow_private_media_urls=False)))
    request = submit_request("veo-3", image_url=double.image_url("first-frame.png"))
    try:
        error = await rejection(guarded.submit(request))
    finally:
        await guarded.aclose()

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "refused" in error.message
    assert double.requests == []


# --- open_media and cancel -------------------------------------------------------------------


async def test_a_video_the_operation_no_longer_carries_cannot_be_rehosted(
    double: VertexDouble, provider: VertexProvider
) -> None:
    name = await provider.submit(submit_request("veo-3-fast"))
    status = await finished(provider, job_of(name))
    assert status.media is not None
    double.forget(name)

    error = await rejection(read_media(provider, job_of(name), status.media))

    assert (error.code, error.retryable) == (ErrorCode.REHOST_FAILED, False)
    assert name in error.message


async def test_a_transient_failure_while_rehosting_is_retryable(
    double: VertexDouble, provider: VertexProvider
) -> None:
    name = await provider.submit(submit_request("veo-3-fast"))
    status = await finished(provider, job_of(name))
    assert status.media is not None
    double.inject(unavailable())

    error = await rejection(read_media(provider, job_of(name), status.media))

    assert (error.code, error.retryable) == (ErrorCode.REHOST_FAILED, True)
    assert await read_media(provider, job_of(name), status.media) == sample_mp4()


async def test_a_reference_to_another_operation_is_refused(
    double: VertexDouble, provider: VertexProvider
) -> None:
    name = await provider.submit(submit_request("veo-3-fast"))
    other = MediaRef(url=f"vertex-inline://{name[:-4]}abcd#0")

    error = await rejection(read_media(provider, job_of(name), other))

    assert (error.code, error.retryable) == (ErrorCode.REHOST_FAILED, False)
    assert double.calls("fetchPredictOperation") == []


async def test_a_request_id_that_is_not_an_operation_name_fails_without_a_call(
    double: VertexDouble, provider: VertexProvider
) -> None:
    error = await rejection(provider.status(job_of("sim.1.2.succeed.3.4.job")))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_FAILED, False)
    assert double.requests == []


async def test_cancel_abandons_the_operation_without_a_call(
    double: VertexDouble, provider: VertexProvider
) -> None:
    name = await provider.submit(submit_request("veo-3-fast"))

    await provider.cancel(job_of(name))

    assert len(double.requests) == 1


async def test_calls_are_not_serialized(double: VertexDouble, provider: VertexProvider) -> None:
    name = await provider.submit(submit_request("veo-3-fast"))
    double.inject(*[slow(0.3)] * 5, method="fetchPredictOperation")

    await asyncio.gather(*(provider.status(job_of(name)) for _ in range(5)))

    assert double.max_in_flight == 5


# --- credentials -----------------------------------------------------------------------------


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


async def test_the_token_never_appears_in_errors_reprs_or_logs(
    double: VertexDouble,
    provider: VertexProvider,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    name = await provider.submit(submit_request("veo-3"))
    status = await finished(provider, job_of(name, "veo-3"))
    assert status.media is not None
    await read_media(provider, job_of(name, "veo-3"), status.media)
    double.inject(rate_limited(), permission_denied(), malformed_json(), dropped(), internal())
    errors = [await rejection(provider.submit(submit_request("veo-3"))) for _ in range(5)]
    errors.append(await rejection(provider.submit(submit_request("veo-3", params={"x": 1}))))
    double.take_violations()

    texts = [caplog.text, repr(provider)]
    for error in errors:
        texts += [f"{link} {link!r}" for link in _chain(error)]
    assert caplog.records, "the check needs something logged"
    assert all(TOKEN not in text for text in texts)


async def test_application_default_credentials_are_resolved_on_first_use(
    double: VertexDouble,
    fetch_media: MediaFetcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(service_account_info(double.token_uri)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    settings = Settings(
        KYMA_VERTEX_PROJECT=PROJECT, KYMA_VERTEX_LOCATION=LOCATION, vertex_base_url=double.base_url
    )
    caplog.set_level(logging.DEBUG)

    adc = from_settings(settings, fetch_media)
    assert adc is not None
    assert double.requests == []  # nothing resolved at construction
    try:
        name = await adc.submit(submit_request("veo-3"))
        status = await finished(adc, job_of(name, "veo-3"))
    finally:
        await adc.aclose()

    assert status.state is UpstreamState.SUCCEEDED
    [grant] = [r for r in double.requests if r.path == "/token"]
    assert grant.body == {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": "<redacted>",
    }
    api_calls = [r for r in double.requests if r.authorized is not None]
    assert api_calls and all(r.authorized for r in api_calls)
    issued = double._tokens - {TOKEN}
    assert issued and not any(token in caplog.text for token in issued)


async def test_missing_application_default_credentials_fail_the_first_call(
    double: VertexDouble,
    fetch_media: MediaFetcher,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "absent.json"))
    adc = make_provider(double, fetch_media, credentials=None)
    try:
        error = await rejection(adc.submit(submit_request("veo-3")))
    finally:
        await adc.aclose()

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "GOOGLE_APPLICATION_CREDENTIALS" in error.message
    assert double.requests == []


def test_without_a_project_there_is_no_vertex_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KYMA_VERTEX_PROJECT", raising=False)
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)

    assert from_settings(Settings(), media_fetcher(Settings())) is None


def test_a_configured_project_makes_a_stateless_real_provider() -> None:
    settings = Settings(KYMA_VERTEX_PROJECT=PROJECT)

    adapter = from_settings(settings, media_fetcher(settings))

    assert adapter is not None
    assert (adapter.name, adapter.simulated) == (ProviderName.VERTEX, False)
    assert PROJECT in repr(adapter)
