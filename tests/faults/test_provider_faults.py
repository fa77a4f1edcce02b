"""Fault scenario "provider doubles": each kind of provider trouble against each real adapter.

Jobs run the real workflow on Temporal's time-skipping server (the ``jobs`` harness), and the
real fal, MiniMax and Vertex adapters talk HTTPS to their protocol-faithful doubles, which are
told to misbehave: 5xx bursts, 429 storms, hangs, dropped connections, malformed JSON, an output
that is gone (404) and an output that is not a video. ``tests/workflows/test_*_jobs.py`` show one
fault per provider; here every fault kind meets every provider it applies to, and every scenario
ends with :func:`~tests.faults.invariants.assert_nothing_lost` fed with what the doubles saw
(how many upstream jobs each kyma job created) and what the blob store holds.

What must hold (the seed contract, ``kyma_video/errors.py`` and each adapter's documented
classification):

* Trouble the provider recovers from -- 5xx bursts, 429 storms, dropped connections, malformed
  answers, a hang shorter than the deadline -- slows a job down and never fails it: it ends
  ``succeeded``, charged once, with exactly one upstream job.
* A submission whose outcome is unknown (the answer was cut off, unreadable or never came after
  the provider may have accepted it) is handled as each adapter documents: fal never sends it
  again and refunds the job (``provider_error``); MiniMax and Vertex, which offer no idempotency
  key, send it again, so the provider may hold a second, orphaned job -- the customer is still
  charged exactly once.
* Permanent failures end with the hold released: an output that 404s is ``refunded``
  (``rehost_failed``), an output that is not a video is ``failed`` (``invalid_output``), and a
  provider that hangs for longer than the deadline leaves the job ``expired``.
"""

import asyncio
import contextlib
import itertools
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import SecretStr

from kyma_video.errors import ErrorCode, JobStatus
from kyma_video.jobs import JobView
from kyma_video.money import charge
from kyma_video.settings import Settings
from providers.base import Provider
from providers.catalog import ProviderName, get_model
from providers.fal import FalProvider
from providers.http_media import media_client, media_fetcher
from providers.minimax import MiniMaxProvider
from providers.vertex import VertexProvider
from tests.faults.invariants import Findings, assert_nothing_lost
from tests.providers.doubles import fal as fal_double
from tests.providers.doubles import minimax as minimax_double
from tests.providers.doubles import vertex as vertex_double
from tests.providers.doubles.https import ca_bundle, serve_https
from tests.workflows.conftest import FAL_KEY, MINIMAX_KEY, STARTING_BALANCE
from tests.workflows.harness import JobHarness
from workflows import JobTimings

PROVIDERS = ["fal", "minimax", "vertex"]
#: Bytes a broken CDN serves instead of a video.
NOT_A_VIDEO = b"<html><body><h1>503 Service Unavailable</h1></body></html>"
#: The adapters' per-request timeout in the hang scenarios (30-60 s in production), so that a
#: hang outlasts it in seconds of real time.
IMPATIENT_SECONDS = 2.5
#: How long a hung answer takes: well past :data:`IMPATIENT_SECONDS`.
HANG_SECONDS = 5.0
#: A durable deadline short enough for a hang to outlast it (600 s in production).
SHORT_DEADLINE = JobTimings(deadline_seconds=5, poll_interval_seconds=5)


class Fault(StrEnum):
    SERVER_ERROR = "5xx"
    RATE_LIMITED = "429"
    DROPPED = "dropped connection"
    MALFORMED = "malformed JSON"
    HANG = "hang"


class Step(StrEnum):
    """Where a fault strikes: the submission, or the status look that follows it."""

    SUBMIT = "submit"
    POLL = "poll"


class Cloud(ABC):
    """One provider's double seen through the same few knobs, so one scenario runs on all."""

    name: ProviderName
    model: str
    duration: int

    @abstractmethod
    def inject(self, step: Step, fault: Fault, times: int) -> None:
        """The next ``times`` requests of ``step`` misbehave as ``fault``."""

    @abstractmethod
    def requests(self, step: Step) -> int:
        """Requests of ``step`` the provider received (refused and faulted ones included)."""

    @abstractmethod
    def upstream_jobs(self) -> int:
        """Jobs the provider created: what it would bill us for."""

    @abstractmethod
    def lose_output(self) -> None:
        """The finished video is gone (404) by the time it is fetched."""

    @abstractmethod
    def deliver(self, data: bytes) -> None:
        """Finished jobs deliver ``data`` as their video."""

    @property
    @abstractmethod
    def video(self) -> bytes:
        """What a finished job delivers."""

    @property
    @abstractmethod
    def violations(self) -> list[str]:
        """Requests the real provider would have rejected."""


