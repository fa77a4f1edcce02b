"""A job runner assembled from real parts for workflow tests: a real Temporal server, a real
SQLite or PostgreSQL ledger, real blob storage and the simulated provider."""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from blob import BlobStore
from kyma_video.client import Caller, JobClient, derive_job_id
from kyma_video.jobs import Admission, VideoRequest
from kyma_video.settings import Settings
from ledger import Ledger
from providers.base import Provider
from providers.catalog import ProviderName
from providers.registry import ProviderRegistry
from providers.simulated import SimulatedProvider
from worker import WorkerGroup, build_worker
from workflows import AdmitRequest, JobInput, JobOutcome, JobTimings, VideoJobWorkflow


async def wall_clock() -> datetime:
    return datetime.now(UTC)


def server_clock(env: WorkflowEnvironment) -> Callable[[], Awaitable[datetime]]:
    """The Temporal server's notion of now. On the time-skipping server it jumps with skipped
    time, so the simulated upstream "takes" minutes while the test takes milliseconds."""
    return env.get_current_time


@dataclass
class JobHarness:
    env: WorkflowEnvironment
    ledger: Ledger
    blobs: BlobStore
    caller: Caller
    clock: Callable[[], Awaitable[datetime]] | None = None
    timings: JobTimings = field(default_factory=lambda: JobTimings(poll_interval_seconds=5))
    task_queue: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex}")
    settings_overrides: dict[str, Any] = field(default_factory=dict)
    #: A provider to use instead of the default simulated one.
    simulated: Provider | None = None
    #: Real providers (pointed at local doubles) that serve their models instead.
    real_providers: dict[ProviderName, Provider] = field(default_factory=dict)

    def deps(self) -> ActivityDeps:
        clock = self.clock or server_clock(self.env)
        simulated = self.simulated or SimulatedProvider(default_seconds=30, clock=clock)
        registry = ProviderRegistry(real=self.real_providers, simulated=simulated)
        return ActivityDeps(ledger=self.ledger, providers=registry, blobs=self.blobs)

    @asynccontextmanager
    async def worker(self, **options: Any) -> AsyncIterator[WorkerGroup]:
        """The production worker group (main queue + one queue per provider)."""
        settings = Settings(task_queue=self.task_queue, **self.settings_overrides)
        async with build_worker(self.env.client, settings, self.deps(), **options) as group:
            yield group

    def request(self, **fields: Any) -> VideoRequest:
        body: dict[str, Any] = {"model": "kling-2.5-pro", "prompt": "an hourglass on a desk"}
        body.update(fields)
        return VideoRequest.from_body(body)

    def job_client(self) -> JobClient:
        return JobClient(self.env.client, task_queue=self.task_queue, timings=self.timings)

    async def start_and_admit(
        self, request: VideoRequest
    ) -> tuple[WorkflowHandle[VideoJobWorkflow, JobOutcome], Admission]:
        """Start, then admit: the time-skipping server cannot run update-with-start, so this is
        the two-step equivalent of ``JobClient.start_job``."""
        job_id = derive_job_id(self.caller.api_key_id, request.idempotency_key)
        handle = await self.env.client.start_workflow(
            VideoJobWorkflow.run,
            JobInput(
                job_id=job_id,
                account_id=self.caller.account_id,
                api_key_id=self.caller.api_key_id,
                request=request,
                timings=self.timings,
            ),
            id=job_id,
            task_queue=self.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )
        admission = await handle.execute_update(
            VideoJobWorkflow.admit, AdmitRequest(fingerprint=request.fingerprint())
        )
        return handle, admission

    async def history_length(self, handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
        """(all events, events after the admission completed).

        The first number can differ by one workflow task between runs here: this harness
        starts the workflow and then sends ``admit``, and whether the first workflow task runs
        before the update arrives is a race (update-with-start, used in production, delivers
        both in one task). Everything after the completed admission is the job itself.
        """
        events = [event async for event in handle.fetch_history_events()]
        admitted = next(
            i
            for i, event in enumerate(events)
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
        )
        return len(events), len(events) - admitted

    async def assert_balanced(self) -> Decimal:
        stored, summed = await self.ledger.audit(self.caller.account_id)
        assert stored == summed, f"balance {stored} != sum of entries {summed}"
        assert stored >= 0
        return stored


async def make_caller(ledger: Ledger, balance: Decimal) -> Caller:
    account = await ledger.create_account(f"test-{uuid.uuid4().hex[:8]}", balance=balance)
    key, _plaintext = await ledger.create_api_key(account.id)
    return Caller(account_id=account.id, api_key_id=key.id)
