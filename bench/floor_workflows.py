"""Bare workflows that floors are measured against, and the worker process that serves them.

A floor is what Temporal itself costs for the same shape of work on the same machine: the same
admission path (update-with-start), the same number of activity round trips, the same worker
configuration (``KYMA_WORKER_MAX_CONCURRENT_ACTIVITIES`` / ``..._WORKFLOW_TASKS``, the same
sandboxed workflow runner, the same data converter), and nothing else: no database, no provider,
no blob store, no search attributes. Whatever a benchmark measures above its floor is ours.

Run the floor worker as its own process, exactly like ``kyma-video worker``::

    KYMA_TEMPORAL_ADDRESS=... KYMA_TASK_QUEUE=... python -m bench.floor_workflows

(:func:`floor_worker_process` does that for a benchmark). It serves every workflow in
:data:`FLOOR_WORKFLOWS` and every activity in :data:`FLOOR_ACTIVITIES`; a benchmark that needs
another floor adds its definitions in a section of its own below and lists them there.
"""

import asyncio
import contextlib
import logging
import subprocess
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.worker import Worker

# -- Throughput floor (bench.throughput) -------------------------------------------------------
#
# A job costs a fixed number of activity round trips (see bench.throughput for the count): one
# inside the ``admit`` update, the rest in the run. ``FloorJob`` does exactly that with no-op
# activities, started by update-with-start like ``JobClient.start_job``. With 0 activities
# after the admission it is also the admission floor (bench.admission).


@activity.defn(name="floor_noop")
async def floor_noop() -> None:
    """One activity round trip and nothing else."""


@workflow.defn(name="FloorJob")
class FloorJobWorkflow:
    """Update-with-start admission running one no-op activity, then N more in the run."""

    @workflow.init
    def __init__(self, activities_after_admit: int) -> None:
        self._admitted = False

    @workflow.update
    async def admit(self) -> None:
        await workflow.execute_activity(floor_noop, start_to_close_timeout=timedelta(seconds=10))
        self._admitted = True

    @workflow.run
    async def run(self, activities_after_admit: int) -> None:
        """``activities_after_admit`` no-op activities after the admission's one."""
        await workflow.wait_condition(lambda: self._admitted)
        for _ in range(activities_after_admit):
            await workflow.execute_activity(
                floor_noop, start_to_close_timeout=timedelta(seconds=10)
            )
        await workflow.wait_condition(workflow.all_handlers_finished)


# -- Everything the floor worker serves ---------------------------------------------------------

FLOOR_WORKFLOWS: list[type] = [FloorJobWorkflow]
FLOOR_ACTIVITIES: list[Callable[..., Any]] = [floor_noop]


# -- The floor worker process ---------------------------------------------------------------------


async def run_floor_worker(stop: asyncio.Event) -> None:
    """Serve the floors with the worker options ``worker.build_worker`` gives the main worker."""
    # Imported here, not at the top: the sandbox re-imports this module for every workflow run,
    # and a floor must not pay for imports only the worker process needs.
    from kyma_video.client import connect
    from kyma_video.settings import get_settings
    from workflows.sandbox import workflow_runner

    settings = get_settings()
    client = await connect(settings)
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=FLOOR_WORKFLOWS,
        workflow_runner=workflow_runner(),
        activities=FLOOR_ACTIVITIES,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
    )
    logging.getLogger("bench.floor").info("worker polling task queue %s", settings.task_queue)
    async with worker:
        await stop.wait()


def main() -> None:
    from bench.stack import run_until_signalled

    run_until_signalled(run_floor_worker)


@contextlib.contextmanager
def floor_worker_process(settings_env: Mapping[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m bench.floor_workflows`` as its own process, configured like the product
    worker by ``KYMA_*`` variables (started, awaited and stopped as ``bench.stack`` does)."""
    from bench.stack import module_process

    with module_process("bench.floor_workflows", settings_env, ready=b"worker polling") as proc:
        yield proc


if __name__ == "__main__":
    main()