class FalCloud(Cloud):
    name = ProviderName.FAL
    model = "kling-3-pro"
    duration = 5
    _STEPS: ClassVar[dict[Step, fal_double.Operation]] = {
        Step.SUBMIT: fal_double.Operation.SUBMIT,
        Step.POLL: fal_double.Operation.STATUS,
    }

    def __init__(self, double: fal_double.FalQueueDouble) -> None:
        self.double = double

    def inject(self, step: Step, fault: Fault, times: int) -> None:
        for one in itertools.islice(_fal_faults(fault), times):
            self.double.inject(self._STEPS[step], one)

    def requests(self, step: Step) -> int:
        return len(self.double.requests_to(self._STEPS[step]))

    def upstream_jobs(self) -> int:
        return len(self.double.jobs)

    def lose_output(self) -> None:
        gone = fal_double.Fault.http(404, {"detail": "Not Found"})
        self.double.inject(fal_double.Operation.MEDIA, gone)

    def deliver(self, data: bytes) -> None:
        self.double.video = data

    @property
    def video(self) -> bytes:
        return self.double.video

    @property
    def violations(self) -> list[str]:
        return self.double.violations


def _fal_faults(fault: Fault) -> Iterator[fal_double.Fault]:
    if fault is Fault.SERVER_ERROR:
        return itertools.cycle(
            [
                fal_double.Fault.http(500, {"detail": "Internal Server Error"}),
                fal_double.Fault.http(502, {"detail": "Bad Gateway"}),
                fal_double.Fault.platform(503),
            ]
        )
    return itertools.repeat(
        {
            Fault.RATE_LIMITED: fal_double.Fault.rate_limited("2"),
            Fault.DROPPED: fal_double.Fault.drop(),
            Fault.MALFORMED: fal_double.Fault.malformed(),
            Fault.HANG: fal_double.Fault.slow(HANG_SECONDS),
        }[fault]
    )


