"""The API as users meet it: a real uvicorn server on a local port, in front of the real stack
(PostgreSQL ledger, the ``temporal`` dev server, a worker, S3 on moto, the simulated provider)."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import httpx
import pytest
import uvicorn
from temporalio.testing import WorkflowEnvironment

from api import create_app
from kyma_video.settings import BlobBackend, Settings, TierLimits
from ledger import Ledger
from tests.support import allow_public_reads, free_port
from worker import build_deps, build_worker

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[str]:
    """Run the real app (its own lifespan opens ledger, Temporal client and blob store)."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.api_port,
            log_level="warning",
            lifespan="on",
        )
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.api_port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Stack:
    url: str
    settings: Settings
    ledger: Ledger
    http: httpx.AsyncClient

    async def account(
        self, balance: str = "10", tier: str = "default"
    ) -> tuple[str, dict[str, str]]:
        """A funded account and the Authorization header of a fresh key for it."""
        account = await self.ledger.create_account(
            f"acct-{uuid.uuid4().hex[:6]}", balance=Decimal(balance), tier=tier
        )
        _, key = await self.ledger.create_api_key(account.id)
        return account.id, {"Authorization": f"Bearer {key}"}


def stack_settings(
    dev_env: WorkflowEnvironment, database_url: str, moto_server: str, bucket: str
) -> Settings:
    return Settings(
        database_url=database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"api-{uuid.uuid4().hex}",
        blob_backend=BlobBackend.S3,
        s3_bucket=bucket,
        s3_endpoint_url=moto_server,
        blob_public_base_url=f"{moto_server}/{bucket}",
        simulated_provider=True,
        simulated_min_seconds=1,
        poll_interval_seconds=0.5,
        api_port=free_port(),
        tiers={
            "default": TierLimits(requests_per_minute=1000, jobs_in_flight=100),
            "tight": TierLimits(requests_per_minute=2, jobs_in_flight=1),
        },
    )


@pytest.fixture
async def stack(
    dev_env: WorkflowEnvironment,
    postgres_database_url: str,
    moto_server: str,
    s3_client: "S3Client",
    s3_bucket: str,
) -> AsyncIterator[Stack]:
    allow_public_reads(s3_client, s3_bucket)
    settings = stack_settings(dev_env, postgres_database_url, moto_server, s3_bucket)
    deps = await build_deps(settings)
    ledger = Ledger.from_url(postgres_database_url)
    try:
        async with (
            build_worker(dev_env.client, settings, deps),
            serving(settings) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            yield Stack(url=url, settings=settings, ledger=ledger, http=http)
    finally:
        await ledger.close()
        await deps.providers.aclose()
        await deps.ledger.close()
