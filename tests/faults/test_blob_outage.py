"""Fault scenario: S3 is unavailable while a finished video is being rehosted.

The worker's blob store is the production :class:`~blob.S3BlobStore` (boto3, its own retry
configuration) talking HTTP to moto's S3 server through a ``FaultProxy`` (``proxy.py``); the
test lists the bucket straight from moto. What must hold:

* an outage shorter than the deadline is retried through, however many attempts it takes: the
  job succeeds, is charged once, and exactly one object is stored;
* an outage that outlasts the deadline ends the job ``refunded`` (our storage failed a video the
  provider delivered) with the hold released at the deadline, not held for the outage;
* no object outlives a job that did not succeed, including one an upload finished storing just
  as the deadline fired, before the workflow heard of it.

Runs on the time-skipping server, with deadlines shortened through ``JobTimings`` where the
scenario must reach one; the minutes between attempts are skipped.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.rehost import video_key
from blob import S3BlobStore
from kyma_video.errors import ErrorCode, JobStatus
from ledger import EntryKind, Ledger
from providers.base import SubmitRequest
from providers.simulated import SimulatedProvider
from tests.faults.invariants import Findings, assert_nothing_lost
from tests.faults.proxy import FaultProxy
from tests.workflows.harness import JobHarness, make_caller, server_clock
from workflows import JobTimings
from workflows.video_job import REHOST_RETRY

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STARTING_BALANCE = Decimal("10.000000")
#: The simulated upstream's run time: rehosting starts about this long after admission.
UPSTREAM_SECONDS = 30


class CountingProvider(SimulatedProvider):
    """The simulated provider, counting submissions per job (the edge a real provider bills)."""

    def __init__(self, env: WorkflowEnvironment) -> None:
        super().__init__(default_seconds=UPSTREAM_SECONDS, clock=server_clock(env))
        self.submissions: Counter[str] = Counter()

    async def submit(self, request: SubmitRequest) -> str:
        self.submissions[request.job_id] += 1
        return await super().submit(request)


@dataclass
class Scenario:
    env: WorkflowEnvironment
    ledger: Ledger
    proxy: FaultProxy
    s3: "S3Client"
    bucket: str
    store: S3BlobStore
    provider: CountingProvider

    def harness(self, caller: Any, **timings: Any) -> JobHarness:
        return JobHarness(
            env=self.env,
            ledger=self.ledger,
            blobs=self.store,
            caller=caller,
            timings=JobTimings(**timings),
            simulated=self.provider,
        )

    def keys(self) -> list[str]:
        """Every object in the bucket, read from moto directly (not through the proxy)."""
        listing = self.s3.list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    async def nothing_lost(self, jobs: JobHarness) -> Findings:
        return await assert_nothing_lost(
            self.ledger,
            [jobs.caller.account_id],
            temporal=self.env.client,
            submissions=self.provider.submissions,
            blob_keys=self.keys(),
        )


@pytest.fixture
async def scenario(
    time_skipping_env: WorkflowEnvironment,
    sqlite_ledger: Ledger,
    moto_server: str,
    s3_client: "S3Client",
    s3_bucket: str,
) -> AsyncIterator[Scenario]:
    moto = urlsplit(moto_server)
    assert moto.hostname is not None and moto.port is not None
    async with FaultProxy(moto.hostname, moto.port) as proxy:
        yield Scenario(
            env=time_skipping_env,
            ledger=sqlite_ledger,
            proxy=proxy,
            s3=s3_client,
            bucket=s3_bucket,
            store=S3BlobStore(
                bucket=s3_bucket,
                public_base_url="https://videos.test/",
                endpoint_url=f"http://{proxy.address}",
            ),
            provider=CountingProvider(time_skipping_env),
        )


async def eventually(
    condition: Callable[[], Awaitable[bool]], what: str, within: float = 60.0
) -> None:
    """Wait (in real time) until ``condition()`` holds."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + within
    while not await condition():
        assert loop.time() < give_up, f"timed out waiting until {what}"
        await asyncio.sleep(0.1)


async def history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return [event async for event in handle.fetch_history_events()]


def scheduled_at(events: list[HistoryEvent], activity: str) -> datetime:
    for event in events:
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name == activity:
            return event.event_time.ToDatetime()
    raise AssertionError(f"{activity} was never scheduled")


def final_attempt(events: list[HistoryEvent], activity: str) -> int:
    """The attempt that completed ``activity`` (its started event is written at the end)."""
    scheduled = {
        event.event_id
        for event in events
        if event.activity_task_scheduled_event_attributes.activity_type.name == activity
    }
    for event in events:
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started = event.activity_task_started_event_attributes
            if started.scheduled_event_id in scheduled:
                return started.attempt
    raise AssertionError(f"{activity} never started")


