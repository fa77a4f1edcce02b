"""History size: workflow history events per job for upstreams of 10 s, 2 min and 9 min.

What is measured: the real ``VideoJob`` workflow, served by the production worker group
(``worker.build_worker``) with the simulated provider on a SQLite ledger and the local blob
backend, on Temporal's time-skipping test server: the simulated upstream reads the server's
clock, so a 9-minute upstream passes in well under a second of wall time while the workflow
polls it exactly as it would in production. For each upstream length the benchmark runs jobs
to ``succeeded`` and counts the events in each job's history: all of them, and those after the
admission (from the ``admit`` update's completion to the end).

Why the history does not grow: ``await_upstream`` polls through its retry policy (see
``activities/upstream.py``). Attempts of one activity are not history events; only the last
one's start and completion are recorded, however many looks it took.

The floor is the 10 s job's own history: the target is that longer upstreams cost exactly the
same (ratio ≤ 1.0, which a single extra event would break) and that a job stays under 60
events in all (an absolute ceiling, no floor).

Admission and the time-skipping server: it cannot run update-with-start, so the benchmark
starts each workflow and then sends ``admit``, the two-step equivalent. Production delivers
the start and the update in one workflow task; here the first workflow task sometimes runs
before the update arrives, which adds one workflow task (3 events: scheduled, started,
completed) in front of the admission; its only command, the admission-timeout timer, is one
production issues in the admitting task anyway. The benchmark recognises the extra task (a
completed workflow task before the one that accepts the update) and reports totals without
it, i.e. the history update-with-start writes (checked against a job admitted with
update-with-start on the dev server: the same events, one for one); the raw column says
how many runs had one. Events after admission are unaffected either way.
"""

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities import ActivityDeps
from bench._cli import standalone
from bench.report import Figure, Goal, Section
from blob import LocalBlobStore
from kyma_video import search_attributes
from kyma_video.client import derive_job_id
from kyma_video.errors import JobStatus
from kyma_video.jobs import VideoRequest
from kyma_video.settings import Settings
from kyma_video.temporal_binaries import test_server_path
from ledger import Ledger, migrate
from providers.registry import ProviderRegistry
from providers.simulated import SimulatedProvider
from worker import build_worker
from workflows import AdmitRequest, JobInput, JobOutcome, JobTimings, VideoJobWorkflow

COMMAND = "python -m bench.history"
#: Upstream lengths in seconds: 10 s, 2 min, 9 min (the deadline is 10 min).
UPSTREAMS = (10, 120, 540)
CEILING = 60


@dataclass(frozen=True)
class Count:
    """One job's history, counted."""

    total: int
    after_admission: int
    #: Workflow tasks before the admission that update-with-start would not have had.
    extra_tasks: int

    @property
    def as_deployed(self) -> int:
        """The total update-with-start writes (one workflow task carries start and update)."""
        return self.total - 3 * self.extra_tasks


def count(events: list[HistoryEvent]) -> Count:
    accepted = next(
        i
        for i, event in enumerate(events)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    )
    completed = next(
        i
        for i, event in enumerate(events)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED
    )
    # Before the update is accepted, production has exactly one workflow task (the one that
    # accepts it); any earlier completed one ran before the update arrived.
    tasks_before = sum(
        event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        for event in events[:accepted]
    )
    return Count(
        total=len(events),
        after_admission=len(events) - completed,
        extra_tasks=max(0, tasks_before - 1),
    )


async def run_job(
    env: WorkflowEnvironment, task_queue: str, caller: tuple[str, str], seconds: int
) -> Count:
    """Start, admit and finish one job whose upstream takes ``seconds``; count its history."""
    account_id, api_key_id = caller
    request = VideoRequest.from_body(
        {
            "model": "kling-2.5-pro",
            "prompt": "an hourglass on a desk",
            "simulate_seconds": seconds,
            # The footage is not what is measured: a short clip keeps the rehost cheap.
            "simulate_delivered_seconds": 0.5,
        }
    )
    job_id = derive_job_id(api_key_id, uuid.uuid4().hex)
    handle: WorkflowHandle[VideoJobWorkflow, JobOutcome] = await env.client.start_workflow(
        VideoJobWorkflow.run,
        JobInput(
            job_id=job_id,
            account_id=account_id,
            api_key_id=api_key_id,
            request=request,
            timings=JobTimings(),  # production defaults: 5 s poll interval, 10 min deadline
        ),
        id=job_id,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )
    await handle.execute_update(
        VideoJobWorkflow.admit, AdmitRequest(fingerprint=request.fingerprint())
    )
    outcome = await handle.result()
    if outcome.job.status is not JobStatus.SUCCEEDED:
        raise RuntimeError(f"{seconds} s job ended {outcome.job.status}")
    return count([event async for event in handle.fetch_history_events()])


