"""Fault scenario "security": what one caller may not reach, through the real HTTP API.

* A job is its account's: another account's key gets the answer a job that does not exist gets
  (``404 not_found``, same shape, no existence leak), and reusing the owner's idempotency key
  makes the other account its own job rather than a replay of the owner's.
* A revoked key is refused (``401 auth_error``) on its very next request, while the job it
  started runs on and settles.
* URLs we fetch on someone's behalf never reach inside the network: a first-frame
  ``image_url`` or a provider's output URL aimed at loopback, private ranges or the metadata
  service -- directly, by a name, or through a redirect from a public-looking host -- is
  refused before any connection to it is made.

Where the refusal happens is what the code says (``kyma_video/jobs.py``, ``providers/``):
admission checks only that ``image_url`` is an ``https://`` URL (the seed contract asks for
nothing more), and addresses are vetted where a fetch happens -- the Vertex adapter fetching
the first frame while submitting (the job fails ``upstream_rejected``: nothing was sent to
Vertex) and the rehost fetching the output (the job is refunded ``rehost_failed``). fal and
MiniMax take the image URL and fetch it themselves, from their network, so no address of ours
is at stake there. Either way the hold is released.

The first two scenarios use the ``stack`` fixture. The URL scenarios need real adapters behind
the API, so :func:`guarded` builds the same stack with the fal, MiniMax and Vertex adapters
talking to their HTTPS doubles, the production URL policy (``KYMA_ALLOW_PRIVATE_MEDIA_URLS``
off) and one carve-out: ``cdn.example.test`` resolves to 127.0.0.2, which the policy admits as
if it were a public address, so a redirect origin is reachable while everything it redirects to
stays refused. An HTTPS server on 127.0.0.1 stands for an internal service; it must never see a
request. Every scenario ends with :func:`~tests.faults.invariants.assert_nothing_lost`.
"""

import asyncio
import base64
import dataclasses
import ipaddress
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from blob import from_settings as blob_store_from_settings
from kyma_video.errors import ErrorCode, JobStatus
from kyma_video.money import hold_amount
from ledger import Ledger
from providers.catalog import ProviderName, get_model
from providers.fal import FalProvider
from providers.http_media import (
    CONNECT_TIMEOUT_SECONDS,
    IDLE_TIMEOUT_SECONDS,
    media_fetcher,
    media_policy,
)
from providers.minimax import MiniMaxProvider
from providers.registry import ProviderRegistry
from providers.url_safety import IPAddress, safe_async_client, system_resolver
from providers.vertex import VertexProvider
from tests.api.conftest import Stack, serving, stack_settings
from tests.faults.invariants import Findings, assert_nothing_lost
from tests.providers.doubles import vertex as vertex_double
from tests.providers.doubles.fal import FalQueueDouble, Script
from tests.providers.doubles.fal import sample_video as fal_video
from tests.providers.doubles.https import ca_bundle, serve_https
from tests.providers.doubles.minimax import MiniMaxDouble, TaskScript
from tests.providers.doubles.minimax import sample_video as minimax_video
from tests.support import allow_public_reads
from tests.workflows.conftest import FAL_KEY, MINIMAX_KEY
from worker import build_worker

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.postgres

GENERATIONS = "/v1/videos/generations"
TERMINAL = {"succeeded", "failed", "refunded", "expired"}
SIMULATED = {"model": "kling-2.5-pro", "prompt": "an hourglass", "duration": 5}
SIMULATED_HOLD = hold_amount(get_model("kling-2.5-pro").per_second_usd, 5)

#: A public-looking host, resolved (for the guarded fetcher only) to an address that the policy
#: admits as if it were public: the one carve-out in the production policy.
CDN_HOST = "cdn.example.test"
CDN_ADDRESS = "127.0.0.2"
METADATA = "https://169.254.169.254/latest/meta-data/iam/security-credentials/"


# The real API over the simulated provider: ownership and revocation.


