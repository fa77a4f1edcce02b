from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from blob import LocalBlobStore
from kyma_video.settings import Settings
from ledger import Ledger
from providers.catalog import ProviderName
from providers.fal import FalProvider
from providers.http_media import media_client, media_fetcher
from providers.minimax import MiniMaxProvider
from providers.vertex import VertexProvider
from tests.providers.doubles.fal import FalQueueDouble
from tests.providers.doubles.fal import sample_video as fal_sample_video
from tests.providers.doubles.https import ca_bundle, serve_https
from tests.providers.doubles.minimax import MiniMaxDouble, sample_video
from tests.providers.doubles.vertex import (
    LOCATION,
    PROJECT,
    StaticTokenCredentials,
    VertexDouble,
    serve,
)
from tests.workflows.harness import JobHarness, make_caller

STARTING_BALANCE = Decimal("10.000000")


@pytest.fixture
async def jobs(
    time_skipping_env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> AsyncIterator[JobHarness]:
    """A job runner on the time-skipping server, with an account holding $10."""
    yield JobHarness(
        env=time_skipping_env,
        ledger=sqlite_ledger,
        blobs=LocalBlobStore(tmp_path / "blobs", "http://files.test/files"),
        caller=await make_caller(sqlite_ledger, STARTING_BALANCE),
    )


MINIMAX_KEY = "mm-workflow-test-key"


@pytest.fixture(scope="module")
async def served() -> AsyncIterator[tuple[MiniMaxDouble, str]]:
    double = MiniMaxDouble(MINIMAX_KEY, video=sample_video())
    async with serve_https(double) as url:
        yield double, url


@pytest.fixture
async def minimax(
    jobs: JobHarness, served: tuple[MiniMaxDouble, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MiniMaxDouble]:
    double, url = served
    double.reset()
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle()))
    settings = Settings(allow_private_media_urls=True)  # the double is on loopback
    client = media_client(settings)
    provider = MiniMaxProvider(
        api_key=SecretStr(MINIMAX_KEY), base_url=url, fetch_media=media_fetcher(settings, client)
    )
    jobs.real_providers[ProviderName.MINIMAX] = provider
    yield double
    await provider.aclose()
    await client.aclose()
    assert double.violations == [], "requests MiniMax would have rejected"


@pytest.fixture
async def vertex(jobs: JobHarness, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[VertexDouble]:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle()))
    async with serve() as double:
        settings = Settings(allow_private_media_urls=True)  # the double is on loopback
        client = media_client(settings)
        provider = VertexProvider(
            project=PROJECT,
            location=LOCATION,
            base_url=double.base_url,
            credentials=StaticTokenCredentials(),
            fetch_media=media_fetcher(settings, client),
        )
        jobs.real_providers[ProviderName.VERTEX] = provider
        yield double
        await provider.aclose()
        await client.aclose()
    assert double.violations == [], "requests Vertex AI would have rejected"


FAL_KEY = "fal-workflow-test-key:secret"


@pytest.fixture
async def fal(jobs: JobHarness, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FalQueueDouble]:
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_bundle()))
    double = FalQueueDouble(FAL_KEY, video=fal_sample_video())
    async with serve_https(double) as url:
        settings = Settings(allow_private_media_urls=True)  # the double is on loopback
        client = media_client(settings)
        provider = FalProvider(
            key=SecretStr(FAL_KEY), queue_url=url, fetch_media=media_fetcher(settings, client)
        )
        jobs.real_providers[ProviderName.FAL] = provider
        yield double
        await provider.aclose()
        await client.aclose()
    assert double.violations == [], "requests fal would have rejected"