async def test_an_outage_longer_than_five_attempts_is_retried_through_and_charged_once(
    scenario: Scenario,
) -> None:
    """S3 resets every connection for two minutes of workflow time, from before rehosting
    starts until well past the five attempts rehosting used to give up after."""
    jobs = scenario.harness(await make_caller(scenario.ledger, STARTING_BALANCE))
    env = scenario.env
    back_at = await env.get_current_time() + timedelta(minutes=2)

    async def s3_is_back() -> bool:
        return await env.get_current_time() >= back_at

    scenario.proxy.reset_new_connections(until=s3_is_back)
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(duration=5))
        job = (await handle.result()).job

    assert scenario.proxy.injected, "S3 was never unavailable"
    assert final_attempt(await history(handle), "rehost_output") > (
        REHOST_RETRY.maximum_attempts or 0
    )
    assert job.status is JobStatus.SUCCEEDED
    assert job.output is not None
    assert [entry.kind for entry in await scenario.ledger.entries_for_job(job.job_id)] == [
        EntryKind.HOLD,
        EntryKind.USAGE,
    ]
    assert scenario.keys() == [video_key(job.job_id)]
    stored = await scenario.store.read(video_key(job.job_id))
    assert len(stored) == job.output.size_bytes
    await scenario.nothing_lost(jobs)


async def test_an_outage_past_the_deadline_refunds_the_job_and_releases_the_hold_on_time(
    scenario: Scenario,
) -> None:
    deadline = 150  # seconds: well past the old five attempts, shorter than the default 10 min
    jobs = scenario.harness(
        await make_caller(scenario.ledger, STARTING_BALANCE), deadline_seconds=deadline
    )
    scenario.proxy.refuse()
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(duration=5))
        result = asyncio.create_task(handle.result())

        async def settled() -> bool:
            record = await scenario.ledger.get_job(handle.id)
            return record is not None and record.status.is_terminal

        # Money moves at the deadline although S3 is still down...
        await eventually(settled, "the job is settled")
        refunded = await scenario.ledger.get_job(handle.id)
        assert refunded is not None and refunded.status is JobStatus.REFUNDED
        # ...and the cleanup that needs S3 finishes once it is back.
        await scenario.proxy.forward()
        job = (await result).job

    events = await history(handle)
    started = events[0].event_time.ToDatetime()
    assert scheduled_at(events, "release_hold") - started >= timedelta(seconds=deadline)
    assert job.status is JobStatus.REFUNDED
    assert job.error is not None and job.error.code is ErrorCode.REHOST_FAILED
    assert job.charged_amount is None and job.output is None
    assert [entry.kind for entry in await scenario.ledger.entries_for_job(job.job_id)] == [
        EntryKind.HOLD,
        EntryKind.HOLD_RELEASE,
    ]
    assert await scenario.ledger.balance(jobs.caller.account_id) == STARTING_BALANCE
    assert scenario.keys() == []
    await scenario.nothing_lost(jobs)


async def test_a_video_stored_as_the_deadline_fires_is_deleted_not_orphaned(
    scenario: Scenario,
) -> None:
    """The race: the upload reaches S3, but its answer is still on the wire when the deadline
    fires, so the workflow releases the hold without ever hearing the video was stored."""
    # Seconds. Reached (below) less than the rehost's 30 s heartbeat timeout after its last
    # heartbeat, so no retry of the held attempt interferes; long enough for the render.
    deadline = 25
    jobs = scenario.harness(
        await make_caller(scenario.ledger, STARTING_BALANCE),
        deadline_seconds=deadline,
        poll_interval_seconds=1,
    )
    env = scenario.env
    scenario.proxy.hold_replies()
    async with jobs.worker():
        handle, _ = await jobs.start_and_admit(jobs.request(duration=2, simulate_seconds=1))
        result = asyncio.create_task(handle.result())
        key = video_key(handle.id)

        async def stored() -> bool:
            return scenario.keys() == [key]

        await eventually(stored, "the upload has reached S3")
        # Time stands still while an activity runs on this server: move it to the deadline.
        started = (await handle.describe()).start_time
        until_deadline = started + timedelta(seconds=deadline + 1) - await env.get_current_time()
        await env.sleep(max(until_deadline, timedelta(0)))

        async def released() -> bool:
            record = await scenario.ledger.get_job(handle.id)
            return record is not None and record.status.is_terminal

        await eventually(released, "the hold is released at the deadline")
        assert scenario.keys() == [key], "the stored video went away on its own"
        scenario.proxy.release_replies()
        job = (await result).job

    assert scenario.keys() == [], "the video of a job that was not delivered is still stored"
    assert job.status is JobStatus.REFUNDED
    assert job.error is not None and job.error.code is ErrorCode.REHOST_FAILED
    assert [entry.kind for entry in await scenario.ledger.entries_for_job(job.job_id)] == [
        EntryKind.HOLD,
        EntryKind.HOLD_RELEASE,
    ]
    await scenario.nothing_lost(jobs)