def error_of(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The documented error body, ``{"error": {code, message, param?}}``, and nothing else."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert set(error) <= {"code", "message", "param"}
    assert error["code"] == code and error["message"]
    return error


async def settled(env: WorkflowEnvironment, *job_ids: str) -> None:
    """Wait for the jobs' workflows to close: a job's run ends once its hold is settled."""
    async with asyncio.timeout(90):
        await asyncio.gather(*(env.client.get_workflow_handle(j).result() for j in job_ids))


def bucket_keys(s3_client: "S3Client", bucket: str, prefix: str) -> list[str]:
    keys = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [item["Key"].removeprefix(prefix) for item in page.get("Contents", [])]
    return keys


async def nothing_lost(
    stack: Stack,
    env: WorkflowEnvironment,
    accounts: list[str],
    s3_client: "S3Client",
    bucket: str,
    submissions: dict[str, int] | None = None,
) -> Findings:
    return await assert_nothing_lost(
        stack.ledger,
        accounts,
        temporal=env.client,
        submissions=submissions,
        blob_keys=bucket_keys(s3_client, bucket, stack.settings.s3_prefix),
    )


async def test_another_accounts_job_is_not_found_exactly_like_a_job_that_does_not_exist(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client", s3_bucket: str
):
    owner_account, owner = await stack.account()
    stranger_account, stranger = await stack.account()
    body = {**SIMULATED, "simulate_seconds": 1, "idempotency_key": "brand-film-1"}
    created = await stack.http.post(GENERATIONS, json=body, headers=owner)
    assert created.status_code == 202
    job_id = created.json()["job_id"]
    assert (await stack.http.get(f"/v1/jobs/{job_id}", headers=owner)).status_code == 200

    theirs = error_of(
        await stack.http.get(f"/v1/jobs/{job_id}", headers=stranger), 404, "not_found"
    )
    made_up = "vid_" + uuid.uuid4().hex
    missing = error_of(
        await stack.http.get(f"/v1/jobs/{made_up}", headers=stranger), 404, "not_found"
    )
    # Byte for byte the same answer, but for the id the caller itself sent.
    assert theirs == {**missing, "message": missing["message"].replace(made_up, job_id)}

    # The owner's idempotency key names a different job for anyone else: no replay of it.
    own = await stack.http.post(GENERATIONS, json=body, headers=stranger)
    assert own.status_code == 202
    assert own.json()["job_id"] != job_id
    assert await stack.ledger.balance(stranger_account) == Decimal(10) - SIMULATED_HOLD

    await settled(dev_env, job_id, own.json()["job_id"])
    findings = await nothing_lost(
        stack, dev_env, [owner_account, stranger_account], s3_client, s3_bucket
    )
    assert findings.statuses() == {JobStatus.SUCCEEDED: 2}
    assert {job.account_id for job in findings.jobs.values()} == {owner_account, stranger_account}


async def test_a_revoked_key_is_refused_on_its_very_next_request_and_its_job_still_settles(
    stack: Stack, dev_env: WorkflowEnvironment, s3_client: "S3Client", s3_bucket: str
):
    account, auth = await stack.account()
    [key] = await stack.ledger.list_api_keys(account)
    _, other_key = await stack.ledger.create_api_key(account)
    sibling = {"Authorization": f"Bearer {other_key}"}
    created = await stack.http.post(
        GENERATIONS, json={**SIMULATED, "simulate_seconds": 2}, headers=auth
    )
    assert created.status_code == 202
    job_id = created.json()["job_id"]
    assert (await stack.http.get(f"/v1/jobs/{job_id}", headers=auth)).status_code == 200

    await stack.ledger.revoke_api_key(key.id)
    for method, path in (
        ("GET", f"/v1/jobs/{job_id}"),
        ("POST", GENERATIONS),
        ("GET", "/v1/balance"),
    ):
        refused = await stack.http.request(method, path, json=SIMULATED, headers=auth)
        error_of(refused, 401, "auth_error")
    # Revocation is of the key, not the account: its other key still reads the job.
    assert (await stack.http.get(f"/v1/jobs/{job_id}", headers=sibling)).status_code == 200

    await settled(dev_env, job_id)
    findings = await nothing_lost(stack, dev_env, [account], s3_client, s3_bucket)
    assert list(findings.jobs) == [job_id]  # the refused POST held nothing
    assert findings.statuses() == {JobStatus.SUCCEEDED: 1}


# The real API over real adapters, with the production URL policy.


@dataclass
class Recorder:
    """An HTTPS server that records the paths asked of it."""

    url: str
    paths: list[str]


def recording_app(paths: list[str]) -> Starlette:
    """Serves a real first frame (what an attacker would hope to read), or redirects where
    ``/redirect?to=`` says."""

    async def serve(request: Request) -> Response:
        paths.append(request.url.path)
        target = request.query_params.get("to")
        if request.url.path == "/redirect" and target:
            return RedirectResponse(target, status_code=302)
        return Response(vertex_double.first_frame_png(), media_type="image/png")

    return Starlette(routes=[Route("/{path:path}", serve, methods=["GET"])])


@dataclass
class Guarded:
    stack: Stack
    fal: FalQueueDouble
    minimax: MiniMaxDouble
    vertex: vertex_double.VertexDouble
    #: Stands for an internal service on loopback: it must never be asked anything.
    intranet: Recorder
    #: ``https://cdn.example.test:<port>``: a public-looking origin (frames, redirects).
    cdn: Recorder

    def to_intranet(self, path: str) -> str:
        return f"https://127.0.0.1:{httpx.URL(self.intranet.url).port}{path}"

    def redirect(self, target: str) -> str:
        return f"{self.cdn.url}/redirect?to={quote(target, safe='')}"

    def upstream_jobs(
        self, jobs: list[dict[str, Any]], bodies: list[dict[str, Any]]
    ) -> dict[str, int]:
        """Jobs each provider created, per kyma job (told apart by their prompts)."""
        prompts = [job.body.get("prompt") for job in self.fal.jobs.values()]
        prompts += [task.body.get("prompt") for task in self.minimax.tasks.values()]
        prompts += [
            call.body["instances"][0].get("prompt")
            for call in self.vertex.calls("predictLongRunning")
            if call.authorized
        ]
        return {
            job["job_id"]: prompts.count(body["prompt"])
            for job, body in zip(jobs, bodies, strict=True)
        }


@pytest.fixture
async def guarded(
    dev_env: WorkflowEnvironment,
    postgres_database_url: str,
    moto_server: str,
    s3_client: "S3Client",
    s3_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Guarded]:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle()))  # the doubles' test CA
    monkeypatch.setenv("KYMA_ALLOW_PRIVATE_MEDIA_URLS", "false")
    allow_public_reads(s3_client, s3_bucket)
    settings = stack_settings(dev_env, postgres_database_url, moto_server, s3_bucket)
    settings = settings.model_copy(update={"simulated_provider": False})
    assert not settings.allow_private_media_urls
    policy = dataclasses.replace(
        media_policy(settings),
        extra_allowed=frozenset({ipaddress.ip_network(f"{CDN_ADDRESS}/32")}),
    )

    async def resolve(host: str, port: int) -> list[IPAddress]:
        if host == CDN_HOST:
            return [ipaddress.ip_address(CDN_ADDRESS)]
        return await system_resolver(host, port)

    # The production media client (providers.http_media.media_client), but for the policy and
    # the resolver.
    timeout = httpx.Timeout(IDLE_TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
    fetching = safe_async_client(policy, timeout=timeout, resolver=resolve)
    fetch = media_fetcher(settings, fetching)
    fal, minimax = (
        FalQueueDouble(FAL_KEY, video=fal_video()),
        MiniMaxDouble(MINIMAX_KEY, video=minimax_video()),
    )
    minimax.task_script = TaskScript(running_polls=0)  # MiniMax asks for 10 s between looks
    intranet_paths: list[str] = []
    cdn_paths: list[str] = []
    async with (
        serve_https(fal) as fal_url,
        serve_https(minimax) as minimax_url,
        vertex_double.serve() as vertex,
        serve_https(recording_app(intranet_paths)) as intranet_url,
        serve_https(recording_app(cdn_paths), host=CDN_ADDRESS, hostnames=(CDN_HOST,)) as cdn_url,
    ):
        providers = {
            ProviderName.FAL: FalProvider(
                key=SecretStr(FAL_KEY), queue_url=fal_url, fetch_media=fetch
            ),
            ProviderName.MINIMAX: MiniMaxProvider(
                api_key=SecretStr(MINIMAX_KEY), base_url=minimax_url, fetch_media=fetch
            ),
            ProviderName.VERTEX: VertexProvider(
                project=vertex_double.PROJECT,
                location=vertex_double.LOCATION,
                base_url=vertex.base_url,
                credentials=vertex_double.StaticTokenCredentials(),
                fetch_media=fetch,
            ),
        }
        registry = ProviderRegistry(
            real=providers,
            closers=(*(p.aclose for p in providers.values()), fetching.aclose),
        )
        deps = ActivityDeps(
            ledger=Ledger.from_url(postgres_database_url),
            providers=registry,
            blobs=blob_store_from_settings(settings),
        )
        ledger = Ledger.from_url(postgres_database_url)
        try:
            async with (
                build_worker(dev_env.client, settings, deps),
                serving(settings) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                yield Guarded(
                    stack=Stack(url=url, settings=settings, ledger=ledger, http=http),
                    fal=fal,
                    minimax=minimax,
                    vertex=vertex,
                    intranet=Recorder(intranet_url, intranet_paths),
                    cdn=Recorder(cdn_url, cdn_paths),
                )
        finally:
            await ledger.close()
            await registry.aclose()
            await deps.ledger.close()
    for double in (fal, minimax, vertex):
        assert double.violations == [], "requests the provider would have rejected"


async def run_jobs(
    guarded: Guarded, env: WorkflowEnvironment, auth: dict[str, str], bodies: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Submit every body (each must be admitted: 202), wait for the jobs to settle, and
    return them as the API shows them."""
    http = guarded.stack.http
    created = await asyncio.gather(*(http.post(GENERATIONS, json=b, headers=auth) for b in bodies))
    assert [r.status_code for r in created] == [202] * len(bodies), [r.text for r in created]
    job_ids = [r.json()["job_id"] for r in created]
    await settled(env, *job_ids)
    jobs = [(await http.get(f"/v1/jobs/{j}", headers=auth)).json() for j in job_ids]
    assert all(job["status"] in TERMINAL for job in jobs)
    return jobs


def assert_refused(job: dict[str, Any], status: JobStatus, code: ErrorCode, reason: str) -> None:
    assert job["status"] == status.value and job["error"] is not None, job
    assert job["error"]["code"] == code.value, job["error"]
    assert reason in job["error"]["message"], job["error"]["message"]
    assert job["charged_amount"] is None and job["output"] is None


async def test_image_urls_aimed_inside_the_network_are_refused_before_anything_is_fetched(
    guarded: Guarded,
    dev_env: WorkflowEnvironment,
    s3_client: "S3Client",
    s3_bucket: str,
):
    port = httpx.URL(guarded.intranet.url).port
    refused = {
        f"https://127.0.0.1:{port}/frame.png": "loopback",
        f"https://[::1]:{port}/frame.png": "loopback",
        f"https://localhost:{port}/frame.png": "loopback",
        "https://10.0.0.1/frame.png": "private",
        "https://172.16.0.1/frame.png": "private",
        "https://192.168.1.1/frame.png": "private",
        "https://169.254.1.1/frame.png": "link-local",
        METADATA: "metadata",
        "https://metadata.google.internal/computeMetadata/v1/": "metadata",
    }
    account, auth = await guarded.stack.account(balance="20")
    bodies = [
        {"model": "veo-3-fast", "prompt": f"first frame {n}", "duration": 4, "image_url": url}
        for n, url in enumerate(refused)
    ]
    jobs = await run_jobs(guarded, dev_env, auth, bodies)

    for job, reason in zip(jobs, refused.values(), strict=True):
        assert_refused(job, JobStatus.FAILED, ErrorCode.UPSTREAM_REJECTED, reason)
    assert guarded.intranet.paths == []
    submissions = guarded.upstream_jobs(jobs, bodies)
    assert set(submissions.values()) == {0}  # nothing was sent to Vertex
    assert await guarded.stack.ledger.balance(account) == Decimal(20)
    findings = await nothing_lost(
        guarded.stack, dev_env, [account], s3_client, s3_bucket, submissions
    )
    assert findings.statuses() == {JobStatus.FAILED: len(refused)}


async def test_an_image_url_redirecting_inside_the_network_is_refused_at_the_redirect(
    guarded: Guarded,
    dev_env: WorkflowEnvironment,
    s3_client: "S3Client",
    s3_bucket: str,
):
    guarded.vertex.script(vertex_double.video(polls=0))  # for the one job that gets through
    account, auth = await guarded.stack.account(balance="20")
    image_urls = [
        guarded.redirect(guarded.to_intranet("/frame.png")),
        guarded.redirect(METADATA),
        # The control: the same public-looking origin, serving the frame itself.
        f"{guarded.cdn.url}/frame.png",
    ]
    bodies = [
        {"model": "veo-3-fast", "prompt": f"first frame {n}", "duration": 4, "image_url": url}
        for n, url in enumerate(image_urls)
    ]
    to_intranet, to_metadata, direct = await run_jobs(guarded, dev_env, auth, bodies)

    assert_refused(to_intranet, JobStatus.FAILED, ErrorCode.UPSTREAM_REJECTED, "loopback")
    assert_refused(to_metadata, JobStatus.FAILED, ErrorCode.UPSTREAM_REJECTED, "metadata")
    assert direct["status"] == "succeeded", direct
    # The origin was asked every time; where it pointed, never.
    assert sorted(guarded.cdn.paths) == ["/frame.png", "/redirect", "/redirect"]
    assert guarded.intranet.paths == []
    submissions = guarded.upstream_jobs([to_intranet, to_metadata, direct], bodies)
    assert list(submissions.values()) == [0, 0, 1]  # only the control reached Vertex
    [predict] = guarded.vertex.calls("predictLongRunning")
    image = predict.body["instances"][0]["image"]
    assert base64.b64decode(image["bytesBase64Encoded"]) == vertex_double.first_frame_png()
    findings = await nothing_lost(
        guarded.stack, dev_env, [account], s3_client, s3_bucket, submissions
    )
    assert findings.statuses() == {JobStatus.FAILED: 2, JobStatus.SUCCEEDED: 1}


async def test_output_urls_aimed_inside_the_network_are_refused_at_rehost_and_refunded(
    guarded: Guarded,
    dev_env: WorkflowEnvironment,
    s3_client: "S3Client",
    s3_bucket: str,
):
    outputs = {
        "fal names the metadata service": (METADATA, "metadata"),
        "fal names a private address": ("https://10.0.0.1/videos/output.mp4", "private"),
        "fal names a public host that redirects inside": (
            guarded.redirect(guarded.to_intranet("/output.mp4")),
            "loopback",
        ),
    }
    for prompt, (url, _) in outputs.items():
        guarded.fal.script(prompt, Script(polls=1, video_url=url))
    guarded.minimax.download_url = "https://192.168.0.10/files/output_aigc.mp4"
    account, auth = await guarded.stack.account(balance="20")
    bodies: list[dict[str, Any]] = [
        {"model": "kling-2.5-pro", "prompt": prompt, "duration": 5} for prompt in outputs
    ]
    bodies.append({"model": "hailuo-02-768p", "prompt": "minimax names a private address"})
    jobs = await run_jobs(guarded, dev_env, auth, bodies)

    reasons = [reason for _, reason in outputs.values()] + ["private"]
    for job, reason in zip(jobs, reasons, strict=True):
        assert_refused(job, JobStatus.REFUNDED, ErrorCode.REHOST_FAILED, reason)
    assert guarded.cdn.paths == ["/redirect"]
    assert guarded.intranet.paths == []
    submissions = guarded.upstream_jobs(jobs, bodies)
    assert set(submissions.values()) == {1}
    assert await guarded.stack.ledger.balance(account) == Decimal(20)
    findings = await nothing_lost(
        guarded.stack, dev_env, [account], s3_client, s3_bucket, submissions
    )
    assert findings.statuses() == {JobStatus.REFUNDED: len(bodies)}
    assert bucket_keys(s3_client, s3_bucket, guarded.stack.settings.s3_prefix) == []
