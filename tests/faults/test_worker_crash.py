"""Fault scenario: the worker is SIGKILLed at each stage of a job; a fresh worker takes over.

For each :class:`~tests.faults.stage_worker.Stage` a stage worker (the production worker with
an observed provider double, blob store and ledger) is stopped dead at that point of a job and
killed with ``SIGKILL``: no drain, no cleanup, no chance to report anything to Temporal. A fresh
worker process then starts on the same task queue. Temporal learns that the attempt died only
from the activity's timeout and retries it on the new worker. What must be true afterwards:
the job finishes, once; it is charged once; nothing was submitted upstream twice once its id
was recorded; no blob is left behind (:func:`~tests.faults.invariants.assert_nothing_lost`).

The one stage where an upstream resubmission is allowed is ``submitted_unrecorded``: the
provider accepted the job but the worker died before the ledger recorded its id. Nothing
durable says the first upstream job exists, so the retry submits a second one. The test pins
that behaviour down: exactly two submissions (the first upstream job is orphaned at the
provider, which may bill us for it), the customer charged exactly once.

Timing: Temporal notices a dead attempt only when its timeout expires (submit: 60 s
start-to-close, await: 30 s, rehost: 30 s heartbeat, capture: 10 s; see
``workflows/video_job.py``). Run one after another the cases would take over four minutes,
so the module starts every selected case at once, each on its own task queue with its own
account, and each test awaits its own case. Real parts throughout: the Temporal dev server,
PostgreSQL shared by the test and the worker processes, the local blob store, the simulated
provider.
"""

import asyncio
import hashlib
import json
import os
import signal
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from kyma_video.client import Caller, JobClient
from kyma_video.errors import JobStatus
from kyma_video.jobs import VideoRequest
from kyma_video.settings import Settings
from ledger import EntryKind, JobRecord, Ledger, migrate
from tests.faults.invariants import assert_nothing_lost
from tests.faults.stage_worker import (
    MARKER_ENV,
    PAUSE_AT_ENV,
    SUBMISSION_LOG_ENV,
    Stage,
    stage_worker,
    submissions,
    tail,
    until,
)
from tests.fixtures.database import _fresh_postgres_database
from workflows import VideoJobWorkflow

pytestmark = pytest.mark.postgres

POLL_INTERVAL_SECONDS = 0.5
BALANCE = Decimal("10")
#: Longest wait for one case: the worker starts, Temporal's longest activity timeout (60 s)
#: expires, a second worker starts and the job finishes, on a slow shared machine.
CASE_BUDGET_SECONDS = 240


@dataclass(frozen=True)
class Expected:
    """How long the simulated upstream runs, and what the kill must have left behind."""

    simulate_seconds: float
    status_at_kill: JobStatus
    recorded_at_kill: bool
    entries_at_kill: tuple[EntryKind, ...]
    #: Upstream submissions over the whole scenario, both workers together.
    submissions: int = 1


EXPECTED = {
    Stage.BEFORE_SUBMIT: Expected(1, JobStatus.PENDING, False, (EntryKind.HOLD,)),
    Stage.SUBMITTED_UNRECORDED: Expected(
        1, JobStatus.PENDING, False, (EntryKind.HOLD,), submissions=2
    ),
    Stage.FIRST_POLL: Expected(1, JobStatus.PROCESSING, True, (EntryKind.HOLD,)),
    # Long enough that the second and later polls (every 0.5 s) find it still running.
    Stage.LATER_POLL: Expected(8, JobStatus.PROCESSING, True, (EntryKind.HOLD,)),
    Stage.MID_REHOST: Expected(1, JobStatus.PROCESSING, True, (EntryKind.HOLD,)),
    Stage.CAPTURED: Expected(1, JobStatus.SUCCEEDED, True, (EntryKind.HOLD, EntryKind.USAGE)),
}


@dataclass
class AtKill:
    """What the world looked like while the killed worker lay dead at its stage."""

    returncode: int | None
    marker: dict[str, Any]
    job: JobRecord
    entries: list[EntryKind]
    submissions: int
    blob_files: dict[str, int]
    workflow_status: WorkflowExecutionStatus | None


@dataclass
class Crash:
    stage: Stage
    job_id: str
    account_id: str
    blob_dir: Path
    submission_log: Path
    at_kill: AtKill
    result_status: JobStatus


