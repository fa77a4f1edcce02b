"""Fault scenario: the Temporal server stops and restarts while jobs are in flight.

A file-backed dev server (``temporal server start-dev --db-filename``, what ``kyma-video dev``
runs) is stopped with SIGTERM while some jobs are mid-poll and others were admitted a moment
earlier, stays down for a while, and starts again on the same port and database file. The
worker process (the production worker with an observed provider double,
:mod:`tests.faults.stage_worker`) keeps running through the outage and is not restarted, and
the test keeps the Temporal client it had before the outage.

What must be true: every job resumes and finishes exactly once (one run, succeeded), charged
once, submitted upstream once, no blob left over, and the worker survived the outage rather
than dying or idling (:func:`~tests.faults.invariants.assert_nothing_lost` plus those checks).

How the Temporal Python SDK (1.35) behaves, as observed here: the worker does not fail on an
unreachable server. Its pollers retry ``Unavailable`` with backoff for as long as it takes
(``WARN temporalio_client::retry`` lines) and resume by themselves once the server is back;
the client the test made before the outage works again afterwards. A call that is not a poll,
such as reporting an activity's result, is retried for about ten seconds and then dropped
(``Network error while completing activity``): Temporal then retries that activity after its
start-to-close timeout, so work finished during a long outage is done again. That is why every
activity must be idempotent, and why the "early" jobs here take a minute (``submit_upstream``
has a 60 s start-to-close timeout; its retry finds the upstream id recorded and does not
submit again).
"""

import asyncio
import os
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from kyma_video import search_attributes
from kyma_video.client import Caller, JobClient
from kyma_video.errors import JobStatus
from kyma_video.jobs import VideoRequest
from kyma_video.settings import Settings
from kyma_video.temporal_binaries import dev_server_path
from ledger import Ledger
from tests.faults.invariants import assert_nothing_lost
from tests.faults.stage_worker import SUBMISSION_LOG_ENV, stage_worker, submissions, tail
from tests.support import free_port
from workflows import VideoJobWorkflow

pytestmark = pytest.mark.postgres

POLL_INTERVAL_SECONDS = 0.5
#: How long Temporal stays down: many poll intervals, and longer than the ~10 s for which the
#: SDK retries a single call, so results reported during the outage are really lost.
OUTAGE_SECONDS = 12
BALANCE = Decimal("20")


