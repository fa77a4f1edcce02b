import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities import ActivityDeps
from blob import LocalBlobStore
from kyma_video.client import Caller
from ledger import Ledger
from providers.base import SubmitRequest, UpstreamJob
from providers.registry import ProviderRegistry
from providers.simulated import SimulatedProvider
from tests.workflows.harness import make_caller


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    async def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class CountingProvider(SimulatedProvider):
    """The simulated provider, counting what reaches "upstream"."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(default_seconds=10, clock=clock)
        self.submitted: list[SubmitRequest] = []
        self.cancelled: list[UpstreamJob] = []

    async def submit(self, request: SubmitRequest) -> str:
        self.submitted.append(request)
        return await super().submit(request)

    async def cancel(self, job: UpstreamJob) -> None:
        self.cancelled.append(job)


@dataclasses.dataclass
class Context:
    deps: ActivityDeps
    provider: CountingProvider
    clock: ManualClock
    caller: Caller

    def env(self, run_id: str = "run-1") -> ActivityEnvironment:
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, workflow_run_id=run_id)
        return env


@pytest.fixture
async def ctx(sqlite_ledger: Ledger, tmp_path: Path) -> AsyncIterator[Context]:
    clock = ManualClock()
    provider = CountingProvider(clock)
    yield Context(
        deps=ActivityDeps(
            ledger=sqlite_ledger,
            providers=ProviderRegistry(simulated=provider),
            blobs=LocalBlobStore(tmp_path / "blobs", "http://files.test/files"),
        ),
        provider=provider,
        clock=clock,
        caller=await make_caller(sqlite_ledger, Decimal("10")),
    )


def job_id() -> str:
    return f"vid_{uuid.uuid4().hex}"
