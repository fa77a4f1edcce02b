"""Fault scenario: the worker loses its PostgreSQL connection while a job's money moves.

The worker's ledger reaches the real PostgreSQL through a ``FaultProxy`` (``proxy.py``) that
reads the wire protocol, so a fault hits one statement of one ledger operation; the test's own
ledger (setup and audit) connects directly. Two faults, each at the hold (``place_hold``) and
at both settlements (``capture_usage``, ``release_hold``):

* the connection is cut mid-transaction: nothing commits, the activity's retry does the work;
* the ``COMMIT`` reaches the server but its answer never reaches the worker: the work is done,
  the worker believes it failed, and the retry must recognise it instead of doing it again;

and, beyond one statement, the database going away for minutes (every connection reset, new
ones too) just as a settlement runs, and staying away for all of an admission's attempts.

What must hold: the activity is retried; a job has exactly one hold and exactly one settlement,
never two; balances equal their entries. Admission may instead be refused with ``db_error``
when the database stays away for all its attempts, and then no money may stay held.

Runs on the time-skipping server: ledger retries back off up to 60 s, skipped here.
"""

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from blob import LocalBlobStore
from kyma_video.client import derive_job_id
from kyma_video.errors import ErrorCode, JobStatus
from ledger import EntryKind, Ledger
from providers.base import SubmitRequest
from providers.simulated import SimulatedProvider
from tests.faults.invariants import Findings, assert_nothing_lost
from tests.faults.proxy import FaultProxy
from tests.workflows.harness import JobHarness, make_caller, server_clock
from workflows.video_job import ADMISSION_RETRY

pytestmark = pytest.mark.postgres

STARTING_BALANCE = Decimal("10.000000")

#: The statement that identifies each ledger operation's transaction (see ``ledger._ledger``).
PLACE_HOLD = r"^INSERT INTO jobs\b"
CAPTURE = r"^UPDATE jobs SET .*\bcharged_amount="
RELEASE = r"^UPDATE jobs SET .*\berror_code="


class CountingProvider(SimulatedProvider):
    """The simulated provider, counting submissions per job (the edge a real provider bills)."""

    def __init__(self, env: WorkflowEnvironment) -> None:
        super().__init__(default_seconds=30, clock=server_clock(env))
        self.submissions: Counter[str] = Counter()

    async def submit(self, request: SubmitRequest) -> str:
        self.submissions[request.job_id] += 1
        return await super().submit(request)


@dataclass
class Scenario:
    jobs: JobHarness
    proxy: FaultProxy
    #: Straight to PostgreSQL, for the audit: the fault is only on the worker's path.
    audit: Ledger
    provider: CountingProvider
    blob_dir: Path

    async def nothing_lost(self) -> Findings:
        return await assert_nothing_lost(
            self.audit,
            [self.jobs.caller.account_id],
            temporal=self.jobs.env.client,
            submissions=self.provider.submissions,
            blob_keys=[path.name for path in self.blob_dir.glob("*") if path.is_file()],
        )

    async def entry_kinds(self, job_id: str) -> list[EntryKind]:
        return [entry.kind for entry in await self.audit.entries_for_job(job_id)]


@pytest.fixture
async def scenario(
    time_skipping_env: WorkflowEnvironment, postgres_database_url: str, tmp_path: Path
) -> AsyncIterator[Scenario]:
    server = make_url(postgres_database_url)
    assert server.host is not None and server.port is not None
    async with FaultProxy(server.host, server.port, postgres=True) as proxy:
        proxied = server.set(host=proxy.host, port=proxy.port)
        worker_ledger = Ledger.from_url(proxied.render_as_string(hide_password=False))
        audit = Ledger.from_url(postgres_database_url)
        provider = CountingProvider(time_skipping_env)
        blob_dir = tmp_path / "blobs"
        try:
            yield Scenario(
                jobs=JobHarness(
                    env=time_skipping_env,
                    ledger=worker_ledger,
                    blobs=LocalBlobStore(blob_dir, "http://files.test/files"),
                    caller=await make_caller(audit, STARTING_BALANCE),
                    simulated=provider,
                ),
                proxy=proxy,
                audit=audit,
                provider=provider,
                blob_dir=blob_dir,
            )
        finally:
            await worker_ledger.close()
            await audit.close()