class MiniMaxCloud(Cloud):
    name = ProviderName.MINIMAX
    model = "hailuo-02-768p"
    duration = 6
    _STEPS: ClassVar[dict[Step, minimax_double.Endpoint]] = {
        Step.SUBMIT: minimax_double.Endpoint.CREATE,
        Step.POLL: minimax_double.Endpoint.QUERY,
    }

    def __init__(
        self, double: minimax_double.MiniMaxDouble, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.double = double
        # The double is shared by the module's tests: what a test changes must be undone.
        self._monkeypatch = monkeypatch

    def inject(self, step: Step, fault: Fault, times: int) -> None:
        for one in itertools.islice(_minimax_faults(fault), times):
            self.double.inject(self._STEPS[step], one)

    def requests(self, step: Step) -> int:
        return len(self.double.requests_to(self._STEPS[step]))

    def upstream_jobs(self) -> int:
        return len(self.double.tasks)

    def lose_output(self) -> None:
        self.double.inject(minimax_double.Endpoint.FILE, minimax_double.Fault.http(404))

    def deliver(self, data: bytes) -> None:
        self._monkeypatch.setattr(self.double, "video", data)

    @property
    def video(self) -> bytes:
        return self.double.video

    @property
    def violations(self) -> list[str]:
        return self.double.violations


def _minimax_faults(fault: Fault) -> Iterator[minimax_double.Fault]:
    if fault is Fault.SERVER_ERROR:
        return itertools.cycle([minimax_double.Fault.http(status) for status in (500, 502, 503)])
    return itertools.repeat(
        {
            Fault.RATE_LIMITED: minimax_double.Fault.http(429, retry_after="2"),
            Fault.DROPPED: minimax_double.Fault.drop(),
            Fault.MALFORMED: minimax_double.Fault.malformed(),
            Fault.HANG: minimax_double.Fault.slow(HANG_SECONDS),
        }[fault]
    )


class VertexCloud(Cloud):
    name = ProviderName.VERTEX
    model = "veo-3-fast"
    duration = 4
    _STEPS: ClassVar[dict[Step, str]] = {
        Step.SUBMIT: "predictLongRunning",
        Step.POLL: "fetchPredictOperation",
    }

    def __init__(self, double: vertex_double.VertexDouble) -> None:
        self.double = double

    def inject(self, step: Step, fault: Fault, times: int) -> None:
        faults = itertools.islice(_vertex_faults(fault), times)
        self.double.inject(*faults, method=self._STEPS[step])

    def requests(self, step: Step) -> int:
        return len(self.double.calls(self._STEPS[step]))

    def upstream_jobs(self) -> int:
        return len(self.double.operations)

    def lose_output(self) -> None:
        # Veo returns the video inline in the operation: the analogue of an output URL that
        # 404s is an operation that is gone once the poll that saw it finish has been answered.
        self.double.script(vertex_double.video(done_answers=1))

    def deliver(self, data: bytes) -> None:
        self.double.script(vertex_double.video(data=data))

    @property
    def video(self) -> bytes:
        return vertex_double.sample_mp4()

    @property
    def violations(self) -> list[str]:
        return self.double.violations


def _vertex_faults(fault: Fault) -> Iterator[vertex_double.Fault]:
    if fault is Fault.SERVER_ERROR:
        return itertools.cycle(
            [vertex_double.internal(), vertex_double.gateway_html(), vertex_double.unavailable()]
        )
    return itertools.repeat(
        {
            Fault.RATE_LIMITED: vertex_double.rate_limited("2s"),
            Fault.DROPPED: vertex_double.dropped(),
            Fault.MALFORMED: vertex_double.malformed_json(),
            Fault.HANG: vertex_double.slow(HANG_SECONDS),
        }[fault]
    )


@pytest.fixture(params=PROVIDERS)
def cloud(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Cloud:
    """The provider named by the parameter, through the shared ``fal``/``minimax``/``vertex``
    fixtures (real adapter registered with the ``jobs`` harness, double over HTTPS)."""
    double = request.getfixturevalue(request.param)
    if request.param == "fal":
        return FalCloud(double)
    if request.param == "minimax":
        return MiniMaxCloud(double, monkeypatch)
    return VertexCloud(double)


@pytest.fixture(params=PROVIDERS)
async def impatient_cloud(
    request: pytest.FixtureRequest,
    jobs: JobHarness,
    served: tuple[minimax_double.MiniMaxDouble, str],
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Cloud]:
    """Like :func:`cloud`, but the adapter gives up on a request after
    :data:`IMPATIENT_SECONDS`, so a hang outlasts its timeout in seconds rather than minutes
    (the shared fixtures build adapters with the production timeouts)."""
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle()))
    settings = Settings(allow_private_media_urls=True)  # the doubles are on loopback
    client = media_client(settings)
    fetch = media_fetcher(settings, client)
    provider: Provider
    selected: Cloud
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "fal":
            fal = fal_double.FalQueueDouble(FAL_KEY, video=fal_double.sample_video())
            url = await stack.enter_async_context(serve_https(fal))
            provider = FalProvider(
                key=SecretStr(FAL_KEY),
                queue_url=url,
                fetch_media=fetch,
                request_timeout_seconds=IMPATIENT_SECONDS,
            )
            selected = FalCloud(fal)
        elif request.param == "minimax":
            minimax, url = served
            minimax.reset()
            provider = MiniMaxProvider(
                api_key=SecretStr(MINIMAX_KEY),
                base_url=url,
                fetch_media=fetch,
                timeout_seconds=IMPATIENT_SECONDS,
            )
            selected = MiniMaxCloud(minimax, monkeypatch)
        else:
            vertex = await stack.enter_async_context(vertex_double.serve())
            provider = VertexProvider(
                project=vertex_double.PROJECT,
                location=vertex_double.LOCATION,
                base_url=vertex.base_url,
                credentials=vertex_double.StaticTokenCredentials(),
                fetch_media=fetch,
                timeout_seconds=IMPATIENT_SECONDS,
            )
            selected = VertexCloud(vertex)
        jobs.real_providers[selected.name] = provider
        yield selected
        await provider.aclose()
        await client.aclose()
    assert selected.violations == [], "requests the provider would have rejected"


# Helpers.


async def run_job(jobs: JobHarness, cloud: Cloud, prompt: str) -> JobView:
    request = jobs.request(model=cloud.model, duration=cloud.duration, prompt=prompt)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(request)
        return (await handle.result()).job


def stored_keys(blobs: Path) -> list[str]:
    """Every object in the harness's local blob store (temporary upload files included)."""
    if not blobs.exists():
        return []
    return sorted(path.relative_to(blobs).as_posix() for path in blobs.rglob("*") if path.is_file())


async def nothing_lost(
    jobs: JobHarness,
    cloud: Cloud,
    job: JobView,
    tmp_path: Path,
    *,
    resubmission_allowed: tuple[str, ...] = (),
) -> Findings:
    findings = await assert_nothing_lost(
        jobs.ledger,
        [jobs.caller.account_id],
        temporal=jobs.env.client,
        submissions={job.job_id: cloud.upstream_jobs()},
        resubmission_allowed=resubmission_allowed,
        blob_keys=stored_keys(tmp_path / "blobs"),
    )
    assert list(findings.jobs) == [job.job_id]
    return findings