async def run(quick: bool) -> Section:
    jobs_per_upstream = 1 if quick else 3
    section = Section(3, "History size", COMMAND + (" --quick" if quick else ""))
    counts: dict[int, list[Count]] = {seconds: [] for seconds in UPSTREAMS}
    started = time.perf_counter()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(), data_converter=pydantic_data_converter
    )
    async with env:
        await search_attributes.register(env.client)
        with tempfile.TemporaryDirectory(prefix="kyma-bench-") as workdir:
            url = f"sqlite+aiosqlite:///{Path(workdir) / 'ledger.db'}"
            await migrate(url)
            ledger = Ledger.from_url(url)
            try:
                account = await ledger.create_account("bench", balance=Decimal(1000))
                key, _ = await ledger.create_api_key(account.id)
                simulated = SimulatedProvider(clock=env.get_current_time)
                deps = ActivityDeps(
                    ledger=ledger,
                    providers=ProviderRegistry(simulated=simulated),
                    blobs=LocalBlobStore(Path(workdir) / "blobs", "http://files.bench/files"),
                )
                task_queue = f"bench-history-{uuid.uuid4().hex[:8]}"
                async with build_worker(env.client, Settings(task_queue=task_queue), deps):
                    for _ in range(jobs_per_upstream):
                        for seconds in UPSTREAMS:
                            # A stuck job fails the benchmark instead of hanging it.
                            async with asyncio.timeout(120):
                                job = run_job(env, task_queue, (account.id, key.id), seconds)
                                counts[seconds].append(await job)
            finally:
                await ledger.close()
    elapsed = time.perf_counter() - started

    def worst(seconds: int) -> Count:
        return max(counts[seconds], key=lambda c: (c.after_admission, c.as_deployed))

    def raw(seconds: int) -> str:
        runs = counts[seconds]
        totals = sorted({c.as_deployed for c in runs})
        after = sorted({c.after_admission for c in runs})
        extra = sum(c.extra_tasks > 0 for c in runs)
        return (
            f"{seconds} s: {'/'.join(map(str, totals))} in all, "
            f"{'/'.join(map(str, after))} after admission ({extra} of {len(runs)} two-step "
            "runs had an extra first task)"
        )

    base = worst(UPSTREAMS[0])
    for seconds, label in ((120, "2 min"), (540, "9 min")):
        longer = worst(seconds)
        section.figures.append(
            Figure(
                name=f"events per job, {label} upstream",
                value=longer.as_deployed,
                unit="events",
                target=1.0,
                goal=Goal.AT_MOST,
                floor=base.as_deployed,
                floor_name="10 s upstream",
                raw=f"{raw(seconds)}; {raw(UPSTREAMS[0])}",
            )
        )
        section.figures.append(
            Figure(
                name=f"events after admission, {label} upstream",
                value=longer.after_admission,
                unit="events",
                target=1.0,
                goal=Goal.AT_MOST,
                floor=base.after_admission,
                floor_name="10 s upstream",
            )
        )
    largest = max((worst(s) for s in UPSTREAMS), key=lambda c: c.as_deployed)
    section.figures.append(
        Figure(
            name="events per job, largest",
            value=largest.as_deployed,
            unit="events",
            target=CEILING,
            goal=Goal.AT_MOST,
            raw=", ".join(
                f"{s} s: {worst(s).as_deployed} ({worst(s).after_admission} after admission)"
                for s in UPSTREAMS
            ),
        )
    )
    section.notes += [
        "Events per job are the whole history of a job that succeeds, as update-with-start "
        "writes it (the time-skipping server's two-step admission can add one workflow task "
        "before the admission, which is recognised and left out; see the module "
        "docstring). Events after admission run from the admit update's completion to the "
        "workflow's completion.",
        "Upstream time does not add events because await_upstream polls through its retry "
        "policy: attempts of one activity are not history events, only its final start and "
        "completion are.",
        f"{jobs_per_upstream} job(s) per upstream length on Temporal's time-skipping test "
        "server with production timings (5 s poll interval, 10 min deadline); the worst count "
        f"per length is reported. Wall time {elapsed:.1f} s including the server's start.",
    ]
    return section


if __name__ == "__main__":
    standalone(run, __doc__)