async def final_attempt(handle: WorkflowHandle[Any, Any], activity: str) -> int:
    """The attempt that completed ``activity`` (its started event is written at the end)."""
    scheduled: set[int] = set()
    async for event in handle.fetch_history_events():
        if event.activity_task_scheduled_event_attributes.activity_type.name == activity:
            scheduled.add(event.event_id)
        started = event.activity_task_started_event_attributes
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED and (
            started.scheduled_event_id in scheduled
        ):
            return started.attempt
    raise AssertionError(f"{activity} never started")


def refusal_code(raised: pytest.ExceptionInfo[WorkflowUpdateFailedError]) -> str | None:
    cause = raised.value.cause
    assert isinstance(cause, ApplicationError)
    return cause.type


# -- the hold --------------------------------------------------------------------------------


async def test_a_hold_cut_off_mid_transaction_is_retried_and_placed_once(
    scenario: Scenario,
) -> None:
    jobs = scenario.jobs
    scenario.proxy.reset_on_statement(PLACE_HOLD, times=2)
    async with jobs.worker():
        handle, admission = await jobs.start_and_admit(jobs.request())
        job = (await handle.result()).job

    assert len(scenario.proxy.injected) == 2, scenario.proxy.injected
    assert admission.replayed is False
    assert job.status is JobStatus.SUCCEEDED
    assert await scenario.entry_kinds(job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]
    assert await scenario.audit.balance(jobs.caller.account_id) == (
        STARTING_BALANCE - (job.charged_amount or 0)
    )
    await scenario.nothing_lost()


async def test_a_hold_the_database_never_takes_is_refused_with_db_error_and_nothing_held(
    scenario: Scenario,
) -> None:
    jobs = scenario.jobs
    scenario.proxy.reset_on_statement(PLACE_HOLD, times=None)
    request = jobs.request(idempotency_key="never-held")
    async with jobs.worker():
        with pytest.raises(WorkflowUpdateFailedError) as raised:
            await jobs.start_and_admit(request)
        job_id = derive_job_id(jobs.caller.api_key_id, "never-held")
        run = jobs.env.client.get_workflow_handle(job_id)
        with pytest.raises(WorkflowFailureError):
            await run.result()

    assert refusal_code(raised) == ErrorCode.DB_ERROR.value
    # The caller learns what happened, not the driver's exception text (SQL, hostnames).
    message = str(raised.value.cause)
    assert "database is unavailable" in message
    assert "INSERT" not in message.upper() and "asyncpg" not in message
    assert len(scenario.proxy.injected) == ADMISSION_RETRY.maximum_attempts
    assert await scenario.audit.get_job(run.id) is None
    assert await scenario.audit.balance(jobs.caller.account_id) == STARTING_BALANCE
    findings = await scenario.nothing_lost()
    assert findings.jobs == {}


async def test_a_hold_committed_but_unacknowledged_is_recognised_by_the_retry_not_placed_twice(
    scenario: Scenario,
) -> None:
    jobs = scenario.jobs
    scenario.proxy.lose_commit_reply(PLACE_HOLD)
    async with jobs.worker():
        handle, admission = await jobs.start_and_admit(jobs.request())
        job = (await handle.result()).job

    assert scenario.proxy.lost_replies == ["COMMIT"], scenario.proxy.injected
    # The retry found the hold its own first attempt committed: a new job, not a replay.
    assert admission.replayed is False
    assert job.status is JobStatus.SUCCEEDED
    assert await scenario.entry_kinds(job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]
    await scenario.nothing_lost()


