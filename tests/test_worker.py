"""``python worker.py`` as operators run it: configured by environment variables only, and
stopped by SIGTERM mid-job without losing the job (a second worker finishes it)."""

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path

import httpx
from temporalio.testing import WorkflowEnvironment

from kyma_video.client import Caller, JobClient
from kyma_video.errors import JobStatus
from kyma_video.jobs import VideoRequest
from kyma_video.settings import Settings
from ledger import EntryKind, Ledger
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent


@asynccontextmanager
async def worker_process(env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "worker.py"),
        env={**os.environ, **env},
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    async with asyncio.timeout(30):
        while b"worker polling" not in await process.stderr.readline():
            pass
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop(process: asyncio.subprocess.Process) -> tuple[int, bytes]:
    process.send_signal(signal.SIGTERM)
    assert process.stderr is not None
    async with asyncio.timeout(30):
        rest = await process.stderr.read()
        return await process.wait(), rest


async def test_sigterm_mid_job_stops_cleanly_and_another_worker_finishes_the_job(
    dev_env: WorkflowEnvironment, tmp_path: Path
):
    env = {
        "KYMA_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "KYMA_TASK_QUEUE": f"worker-{uuid.uuid4().hex}",
        "KYMA_DATA_DIR": str(tmp_path / "data"),
        "KYMA_SIMULATED_PROVIDER": "true",
        "KYMA_POLL_INTERVAL_SECONDS": "0.5",
        "KYMA_WORKER_GRACEFUL_SHUTDOWN_SECONDS": "5",
        "KYMA_WORKER_METRICS_ADDRESS": f"127.0.0.1:{free_port()}",
    }
    settings = Settings(
        data_dir=tmp_path / "data",
        task_queue=env["KYMA_TASK_QUEUE"],
        poll_interval_seconds=0.5,
    )
    async with worker_process(env) as first:
        # Its metrics endpoint answers (the Kubernetes liveness probe).
        async with httpx.AsyncClient() as http:
            metrics = await http.get(f"http://{env['KYMA_WORKER_METRICS_ADDRESS']}/metrics")
        assert metrics.status_code == 200
        # The worker migrated the embedded ledger on start.
        ledger = Ledger.from_url(settings.resolved_database_url)
        try:
            account = await ledger.create_account("ops", balance=Decimal("5"))
            key, _ = await ledger.create_api_key(account.id)
            jobs = JobClient.from_settings(dev_env.client, settings)
            admission = await jobs.start_job(
                VideoRequest.from_body(
                    {"model": "kling-2.5-pro", "prompt": "b-roll", "simulate_seconds": 4}
                ),
                Caller(account.id, key.id),
            )
            job_id = admission.job.job_id
            async with asyncio.timeout(20):
                while True:
                    record = await ledger.get_job(job_id)
                    if record is not None and record.status is JobStatus.PROCESSING:
                        break
                    await asyncio.sleep(0.05)
            code, log = await stop(first)
            assert code == 0, log.decode()
            assert b"shutting down" in log
            record = await ledger.get_job(job_id)
            assert record is not None and record.status is JobStatus.PROCESSING

            async with worker_process(env) as second:
                await dev_env.client.get_workflow_handle(job_id).result()
                code, log = await stop(second)
                assert code == 0, log.decode()
            record = await ledger.get_job(job_id)
            assert record is not None and record.status is JobStatus.SUCCEEDED
            kinds = [entry.kind for entry in await ledger.entries_for_job(job_id)]
            assert kinds == [EntryKind.HOLD, EntryKind.USAGE]
            stored, summed = await ledger.audit(account.id)
            assert stored == summed
        finally:
            await ledger.close()