@dataclass
class DevServer:
    """A ``temporal server start-dev`` this test starts, stops and starts again: same port,
    same database file, the project's search attributes registered."""

    db: Path
    port: int
    log: Path
    process: asyncio.subprocess.Process | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        assert self.process is None
        args = [
            "server",
            "start-dev",
            "--db-filename",
            str(self.db),
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--headless",
            "--log-level",
            "error",
            *search_attributes.dev_server_flags(),
        ]
        with self.log.open("ab") as output:
            self.process = await asyncio.create_subprocess_exec(
                dev_server_path(),
                *args,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        await self.connect(within=60)

    async def connect(self, within: float) -> Client:
        """A client, once the server answers for the namespace (read from the file after a
        restart)."""
        async with asyncio.timeout(within):
            while True:
                assert self.process is not None and self.process.returncode is None, tail(self.log)
                try:
                    client = await Client.connect(
                        self.address, data_converter=pydantic_data_converter
                    )
                    await client.workflow_service.describe_namespace(
                        DescribeNamespaceRequest(namespace=client.namespace)
                    )
                    return client
                except (RuntimeError, RPCError):
                    await asyncio.sleep(0.2)

    async def stop(self) -> int:
        assert self.process is not None
        process, self.process = self.process, None
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            return await process.wait()

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()


@pytest.fixture
async def temporal_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    server = DevServer(db=tmp_path / "temporal.db", port=free_port(), log=tmp_path / "temporal.log")
    await server.start()
    try:
        yield server
    finally:
        server.kill()
        if server.process is not None:
            await server.process.wait()


def blob_files(root: Path) -> Iterator[str]:
    for directory, _, names in os.walk(root):
        for name in names:
            yield Path(directory, name).relative_to(root).as_posix()


async def test_jobs_in_flight_resume_and_finish_once_after_temporal_restarts(
    temporal_server: DevServer, postgres_database_url: str, tmp_path: Path
) -> None:
    task_queue = f"restart-{uuid.uuid4().hex[:8]}"
    submission_log = tmp_path / "submissions.log"
    worker_log = tmp_path / "worker.log"
    env = {
        "KYMA_TEMPORAL_ADDRESS": temporal_server.address,
        "KYMA_TASK_QUEUE": task_queue,
        "KYMA_DATA_DIR": str(tmp_path / "data"),
        "KYMA_DATABASE_URL": postgres_database_url,
        "KYMA_BLOB_BACKEND": "local",
        "KYMA_SIMULATED_PROVIDER": "true",
        "KYMA_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL_SECONDS),
        "KYMA_WORKER_GRACEFUL_SHUTDOWN_SECONDS": "2",
        SUBMISSION_LOG_ENV: str(submission_log),
    }
    client = await temporal_server.connect(within=10)
    ledger = Ledger.from_url(postgres_database_url)
    try:
        account = await ledger.create_account("restart", balance=BALANCE)
        key, _ = await ledger.create_api_key(account.id)
        caller = Caller(account.id, key.id)
        jobs = JobClient.from_settings(
            client, Settings(task_queue=task_queue, poll_interval_seconds=POLL_INTERVAL_SECONDS)
        )

        async def start(simulate_seconds: float, label: str) -> str:
            body = {"model": "kling-2.5-pro", "prompt": label, "simulate_seconds": simulate_seconds}
            admission = await jobs.start_job(VideoRequest.from_body(body), caller)
            return admission.job.job_id

        async with stage_worker(env, worker_log) as worker:
            # Mid-poll at the outage: submitted, upstream still running (it finishes while
            # Temporal is down).
            polling = [await start(10, f"polling {n}") for n in range(2)]
            await until_processing(ledger, polling)
            # Admitted just before the outage: hold placed, submission scheduled or running.
            early = [await start(2, f"early {n}") for n in range(2)]
            before = {job.id: job.status for job in await ledger.jobs_for_account(account.id)}
            assert all(not status.is_terminal for status in before.values()), before

            assert await temporal_server.stop() == 0, tail(temporal_server.log)
            await asyncio.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for anything
            assert worker.returncode is None, f"the worker died with Temporal:\n{tail(worker_log)}"
            await temporal_server.start()

            every_job = polling + early
            for job_id in every_job:
                handle = client.get_workflow_handle_for(VideoJobWorkflow.run, job_id)
                async with asyncio.timeout(120):
                    outcome = await handle.result()
                assert outcome.job.status is JobStatus.SUCCEEDED, outcome.job
            # It rode out the outage: the same process, still running, drains cleanly.
            assert worker.returncode is None
            worker.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                assert await worker.wait() == 0, tail(worker_log)

        submitted = submissions(submission_log)
        assert submitted == dict.fromkeys(every_job, 1)
        findings = await assert_nothing_lost(
            ledger,
            [account.id],
            temporal=client,
            submissions=submitted,
            blob_keys=blob_files(tmp_path / "data" / "blobs"),
        )
        assert findings.jobs.keys() == set(every_job)
        assert findings.statuses() == {JobStatus.SUCCEEDED: len(every_job)}
        charged = sum(job.charged_amount or Decimal(0) for job in findings.jobs.values())
        assert await ledger.balance(account.id) == BALANCE - charged
        for job_id in every_job:
            runs = [run async for run in client.list_workflows(f"WorkflowId = '{job_id}'")]
            assert [run.status for run in runs] == [WorkflowExecutionStatus.COMPLETED]
    finally:
        await ledger.close()


async def until_processing(ledger: Ledger, job_ids: list[str]) -> None:
    """Wait until every job's upstream id is recorded (it is being polled)."""
    async with asyncio.timeout(60):
        while True:
            records = [await ledger.get_job(job_id) for job_id in job_ids]
            if all(r is not None and r.status is JobStatus.PROCESSING for r in records):
                return
            await asyncio.sleep(0.1)
