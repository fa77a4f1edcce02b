"""Provider calls run on the provider's own task queue, whose worker bounds how many are in
flight: a burst of jobs larger than the limit queues in Temporal instead of hammering upstream."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime

from kyma_video.errors import JobStatus
from kyma_video.settings import ProviderLimits
from providers.base import SubmitRequest, UpstreamJob, UpstreamStatus
from providers.simulated import SimulatedProvider
from tests.workflows.harness import JobHarness, server_clock


class CrowdedUpstream(SimulatedProvider):
    """The simulated provider, counting how many calls are inside it at once."""

    def __init__(self, clock: Callable[[], Awaitable[datetime]]) -> None:
        super().__init__(default_seconds=0, clock=clock)
        self.inside = 0
        self.most = 0

    async def _visit(self) -> None:
        self.inside += 1
        self.most = max(self.most, self.inside)
        try:
            await asyncio.sleep(0.05)  # long enough for calls to overlap if they may
        finally:
            self.inside -= 1

    async def submit(self, request: SubmitRequest) -> str:
        await self._visit()
        return await super().submit(request)

    async def status(self, job: UpstreamJob) -> UpstreamStatus:
        await self._visit()
        return await super().status(job)


async def test_a_burst_never_exceeds_the_providers_concurrency(jobs: JobHarness):
    upstream = CrowdedUpstream(server_clock(jobs.env))
    jobs.simulated = upstream
    jobs.settings_overrides = {"provider_limits": {"simulated": ProviderLimits(concurrency=2)}}
    async with jobs.worker():
        started = [await jobs.start_and_admit(jobs.request()) for _ in range(10)]
        # One result at a time: the time-skipping server cannot unlock time for concurrent
        # waiters (the jobs still run concurrently; only the waiting is sequential).
        finished = [await handle.result() for handle, _ in started]
    assert all(outcome.job.status is JobStatus.SUCCEEDED for outcome in finished)
    assert upstream.most == 2