def blob_files(root: Path) -> dict[str, int]:
    """Every file under the local store's root (hidden temporaries included), with its size."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            found[path.relative_to(root).as_posix()] = path.stat().st_size
    return found


async def wait_for_marker(marker: Path, log: Path, within: float) -> dict[str, Any]:
    await until(
        marker.exists,
        within=within,
        failure=lambda: f"the worker never reached its stage:\n{tail(log)}",
    )
    loaded: dict[str, Any] = json.loads(await asyncio.to_thread(marker.read_text))
    return loaded


@dataclass
class Scenario:
    """One case: its own task queue, account, data dir and submission log."""

    stage: Stage
    env: WorkflowEnvironment
    ledger: Ledger
    database_url: str
    workdir: Path

    async def run(self) -> Crash:
        expected = EXPECTED[self.stage]
        task_queue = f"crash-{self.stage.value}-{uuid.uuid4().hex[:8]}"
        data_dir = self.workdir / "data"
        submission_log = self.workdir / "submissions.log"
        marker = self.workdir / "marker.json"
        env = {
            "KYMA_TEMPORAL_ADDRESS": self.env.client.service_client.config.target_host,
            "KYMA_TASK_QUEUE": task_queue,
            "KYMA_DATA_DIR": str(data_dir),
            "KYMA_DATABASE_URL": self.database_url,
            "KYMA_BLOB_BACKEND": "local",
            "KYMA_SIMULATED_PROVIDER": "true",
            "KYMA_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL_SECONDS),
            "KYMA_WORKER_GRACEFUL_SHUTDOWN_SECONDS": "2",
            SUBMISSION_LOG_ENV: str(submission_log),
        }
        account = await self.ledger.create_account(f"crash-{self.stage.value}", balance=BALANCE)
        key, _ = await self.ledger.create_api_key(account.id)
        jobs = JobClient.from_settings(
            self.env.client,
            Settings(task_queue=task_queue, poll_interval_seconds=POLL_INTERVAL_SECONDS),
        )
        doomed_log = self.workdir / "killed-worker.log"
        paused = {**env, PAUSE_AT_ENV: self.stage.value, MARKER_ENV: str(marker)}
        async with stage_worker(paused, doomed_log) as doomed:
            admission = await jobs.start_job(
                VideoRequest.from_body(
                    {
                        "model": "kling-2.5-pro",
                        "prompt": f"crash at {self.stage.value}",
                        "simulate_seconds": expected.simulate_seconds,
                    }
                ),
                Caller(account.id, key.id),
            )
            job_id = admission.job.job_id
            reached = await wait_for_marker(marker, doomed_log, within=90)
            doomed.send_signal(signal.SIGKILL)
            returncode = await doomed.wait()
        job = await self.ledger.get_job(job_id)
        assert job is not None
        description = await self.env.client.get_workflow_handle(job_id).describe()
        at_kill = AtKill(
            returncode=returncode,
            marker=reached,
            job=job,
            entries=[entry.kind for entry in await self.ledger.entries_for_job(job_id)],
            submissions=submissions(submission_log)[job_id],
            blob_files=blob_files(data_dir / "blobs"),
            workflow_status=description.status,
        )

        fresh_log = self.workdir / "fresh-worker.log"
        async with stage_worker(env, fresh_log) as fresh:
            handle = self.env.client.get_workflow_handle_for(VideoJobWorkflow.run, job_id)
            try:
                async with asyncio.timeout(CASE_BUDGET_SECONDS - 60):
                    outcome = await handle.result()
            except TimeoutError:
                raise AssertionError(
                    f"the job did not finish on the fresh worker:\n{tail(fresh_log)}"
                ) from None
            fresh.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                assert await fresh.wait() == 0, tail(fresh_log)
        return Crash(
            stage=self.stage,
            job_id=job_id,
            account_id=account.id,
            blob_dir=data_dir / "blobs",
            submission_log=submission_log,
            at_kill=at_kill,
            result_status=outcome.job.status,
        )


def selected_stages(request: pytest.FixtureRequest) -> list[Stage]:
    """The stages of the tests selected in this module (all of them, unless ``-k`` narrows)."""
    stages = {
        item.callspec.params["stage"]
        for item in request.session.items
        if item.module is request.module and hasattr(item, "callspec")
    }
    return [stage for stage in Stage if stage in stages]


@pytest.fixture(scope="module")
async def ledger_url() -> AsyncIterator[str]:
    """One migrated PostgreSQL database for the module, shared by the test and the workers
    (module-scoped because the cases run concurrently, which ``postgres_database_url``, a
    function-scoped fixture, cannot serve)."""
    async for url in _fresh_postgres_database():
        await migrate(url)
        yield url


@pytest.fixture(scope="module")
async def module_ledger(ledger_url: str) -> AsyncIterator[Ledger]:
    ledger = Ledger.from_url(ledger_url)
    try:
        yield ledger
    finally:
        await ledger.close()


@pytest.fixture(scope="module")
async def crashes(
    request: pytest.FixtureRequest,
    dev_env: WorkflowEnvironment,
    ledger_url: str,
    module_ledger: Ledger,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[Stage, asyncio.Task[Crash]]]:
    """Every selected case, started at once; each test awaits its own."""
    tasks = {
        stage: asyncio.create_task(
            Scenario(
                stage, dev_env, module_ledger, ledger_url, tmp_path_factory.mktemp(stage.value)
            ).run()
        )
        for stage in selected_stages(request)
    }
    try:
        yield tasks
    finally:
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*tasks.values(), return_exceptions=True)


async def crash_at(crashes: dict[Stage, asyncio.Task[Crash]], stage: Stage) -> Crash:
    async with asyncio.timeout(CASE_BUDGET_SECONDS):
        return await asyncio.shield(crashes[stage])


@pytest.mark.parametrize("stage", list(Stage))
async def test_the_worker_dies_by_sigkill_exactly_at_the_stage(
    crashes: dict[Stage, asyncio.Task[Crash]], stage: Stage
) -> None:
    crash = await crash_at(crashes, stage)
    expected, seen = EXPECTED[stage], crash.at_kill
    assert seen.returncode == -signal.SIGKILL
    assert seen.marker["stage"] == stage.value and seen.marker["job_id"] == crash.job_id
    assert seen.job.status is expected.status_at_kill
    assert (seen.job.upstream_request_id is not None) is expected.recorded_at_kill
    assert tuple(seen.entries) == expected.entries_at_kill
    # The run was still open: it was the dead worker, not a finished job, that stopped it.
    assert seen.workflow_status is WorkflowExecutionStatus.RUNNING
    published = f"{crash.job_id}.mp4"
    if stage is Stage.BEFORE_SUBMIT:
        assert seen.submissions == 0
    elif stage in (Stage.SUBMITTED_UNRECORDED, Stage.FIRST_POLL):
        assert seen.submissions == 1
        assert seen.marker["request_id"].startswith("sim.")
    elif stage is Stage.LATER_POLL:
        assert seen.marker["attempt"] >= 2 and seen.marker["state"] == "running"
    elif stage is Stage.MID_REHOST:
        # Bytes were on disk, in a temporary file; nothing was published under the job's key.
        assert published not in seen.blob_files
        partial = [size for name, size in seen.blob_files.items() if name != published]
        assert partial == [seen.marker["written"]] and partial[0] > 0
    elif stage is Stage.CAPTURED:
        assert seen.blob_files.keys() == {published}


@pytest.mark.parametrize("stage", list(Stage))
async def test_a_fresh_worker_finishes_the_job_once_and_charges_once(
    crashes: dict[Stage, asyncio.Task[Crash]],
    module_ledger: Ledger,
    dev_env: WorkflowEnvironment,
    stage: Stage,
) -> None:
    crash = await crash_at(crashes, stage)
    expected = EXPECTED[stage]
    submitted = submissions(crash.submission_log)
    assert submitted == {crash.job_id: expected.submissions}
    files = blob_files(crash.blob_dir)
    findings = await assert_nothing_lost(
        module_ledger,
        [crash.account_id],
        temporal=dev_env.client,
        submissions=submitted,
        resubmission_allowed=[crash.job_id] if expected.submissions > 1 else [],
        blob_keys=list(files),
    )
    job = findings.jobs[crash.job_id]
    assert crash.result_status is JobStatus.SUCCEEDED
    assert job.status is JobStatus.SUCCEEDED and crash.job_id not in findings.running
    assert job.charged_amount is not None and job.charged_amount > 0
    assert await module_ledger.balance(crash.account_id) == BALANCE - job.charged_amount
    await assert_one_run(dev_env.client, crash.job_id)
    # The video customers get is the whole, verified file.
    assert job.output_key is not None
    stored = (crash.blob_dir / job.output_key).read_bytes()
    assert len(stored) == job.output_size_bytes
    assert hashlib.sha256(stored).hexdigest() == job.output_sha256
    marker = crash.at_kill.marker
    if stage is Stage.SUBMITTED_UNRECORDED:
        # The id the dead worker never recorded is not the one the job finished with.
        assert job.upstream_request_id != marker["request_id"]
    elif stage is Stage.FIRST_POLL:
        assert job.upstream_request_id == marker["request_id"]


async def assert_one_run(client: Client, job_id: str) -> None:
    """The job's workflow ran once: one run of its id, completed."""
    runs = [run async for run in client.list_workflows(f"WorkflowId = '{job_id}'")]
    assert [run.status for run in runs] == [WorkflowExecutionStatus.COMPLETED]