async def assert_succeeded_and_charged_once(jobs: JobHarness, cloud: Cloud, job: JobView) -> None:
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.output is not None
    assert await jobs.blobs.read(f"{job.job_id}.mp4") == cloud.video
    rate = get_model(cloud.model).per_second_usd
    assert job.charged_amount == charge(rate, cloud.duration, job.output.duration_seconds)
    assert await jobs.assert_balanced() == STARTING_BALANCE - job.charged_amount


async def assert_ended_unpaid(
    jobs: JobHarness, job: JobView, status: JobStatus, code: ErrorCode
) -> None:
    assert job.status is status
    assert job.error is not None and job.error.code is code, job.error
    assert job.charged_amount is None and job.output is None
    assert await jobs.assert_balanced() == STARTING_BALANCE


async def wait_until(condition: Callable[[], bool], *, within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if condition():
                return
            await asyncio.sleep(0.05)


# Trouble the provider recovers from.


@pytest.mark.parametrize(
    ("fault", "times"),
    [
        (Fault.SERVER_ERROR, 5),
        (Fault.RATE_LIMITED, 10),
        (Fault.DROPPED, 3),
        (Fault.MALFORMED, 3),
    ],
)
async def test_trouble_while_polling_slows_the_job_but_it_succeeds_charged_once(
    jobs: JobHarness, cloud: Cloud, fault: Fault, times: int, tmp_path: Path
):
    cloud.inject(Step.POLL, fault, times)
    job = await run_job(jobs, cloud, f"polled through a {fault}")
    await assert_succeeded_and_charged_once(jobs, cloud, job)
    assert cloud.requests(Step.POLL) > times  # every fault was met, then a real answer
    assert (cloud.requests(Step.SUBMIT), cloud.upstream_jobs()) == (1, 1)
    await nothing_lost(jobs, cloud, job, tmp_path)


@pytest.mark.parametrize(("fault", "times"), [(Fault.SERVER_ERROR, 5), (Fault.RATE_LIMITED, 10)])
async def test_submissions_refused_with_5xx_or_429_are_retried_into_one_upstream_job(
    jobs: JobHarness, cloud: Cloud, fault: Fault, times: int, tmp_path: Path
):
    cloud.inject(Step.SUBMIT, fault, times)
    job = await run_job(jobs, cloud, f"submitted through a {fault} storm")
    await assert_succeeded_and_charged_once(jobs, cloud, job)
    # A refused submission made nothing upstream: one job, after every refusal was met.
    assert cloud.requests(Step.SUBMIT) == times + 1
    assert cloud.upstream_jobs() == 1
    await nothing_lost(jobs, cloud, job, tmp_path)


@pytest.mark.parametrize("cloud", ["minimax", "vertex"], indirect=True)
@pytest.mark.parametrize("fault", [Fault.DROPPED, Fault.MALFORMED])
async def test_a_submission_cut_off_before_the_provider_took_it_is_sent_again_and_succeeds(
    jobs: JobHarness, cloud: Cloud, fault: Fault, tmp_path: Path
):
    # These doubles cut the answer off before creating anything (a proxy or load balancer in
    # front of the API failing), and both adapters retry such a submission.
    cloud.inject(Step.SUBMIT, fault, 2)
    job = await run_job(jobs, cloud, f"a submission met a {fault}")
    await assert_succeeded_and_charged_once(jobs, cloud, job)
    assert (cloud.requests(Step.SUBMIT), cloud.upstream_jobs()) == (3, 1)
    await nothing_lost(jobs, cloud, job, tmp_path)


@pytest.mark.parametrize("fault", [Fault.DROPPED, Fault.MALFORMED])
async def test_a_submission_cut_off_after_fal_took_it_is_never_sent_again_and_is_refunded(
    jobs: JobHarness, fal: fal_double.FalQueueDouble, fault: Fault, tmp_path: Path
):
    # fal's double accepts the request, then cuts its answer off: fal may have a paid job, so
    # the adapter does not risk a second one (providers/fal.py) and the job is ours to refund.
    cloud = FalCloud(fal)
    cloud.inject(Step.SUBMIT, fault, 1)
    job = await run_job(jobs, cloud, f"fal took it, then a {fault}")
    await assert_ended_unpaid(jobs, job, JobStatus.REFUNDED, ErrorCode.PROVIDER_ERROR)
    assert (cloud.requests(Step.SUBMIT), cloud.upstream_jobs()) == (1, 1)
    await nothing_lost(jobs, cloud, job, tmp_path)


async def test_a_hang_shorter_than_the_deadline_is_cut_by_the_request_timeout_and_retried(
    jobs: JobHarness, impatient_cloud: Cloud, tmp_path: Path
):
    cloud = impatient_cloud
    cloud.inject(Step.POLL, Fault.HANG, 2)
    job = await run_job(jobs, cloud, "the provider went quiet for a while")
    await assert_succeeded_and_charged_once(jobs, cloud, job)
    assert cloud.requests(Step.POLL) > 2
    assert (cloud.requests(Step.SUBMIT), cloud.upstream_jobs()) == (1, 1)
    await nothing_lost(jobs, cloud, job, tmp_path)


@pytest.mark.parametrize("impatient_cloud", ["fal"], indirect=True)
async def test_a_submission_that_hangs_past_the_timeout_is_never_sent_again_by_fal(
    jobs: JobHarness, impatient_cloud: Cloud, tmp_path: Path
):
    cloud = impatient_cloud
    cloud.inject(Step.SUBMIT, Fault.HANG, 1)
    job = await run_job(jobs, cloud, "fal took it and went quiet")
    await assert_ended_unpaid(jobs, job, JobStatus.REFUNDED, ErrorCode.PROVIDER_ERROR)
    assert (cloud.requests(Step.SUBMIT), cloud.upstream_jobs()) == (1, 1)
    await nothing_lost(jobs, cloud, job, tmp_path)


@pytest.mark.parametrize("impatient_cloud", ["minimax", "vertex"], indirect=True)
async def test_a_submission_that_hangs_past_the_timeout_is_sent_again_and_charged_once(
    jobs: JobHarness, impatient_cloud: Cloud, tmp_path: Path
):
    cloud = impatient_cloud
    cloud.inject(Step.SUBMIT, Fault.HANG, 1)
    job = await run_job(jobs, cloud, "the provider took it and went quiet")
    await assert_succeeded_and_charged_once(jobs, cloud, job)
    # The documented window (providers/minimax.py, providers/vertex.py: no idempotency key
    # upstream): the hung submission made a job too, once its answer was written; it is
    # orphaned upstream, and never billed to the customer.
    await wait_until(lambda: cloud.upstream_jobs() == 2)
    assert cloud.requests(Step.SUBMIT) == 2
    await nothing_lost(jobs, cloud, job, tmp_path, resubmission_allowed=(job.job_id,))


# Permanent failures: the job ends and the hold goes back.


async def test_an_output_that_is_gone_refunds_the_job_and_stores_nothing(
    jobs: JobHarness, cloud: Cloud, tmp_path: Path
):
    cloud.lose_output()
    job = await run_job(jobs, cloud, "an output that 404s")
    await assert_ended_unpaid(jobs, job, JobStatus.REFUNDED, ErrorCode.REHOST_FAILED)
    assert cloud.upstream_jobs() == 1
    await nothing_lost(jobs, cloud, job, tmp_path)


async def test_an_output_that_is_not_a_video_fails_the_job_and_stores_nothing(
    jobs: JobHarness, cloud: Cloud, tmp_path: Path
):
    cloud.deliver(NOT_A_VIDEO)
    job = await run_job(jobs, cloud, "an html page instead of a video")
    await assert_ended_unpaid(jobs, job, JobStatus.FAILED, ErrorCode.INVALID_OUTPUT)
    assert cloud.upstream_jobs() == 1
    await nothing_lost(jobs, cloud, job, tmp_path)


async def test_a_provider_that_hangs_past_the_deadline_leaves_the_job_expired_and_refunded(
    jobs: JobHarness, impatient_cloud: Cloud, tmp_path: Path
):
    cloud = impatient_cloud
    jobs.timings = SHORT_DEADLINE
    # Every look hangs: far more than the deadline leaves room for.
    cloud.inject(Step.POLL, Fault.HANG, 50)
    job = await run_job(jobs, cloud, "the provider never answers again")
    await assert_ended_unpaid(jobs, job, JobStatus.EXPIRED, ErrorCode.DEADLINE_EXCEEDED)
    # Submitted and then looked at: it was the hung looks that outlasted the deadline.
    assert cloud.upstream_jobs() == 1 and cloud.requests(Step.POLL) >= 1
    if isinstance(cloud, FalCloud):
        # fal is the provider that can cancel: the abandoned job is stopped upstream.
        assert len(cloud.double.requests_to(fal_double.Operation.CANCEL)) == 1
    await nothing_lost(jobs, cloud, job, tmp_path)
