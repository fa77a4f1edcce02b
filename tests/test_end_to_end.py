"""One job through the production wiring: ``worker.run_worker`` on the ``temporal`` dev server,
a PostgreSQL ledger, S3 blob storage (moto over HTTP) and the simulated provider, started by
the typed client exactly as a backend service would."""

import asyncio
import hashlib
import io
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING

import av
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from kyma_video.client import Caller, JobClient, connect
from kyma_video.errors import JobStatus
from kyma_video.jobs import VideoRequest
from kyma_video.settings import BlobBackend, Settings
from ledger import EntryKind, Ledger
from providers.catalog import get_model
from tests.support import allow_public_reads
from worker import run_worker

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.postgres


async def test_a_job_goes_pending_processing_succeeded_and_its_video_plays(
    dev_env: WorkflowEnvironment,
    postgres_database_url: str,
    moto_server: str,
    s3_client: "S3Client",
    s3_bucket: str,
):
    allow_public_reads(s3_client, s3_bucket)
    settings = Settings(
        database_url=postgres_database_url,
        temporal_address=dev_env.client.service_client.config.target_host,
        task_queue=f"e2e-{uuid.uuid4().hex}",
        blob_backend=BlobBackend.S3,
        s3_bucket=s3_bucket,
        s3_endpoint_url=moto_server,
        blob_public_base_url=f"{moto_server}/{s3_bucket}",
        simulated_provider=True,
        simulated_min_seconds=2,
        poll_interval_seconds=0.5,
    )
    ledger = Ledger.from_url(postgres_database_url)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        account = await ledger.create_account("e2e", balance=Decimal("5"))
        key, _ = await ledger.create_api_key(account.id)
        jobs = JobClient.from_settings(await connect(settings), settings)
        request = VideoRequest.from_body(
            {"model": "seedance-2-fast", "prompt": "a phone notification slides in", "duration": 4}
        )
        admission = await jobs.start_job(request, Caller(account.id, key.id))

        seen = [admission.job.status]
        async with asyncio.timeout(60):
            while not seen[-1].is_terminal:
                record = await ledger.get_job(admission.job.job_id)
                assert record is not None
                if record.status is not seen[-1]:
                    seen.append(record.status)
                await asyncio.sleep(0.05)
        assert seen == [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.SUCCEEDED]

        record = await ledger.get_job(admission.job.job_id)
        assert record is not None
        job = record.view()
        assert job.output is not None
        assert job.output.url.startswith(f"{moto_server}/{s3_bucket}/videos/")
        async with httpx.AsyncClient() as http:
            response = await http.get(job.output.url)
        response.raise_for_status()
        video = response.content
        assert hashlib.sha256(video).hexdigest() == job.output.sha256
        assert len(video) == job.output.size_bytes

        with av.open(io.BytesIO(video)) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            decoded = sum(1 for _ in container.decode(stream))
            container_seconds = Decimal(container.duration) / 1_000_000
        assert decoded > 0
        assert abs(container_seconds - 4) < Decimal("0.1")
        assert abs(job.output.duration_seconds - container_seconds) < Decimal("0.05")

        rate = get_model("seedance-2-fast").per_second_usd
        assert job.charged_amount == rate * min(Decimal(4), job.output.duration_seconds)
        kinds = [entry.kind for entry in await ledger.entries_for_job(job.job_id)]
        assert kinds == [EntryKind.HOLD, EntryKind.USAGE]
        stored, summed = await ledger.audit(account.id)
        assert stored == summed == Decimal("5") - job.charged_amount
    finally:
        stop.set()
        await worker
        await ledger.close()