async def test_a_hold_committed_unacknowledged_then_unreachable_is_refused_and_released(
    scenario: Scenario,
) -> None:
    """The hold committed, the answer was lost, and every later attempt found the database
    gone: the caller is told ``db_error`` although a hold exists. That hold must not stay
    held for a job nobody runs; once the database is back it is released (refunded)."""
    jobs = scenario.jobs
    proxy = scenario.proxy

    def database_goes_away() -> None:
        proxy.refuse()
        proxy.reset_all()

    proxy.lose_commit_reply(PLACE_HOLD, then=database_goes_away)
    request = jobs.request(idempotency_key="lost-answer")
    async with jobs.worker():
        with pytest.raises(WorkflowUpdateFailedError) as raised:
            await jobs.start_and_admit(request)
        job_id = derive_job_id(jobs.caller.api_key_id, "lost-answer")
        held = await scenario.audit.get_job(job_id)
        assert held is not None and held.status is JobStatus.PENDING
        await proxy.forward()
        with pytest.raises(WorkflowFailureError):
            await jobs.env.client.get_workflow_handle(job_id).result()

    assert refusal_code(raised) == ErrorCode.DB_ERROR.value
    assert proxy.lost_replies == ["COMMIT"]
    released = await scenario.audit.get_job(job_id)
    assert released is not None
    error = released.view().error
    assert released.status is JobStatus.REFUNDED
    assert error is not None and error.code is ErrorCode.DB_ERROR
    assert await scenario.entry_kinds(job_id) == [EntryKind.HOLD, EntryKind.HOLD_RELEASE]
    assert await scenario.audit.balance(jobs.caller.account_id) == STARTING_BALANCE
    assert scenario.provider.submissions[job_id] == 0
    await scenario.nothing_lost()


# -- the settlement ---------------------------------------------------------------------------

SETTLEMENTS = [
    pytest.param(CAPTURE, {}, JobStatus.SUCCEEDED, EntryKind.USAGE, id="capture_usage"),
    pytest.param(
        RELEASE,
        {"simulate_outcome": "fail"},
        JobStatus.FAILED,
        EntryKind.HOLD_RELEASE,
        id="release_hold",
    ),
]


@pytest.mark.parametrize(("statement", "params", "status", "settlement"), SETTLEMENTS)
async def test_a_settlement_cut_off_mid_transaction_is_retried_and_posted_once(
    scenario: Scenario,
    statement: str,
    params: dict[str, str],
    status: JobStatus,
    settlement: EntryKind,
) -> None:
    jobs = scenario.jobs
    scenario.proxy.reset_on_statement(statement, times=3)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(**params))
        job = (await handle.result()).job

    assert len(scenario.proxy.injected) == 3, scenario.proxy.injected
    assert job.status is status
    assert await scenario.entry_kinds(job.job_id) == [EntryKind.HOLD, settlement]
    await scenario.nothing_lost()


@pytest.mark.parametrize(("statement", "params", "status", "settlement"), SETTLEMENTS)
async def test_a_settlement_committed_but_unacknowledged_is_not_posted_twice(
    scenario: Scenario,
    statement: str,
    params: dict[str, str],
    status: JobStatus,
    settlement: EntryKind,
) -> None:
    jobs = scenario.jobs
    scenario.proxy.lose_commit_reply(statement)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(**params))
        job = (await handle.result()).job

    assert scenario.proxy.lost_replies == ["COMMIT"], scenario.proxy.injected
    assert job.status is status
    assert await scenario.entry_kinds(job.job_id) == [EntryKind.HOLD, settlement]
    recorded = await scenario.audit.get_job(job.job_id)
    assert recorded is not None and recorded.view() == job
    await scenario.nothing_lost()


async def test_a_database_outage_at_settlement_is_waited_out_and_posted_once(
    scenario: Scenario,
) -> None:
    """PostgreSQL goes away as the capture runs (every connection reset, new ones too) and
    stays away for minutes: the capture, which retries for as long as it takes, posts once
    the database is back."""
    jobs = scenario.jobs
    proxy = scenario.proxy
    env = jobs.env
    back_at = await env.get_current_time() + timedelta(minutes=6)

    async def database_is_back() -> bool:
        return await env.get_current_time() >= back_at

    def database_goes_down() -> None:
        proxy.reset_all()
        proxy.reset_new_connections(until=database_is_back)

    proxy.reset_on_statement(CAPTURE, then=database_goes_down)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request())
        job = (await handle.result()).job

    assert await final_attempt(handle, "capture_usage") > 5, "the outage needed no retries"
    assert job.status is JobStatus.SUCCEEDED
    assert await scenario.entry_kinds(job.job_id) == [EntryKind.HOLD, EntryKind.USAGE]
    await scenario.nothing_lost()
