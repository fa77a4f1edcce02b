"""The MiniMax adapter against a protocol-faithful double of MiniMax's API, over real HTTPS.

The double (``tests/providers/doubles/minimax.py``) checks every request as MiniMax would and
records what it would reject as a violation; every test ends with none recorded (tests that
provoke one on purpose take it). Requests are built exactly as ``activities/upstream.py`` builds
them from the catalog, so these tests also hold the catalog and the adapter to each other.
"""

import asyncio
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import certifi
import pytest
from pydantic import JsonValue, SecretStr

from kyma_video.errors import ErrorCode
from kyma_video.settings import Settings
from providers.base import (
    MediaFetcher,
    MediaRef,
    Provider,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from providers.catalog import CATALOG, InputMode, ModelSpec, ProviderName
from providers.http_media import media_client, media_fetcher
from providers.minimax import (
    POLL_HINT_SECONDS,
    RATE_LIMIT_BACKOFF_SECONDS,
    SLOW_LIMIT_BACKOFF_SECONDS,
    MiniMaxProvider,
    from_settings,
)
from tests.providers.doubles.https import ca_bundle, serve_https
from tests.providers.doubles.minimax import (
    Endpoint,
    Fault,
    MiniMaxDouble,
    TaskScript,
    sample_video,
)

#: Distinctive, so any leak is found by a plain substring search.
API_KEY = f"mm-test-key-{secrets.token_hex(16)}"
PROMPT = "A lighthouse at dusk, waves rolling in [Push in]"
IMAGE_URL = "https://images.example.test/first-frame.png"
HAILUO = [spec for spec in CATALOG.values() if spec.provider is ProviderName.MINIMAX]
#: Every (model, mode) MiniMax serves, each at a short and a long requested duration.
MODES = [
    pytest.param(spec, mode, requested, id=f"{spec.id}-{mode.value}-{requested}s")
    for spec in HAILUO
    for mode in spec.input_modes
    for requested in (1, 10)
]


# Fixtures


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[tuple[MiniMaxDouble, str]]:
    double = MiniMaxDouble(API_KEY, video=sample_video())
    async with serve_https(double) as url:
        yield double, url


@pytest.fixture
def double(served: tuple[MiniMaxDouble, str]) -> Iterator[MiniMaxDouble]:
    double, _ = served
    double.reset()
    yield double
    assert double.violations == [], "requests MiniMax would have rejected"


@pytest.fixture
def base_url(served: tuple[MiniMaxDouble, str]) -> str:
    return served[1]


@pytest.fixture
def trust_test_ca(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients built after this trust the double's test CA, as a deployment would through
    ``SSL_CERT_FILE``."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle()))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.fixture
async def fetch_media(trust_test_ca: None) -> AsyncIterator[MediaFetcher]:
    # The double is on loopback, which the production SSRF policy refuses.
    settings = Settings(allow_private_media_urls=True)
    client = media_client(settings)
    yield media_fetcher(settings, client)
    await client.aclose()


MakeProvider = Callable[..., MiniMaxProvider]


@pytest.fixture
async def make_provider(base_url: str, fetch_media: MediaFetcher) -> AsyncIterator[MakeProvider]:
    made: list[MiniMaxProvider] = []

    def make(**overrides: Any) -> MiniMaxProvider:
        options: dict[str, Any] = {
            "api_key": SecretStr(API_KEY),
            "base_url": base_url,
            "fetch_media": fetch_media,
            "timeout_seconds": 5.0,
        }
        options.update(overrides)
        provider = MiniMaxProvider(**options)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(make_provider: MakeProvider) -> MiniMaxProvider:
    return make_provider()


# Helpers


def submit_request(
    spec: ModelSpec,
    *,
    with_image: bool,
    requested: int = 6,
    prompt: str = PROMPT,
    user_params: Mapping[str, JsonValue] | None = None,
) -> SubmitRequest:
    """What ``activities/upstream.py`` sends for a job of ``spec``."""
    return SubmitRequest(
        job_id=f"vid_{secrets.token_hex(8)}",
        model=spec.id,
        endpoint=spec.endpoint(with_image=with_image),
        prompt=prompt,
        duration_seconds=spec.upstream_duration(requested),
        image_url=IMAGE_URL if with_image else None,
        image_field=spec.image_field,
        params={**(user_params or {}), **spec.fixed_params},
    )


def raw_request(
    *, resolution: JsonValue = "768P", duration: int = 6, image: bool = False, **extra: Any
) -> SubmitRequest:
    """A request the catalog would never build, to test the adapter's own checks."""
    fields: dict[str, Any] = {
        "job_id": "vid_0123456789abcdef",
        "model": "hailuo-02-768p",
        "endpoint": "MiniMax-Hailuo-02",
        "prompt": PROMPT,
        "duration_seconds": duration,
        "image_url": IMAGE_URL if image else None,
        "image_field": "first_frame_image",
        "params": {"resolution": resolution},
    }
    fields.update(extra)
    return SubmitRequest(**fields)


def job_of(task_id: str) -> UpstreamJob:
    return UpstreamJob(
        provider=ProviderName.MINIMAX, endpoint="MiniMax-Hailuo-02", request_id=task_id
    )


async def read(provider: MiniMaxProvider, job: UpstreamJob, media: MediaRef) -> bytes:
    return b"".join([chunk async for chunk in provider.open_media(job, media)])


async def failure(action: Awaitable[object]) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await action
    return caught.value


async def finished_job(
    provider: MiniMaxProvider, *, spec: ModelSpec | None = None
) -> tuple[UpstreamJob, MediaRef]:
    """Submit and poll until MiniMax reports Success."""
    spec = spec or CATALOG["hailuo-02-768p"]
    job = job_of(await provider.submit(submit_request(spec, with_image=False)))
    for _ in range(10):
        status = await provider.status(job)
        if status.media is not None:
            return job, status.media
    raise AssertionError("the double's task did not finish")


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def default_spec() -> ModelSpec:
    return CATALOG["hailuo-02-768p"]


# The protocol, model by model and mode by mode


def test_the_adapter_is_a_provider(provider: MiniMaxProvider) -> None:
    typed: Provider = provider
    assert typed.name is ProviderName.MINIMAX
    assert typed.simulated is False


@pytest.mark.parametrize(("spec", "mode", "requested"), MODES)
async def test_a_job_runs_from_submit_to_bytes(
    provider: MiniMaxProvider,
    double: MiniMaxDouble,
    spec: ModelSpec,
    mode: InputMode,
    requested: int,
) -> None:
    with_image = mode is InputMode.IMAGE
    double.task_script = TaskScript(running_polls=3)

    task_id = await provider.submit(
        submit_request(spec, with_image=with_image, requested=requested)
    )

    [create] = double.requests_to(Endpoint.CREATE)
    expected: dict[str, Any] = {
        "model": "MiniMax-Hailuo-02",
        "prompt": PROMPT,
        "duration": spec.upstream_duration(requested),
        "resolution": spec.resolution,
    }
    if with_image:
        expected["first_frame_image"] = IMAGE_URL
    assert create.body == expected
    assert type(create.body["duration"]) is int
    assert create.headers["authorization"] == "Bearer <valid>"
    assert create.headers["content-type"] == "application/json"
    assert task_id in double.tasks

    job = job_of(task_id)
    running = [await provider.status(job) for _ in range(3)]
    assert (
        running
        == [UpstreamStatus(state=UpstreamState.RUNNING, retry_after_seconds=POLL_HINT_SECONDS)] * 3
    )
    done = await provider.status(job)
    assert done.state is UpstreamState.SUCCEEDED
    assert done.media == MediaRef(
        url=f"minimax-file://{double.tasks[task_id].file_id}", content_type="video/mp4"
    )

    assert done.media is not None
    assert await read(provider, job, done.media) == double.video
    [retrieve] = double.requests_to(Endpoint.RETRIEVE)
    assert retrieve.query == {"file_id": double.tasks[task_id].file_id}
    [download] = double.requests_to(Endpoint.FILE)
    assert "authorization" not in download.headers


def test_only_512p_lacks_text_to_video() -> None:
    modes = {spec.id: spec.input_modes for spec in HAILUO}
    assert modes == {
        "hailuo-02-512p": (InputMode.IMAGE,),
        "hailuo-02-768p": (InputMode.TEXT, InputMode.IMAGE),
        "hailuo-02-1080p": (InputMode.TEXT, InputMode.IMAGE),
    }


async def test_pass_through_params_arrive_unchanged(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    user_params: dict[str, JsonValue] = {
        "prompt_optimizer": False,
        "fast_pretreatment": True,
        "aigc_watermark": True,
        "last_frame_image": "https://images.example.test/last-frame.png",
        # The catalog's fixed resolution wins, as activities/upstream.py merges params.
        "resolution": "512P",
    }
    spec = default_spec()

    await provider.submit(submit_request(spec, with_image=True, user_params=user_params))

    [create] = double.requests_to(Endpoint.CREATE)
    assert create.body == {
        **user_params,
        "resolution": "768P",
        "model": "MiniMax-Hailuo-02",
        "prompt": PROMPT,
        "duration": 6,
        "first_frame_image": IMAGE_URL,
    }


async def test_a_prompt_of_exactly_2000_characters_is_sent(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    await provider.submit(submit_request(default_spec(), with_image=False, prompt="x" * 2000))
    [create] = double.requests_to(Endpoint.CREATE)
    assert len(create.body["prompt"]) == 2000


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        pytest.param(raw_request(resolution="512P"), "image-to-video only", id="512p-text"),
        pytest.param(raw_request(resolution="1080P", duration=10), "accepts 6 s", id="1080p-10s"),
        pytest.param(raw_request(duration=8), "accepts 6 or 10 s", id="768p-8s"),
        pytest.param(raw_request(duration=5, image=True), "accepts 6 or 10 s", id="768p-5s"),
        pytest.param(raw_request(resolution="768p"), "uppercase P", id="lowercase-p"),
        pytest.param(raw_request(resolution=1080), "uppercase P", id="numeric-resolution"),
        pytest.param(raw_request(resolution="720P"), "uppercase P", id="unknown-resolution"),
        pytest.param(raw_request(prompt="x" * 2001), "at most 2000", id="long-prompt"),
        pytest.param(raw_request(endpoint="MiniMax-Hailuo-2.3"), "not one this", id="model"),
        pytest.param(
            raw_request(
                params={"resolution": "768P", "first_frame_image": IMAGE_URL},
            ),
            "may not set ['first_frame_image']",
            id="image-through-params",
        ),
        pytest.param(
            raw_request(params={"resolution": "768P", "duration": 6}),
            "may not set ['duration']",
            id="duration-through-params",
        ),
    ],
)
async def test_an_impossible_request_is_refused_before_any_call(
    provider: MiniMaxProvider, double: MiniMaxDouble, request_: SubmitRequest, reason: str
) -> None:
    error = await failure(provider.submit(request_))

    assert error.code is ErrorCode.UPSTREAM_REJECTED
    assert error.retryable is False
    assert reason in error.message
    assert double.requests == []


async def test_a_new_instance_follows_a_task_another_submitted(
    make_provider: MakeProvider, double: MiniMaxDouble
) -> None:
    first = make_provider()
    task_id = await first.submit(submit_request(default_spec(), with_image=True))
    await first.aclose()

    second = make_provider()
    job = job_of(task_id)
    assert (await second.status(job)).state is UpstreamState.RUNNING
    done = await second.status(job)
    assert done.media is not None
    assert await read(make_provider(), job, done.media) == double.video


async def test_cancel_makes_no_call(provider: MiniMaxProvider, double: MiniMaxDouble) -> None:
    task_id = await provider.submit(submit_request(default_spec(), with_image=False))
    before = len(double.requests)

    await provider.cancel(job_of(task_id))

    assert len(double.requests) == before


# Failures, classified


Prepare = Callable[[MiniMaxProvider], Awaitable[Callable[[], Awaitable[object]]]]


async def _at_create(provider: MiniMaxProvider) -> Callable[[], Awaitable[object]]:
    return lambda: provider.submit(submit_request(default_spec(), with_image=False))


async def _at_query(provider: MiniMaxProvider) -> Callable[[], Awaitable[object]]:
    job = job_of(await provider.submit(submit_request(default_spec(), with_image=False)))
    return lambda: provider.status(job)


async def _at_retrieve(provider: MiniMaxProvider) -> Callable[[], Awaitable[object]]:
    job, media = await finished_job(provider)
    return lambda: read(provider, job, media)


AT: dict[Endpoint, Prepare] = {
    Endpoint.CREATE: _at_create,
    Endpoint.QUERY: _at_query,
    Endpoint.RETRIEVE: _at_retrieve,
}
API_ENDPOINTS = [Endpoint.CREATE, Endpoint.QUERY, Endpoint.RETRIEVE]

RATE_LIMITS = [
    pytest.param(Fault.base_resp(1002), RATE_LIMIT_BACKOFF_SECONDS, id="1002"),
    pytest.param(Fault.base_resp(1039), RATE_LIMIT_BACKOFF_SECONDS, id="1039"),
    pytest.param(Fault.base_resp(1041), RATE_LIMIT_BACKOFF_SECONDS, id="1041"),
    pytest.param(Fault.base_resp(2045), SLOW_LIMIT_BACKOFF_SECONDS, id="2045"),
    pytest.param(Fault.base_resp(2056), SLOW_LIMIT_BACKOFF_SECONDS, id="2056"),
    pytest.param(Fault.http(429), RATE_LIMIT_BACKOFF_SECONDS, id="http-429"),
    pytest.param(Fault.http(429, retry_after="7"), 7.0, id="http-429-retry-after"),
    pytest.param(Fault.http(429, retry_after="0"), 1.0, id="http-429-retry-after-floor"),
    pytest.param(Fault.http(429, retry_after="86400"), 300.0, id="http-429-retry-after-cap"),
]


@pytest.mark.parametrize("endpoint", API_ENDPOINTS)
@pytest.mark.parametrize(("fault", "back_off"), RATE_LIMITS)
async def test_a_rate_limit_is_retryable_with_a_back_off(
    provider: MiniMaxProvider,
    double: MiniMaxDouble,
    endpoint: Endpoint,
    fault: Fault,
    back_off: float,
) -> None:
    act = await AT[endpoint](provider)
    double.inject(endpoint, fault)

    error = await failure(act())

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert error.retry_after_seconds == back_off
    assert "rate limited" in error.message


TRANSIENT = (
    [pytest.param(Fault.base_resp(code), id=str(code)) for code in (1000, 1001, 1024, 1033)]
    + [
        pytest.param(Fault.http(status), id=f"http-{status}")
        for status in (500, 502, 503, 504, 408)
    ]
    + [
        pytest.param(Fault.malformed(), id="malformed-json"),
        pytest.param(Fault.drop(), id="connection-dropped"),
    ]
)


@pytest.mark.parametrize("endpoint", API_ENDPOINTS)
@pytest.mark.parametrize("fault", TRANSIENT)
async def test_transient_trouble_is_retryable(
    provider: MiniMaxProvider, double: MiniMaxDouble, endpoint: Endpoint, fault: Fault
) -> None:
    act = await AT[endpoint](provider)
    double.inject(endpoint, fault)

    error = await failure(act())

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert error.retry_after_seconds is None


@pytest.mark.parametrize("endpoint", API_ENDPOINTS)
async def test_a_response_slower_than_the_timeout_is_retryable(
    make_provider: MakeProvider, double: MiniMaxDouble, endpoint: Endpoint
) -> None:
    provider = make_provider(timeout_seconds=0.3)
    act = await AT[endpoint](provider)
    double.inject(endpoint, Fault.slow(1.0))

    error = await failure(act())

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert "timed out" in error.message


async def test_a_slow_response_within_the_timeout_is_fine(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    double.inject(Endpoint.CREATE, Fault.slow(0.3))
    task_id = await provider.submit(submit_request(default_spec(), with_image=False))
    assert task_id in double.tasks


PERMANENT = [
    pytest.param(2013, ErrorCode.UPSTREAM_REJECTED, "refused the parameters", id="2013"),
    pytest.param(1042, ErrorCode.UPSTREAM_REJECTED, "invisible characters", id="1042"),
    pytest.param(1026, ErrorCode.CONTENT_REJECTED, "sensitive", id="1026"),
    pytest.param(1004, ErrorCode.UPSTREAM_REJECTED, "authentication failed", id="1004"),
    pytest.param(2049, ErrorCode.UPSTREAM_REJECTED, "API key is invalid", id="2049"),
    pytest.param(2038, ErrorCode.UPSTREAM_REJECTED, "real-name verification", id="2038"),
    pytest.param(1008, ErrorCode.UPSTREAM_REJECTED, "balance is too low", id="1008"),
    pytest.param(9999, ErrorCode.PROVIDER_ERROR, "unknown code", id="unknown-code"),
]


@pytest.mark.parametrize("endpoint", API_ENDPOINTS)
@pytest.mark.parametrize(("code", "expected", "says"), PERMANENT)
async def test_a_permanent_code_is_not_retried(
    provider: MiniMaxProvider,
    double: MiniMaxDouble,
    endpoint: Endpoint,
    code: int,
    expected: ErrorCode,
    says: str,
) -> None:
    act = await AT[endpoint](provider)
    double.inject(endpoint, Fault.base_resp(code))

    error = await failure(act())

    assert (error.code, error.retryable) == (expected, False)
    assert says in error.message
    assert f"base_resp {code}" in error.message
    assert double.trace_ids[-1] in error.message


@pytest.mark.parametrize("code", [1004, 2049, 2038, 1008])
async def test_account_problems_point_at_the_configuration(
    provider: MiniMaxProvider, double: MiniMaxDouble, code: int
) -> None:
    double.inject(Endpoint.CREATE, Fault.base_resp(code))
    error = await failure(provider.submit(submit_request(default_spec(), with_image=False)))
    assert "KYMA_MINIMAX_API_KEY" in error.message


async def test_a_wrong_key_is_refused_with_200_and_1004(
    make_provider: MakeProvider, double: MiniMaxDouble
) -> None:
    provider = make_provider(api_key=SecretStr("mm-not-the-key"))

    error = await failure(provider.submit(submit_request(default_spec(), with_image=False)))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert "authentication failed" in error.message
    assert "mm-not-the-key" not in error.message
    assert double.take_violations() == [
        "POST /v1/video_generation: missing or wrong Authorization: Bearer <key>"
    ]


async def test_a_task_of_another_account_is_refused(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    error = await failure(provider.status(job_of("999")))

    assert (error.code, error.retryable) == (ErrorCode.UPSTREAM_REJECTED, False)
    assert len(double.take_violations()) == 1


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param(TaskScript(fail=True, fail_code=1026), ErrorCode.CONTENT_REJECTED, id="1026"),
        pytest.param(TaskScript(fail=True, fail_code=1027), ErrorCode.CONTENT_REJECTED, id="1027"),
        pytest.param(TaskScript(fail=True, fail_code=1000), ErrorCode.UPSTREAM_FAILED, id="1000"),
        pytest.param(TaskScript(fail=True), ErrorCode.UPSTREAM_FAILED, id="no-code"),
    ],
)
async def test_a_failed_task_is_classified(
    provider: MiniMaxProvider, double: MiniMaxDouble, script: TaskScript, expected: ErrorCode
) -> None:
    double.task_script = script
    job = job_of(await provider.submit(submit_request(default_spec(), with_image=False)))
    assert (await provider.status(job)).state is UpstreamState.RUNNING

    status = await provider.status(job)

    assert status.state is UpstreamState.FAILED
    assert status.error_code is expected
    assert status.error_message
    assert double.trace_ids[-1] in status.error_message
    if script.fail_code:
        assert f"base_resp {script.fail_code}" in status.error_message


async def test_a_task_that_never_finishes_stays_running(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    double.task_script = TaskScript(never_finish=True)
    job = job_of(await provider.submit(submit_request(default_spec(), with_image=False)))

    states = {(await provider.status(job)).state for _ in range(20)}

    assert states == {UpstreamState.RUNNING}


async def test_a_transient_burst_shows_as_retryable_errors_then_success(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    double.inject(Endpoint.CREATE, Fault.http(502), times=2)
    double.inject(Endpoint.CREATE, Fault.base_resp(1002))
    outcomes: list[object] = []
    for _ in range(4):  # bounded: a broken adapter must fail here, not spin
        try:
            task_id = await provider.submit(submit_request(default_spec(), with_image=False))
        except ProviderError as error:
            outcomes.append((error.retryable, error.retry_after_seconds))
        else:
            outcomes.append("submitted")
            break
    assert outcomes == [(True, None), (True, None), (True, RATE_LIMIT_BACKOFF_SECONDS), "submitted"]
    assert list(double.tasks) == [task_id]

    double.inject(Endpoint.QUERY, Fault.http(429), times=2)
    double.inject(Endpoint.QUERY, Fault.http(503))
    states: list[object] = []
    for _ in range(5):
        try:
            states.append((await provider.status(job_of(task_id))).state)
        except ProviderError as error:
            states.append(error.retryable)
    assert states == [True, True, True, UpstreamState.RUNNING, UpstreamState.SUCCEEDED]


async def test_requests_run_concurrently(provider: MiniMaxProvider, double: MiniMaxDouble) -> None:
    double.task_script = TaskScript(never_finish=True)
    job = job_of(await provider.submit(submit_request(default_spec(), with_image=False)))
    double.inject(Endpoint.QUERY, Fault.slow(0.3), times=6)

    statuses = await asyncio.gather(*(provider.status(job) for _ in range(6)))

    assert {status.state for status in statuses} == {UpstreamState.RUNNING}
    assert double.max_in_flight >= 6


# Downloads


async def test_a_download_url_used_up_is_retrieved_again(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    double.url_max_uses = 1
    job, media = await finished_job(provider)
    assert await read(provider, job, media) == double.video

    double.stale_retrieves = 1  # the next retrieval re-serves the used-up URL
    assert await read(provider, job, media) == double.video

    assert len(double.requests_to(Endpoint.RETRIEVE)) == 3
    assert len(double.requests_to(Endpoint.FILE)) == 3


async def test_a_download_url_past_its_deadline_is_retrieved_again(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    double.url_ttl_seconds = 0.3
    job, media = await finished_job(provider)
    assert await read(provider, job, media) == double.video
    await asyncio.sleep(0.4)

    double.stale_retrieves = 1
    assert await read(provider, job, media) == double.video
    assert len(double.requests_to(Endpoint.RETRIEVE)) == 3


async def test_a_url_expired_twice_fails_after_one_re_retrieval(
    provider: MiniMaxProvider, double: MiniMaxDouble
) -> None:
    double.url_max_uses = 1
    job, media = await finished_job(provider)
    await read(provider, job, media)
    double.stale_retrieves = 2

    error = await failure(read(provider, job, media))

    assert (error.code, error.retryable) == (ErrorCode.REHOST_FAILED, False)
    assert "403" in error.message
    assert "Signature" not in error.message
    assert len(double.requests_to(Endpoint.RETRIEVE)) == 3


@pytest.mark.parametrize(
    ("fault", "retryable"),
    [
        pytest.param(Fault.http(503), True, id="http-503"),
        pytest.param(Fault.http(404), False, id="http-404"),
        pytest.param(Fault.drop(), True, id="connection-dropped"),
    ],
)
async def test_a_failed_download_is_a_rehost_failure(
    provider: MiniMaxProvider, double: MiniMaxDouble, fault: Fault, retryable: bool
) -> None:
    job, media = await finished_job(provider)
    double.inject(Endpoint.FILE, fault)

    error = await failure(read(provider, job, media))

    assert (error.code, error.retryable) == (ErrorCode.REHOST_FAILED, retryable)
    assert len(double.requests_to(Endpoint.RETRIEVE)) == 1


async def test_a_foreign_media_reference_is_refused(provider: MiniMaxProvider) -> None:
    media = MediaRef(url="https://example.test/video.mp4")
    error = await failure(read(provider, job_of("1"), media))
    assert (error.code, error.retryable) == (ErrorCode.REHOST_FAILED, False)


# Transport, configuration and secrets


async def test_tls_is_verified(
    make_provider: MakeProvider, double: MiniMaxDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    provider = make_provider()

    error = await failure(provider.submit(submit_request(default_spec(), with_image=False)))

    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)
    assert "ConnectError" in error.message
    assert double.requests == []


async def test_an_unreachable_host_is_retryable(make_provider: MakeProvider) -> None:
    provider = make_provider(base_url=f"https://localhost:{unused_port()}")
    error = await failure(provider.submit(submit_request(default_spec(), with_image=False)))
    assert (error.code, error.retryable) == (ErrorCode.PROVIDER_ERROR, True)


def test_from_settings_needs_a_key(fetch_media: MediaFetcher) -> None:
    assert from_settings(Settings(), fetch_media) is None
    assert from_settings(Settings(minimax_api_key=SecretStr("")), fetch_media) is None


async def test_from_settings_reaches_the_configured_host(
    base_url: str, double: MiniMaxDouble, fetch_media: MediaFetcher
) -> None:
    settings = Settings(minimax_api_key=SecretStr(API_KEY), minimax_base_url=base_url)
    provider = from_settings(settings, fetch_media)
    assert provider is not None
    try:
        task_id = await provider.submit(submit_request(default_spec(), with_image=False))
    finally:
        await provider.aclose()
    assert task_id in double.tasks


async def test_trace_ids_are_logged(
    provider: MiniMaxProvider, double: MiniMaxDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="providers.minimax")
    await provider.submit(submit_request(default_spec(), with_image=False))
    double.inject(Endpoint.CREATE, Fault.base_resp(1002))
    await failure(provider.submit(submit_request(default_spec(), with_image=False)))

    first, second = double.trace_ids
    assert first in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(second in r.getMessage() for r in warnings)


def _everything_said(error: BaseException) -> Iterator[str]:
    """The error's message and repr, and those of every error chained to it."""
    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield from (str(arg) for arg in current.args)
        current = current.__cause__ or current.__context__


async def test_the_key_never_appears_in_errors_reprs_or_logs(
    make_provider: MakeProvider, double: MiniMaxDouble, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = make_provider(timeout_seconds=0.3)
    errors: list[BaseException] = []

    async def attempt(action: Awaitable[object]) -> None:
        try:
            await action
        except ProviderError as error:
            errors.append(error)

    job, media = await finished_job(provider)
    await read(provider, job, media)
    for fault in (
        Fault.base_resp(1004),
        Fault.base_resp(1000, status_msg=f"bad key {API_KEY}"),
        Fault.http(500),
        Fault.http(429),
        Fault.malformed(),
        Fault.drop(),
        Fault.slow(1.0),
    ):
        for endpoint in API_ENDPOINTS:
            double.inject(endpoint, fault)
        await attempt(provider.submit(submit_request(default_spec(), with_image=False)))
        await attempt(provider.status(job))
        await attempt(read(provider, job, media))
    double.inject(Endpoint.FILE, Fault.http(503))
    await attempt(read(provider, job, media))
    await attempt(provider.submit(raw_request(resolution="512P")))

    assert len(errors) == 7 * 3 + 2
    said = [text for error in errors for text in _everything_said(error)]
    said += [repr(provider), str(provider.__dict__)]
    assert "**********" in "\n".join(said)  # the echoed key was masked, not dropped silently
    assert not [text for text in said if API_KEY in text]
    assert API_KEY not in caplog.text
    assert all(r.headers.get("authorization") in (None, "Bearer <valid>") for r in double.requests)
