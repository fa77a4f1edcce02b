"""The worker process: runs the video-job workflow and every activity on one task queue.

``python worker.py`` (or ``kyma-video worker``) reads the same ``KYMA_*`` settings as every
other process. On SIGTERM or SIGINT it stops polling for new tasks, gives in-flight activities
``KYMA_WORKER_GRACEFUL_SHUTDOWN_SECONDS`` to finish, then cancels the rest; every activity is
idempotent, so Temporal safely retries a cancelled one on another worker.
"""

import asyncio
import contextlib
import logging
import signal
from datetime import timedelta
from typing import Any, Self

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from activities import ActivityDeps, all_activities, upstream_activities
from blob import from_settings as blob_store_from_settings
from kyma_video.client import connect
from kyma_video.settings import Settings, get_settings
from ledger import Ledger, migrate
from providers.registry import build_registry
from workflows import VideoJobWorkflow
from workflows.sandbox import workflow_runner
from workflows.video_job import provider_task_queue

log = logging.getLogger("kyma_video.worker")


class WorkerGroup:
    """The main worker and one worker per provider, started and drained together.

    The main worker runs the workflow and every activity on ``KYMA_TASK_QUEUE`` (provider
    activities included, for runs scheduled before provider task queues existed). Each provider
    worker polls ``<task queue>.<provider>`` with that provider's limits
    (``KYMA_PROVIDER_LIMITS``).
    """

    def __init__(self, workers: list[Worker]) -> None:
        self.workers = workers
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> Self:
        async with contextlib.AsyncExitStack() as stack:
            for worker in self.workers:
                await stack.enter_async_context(worker)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()


def build_worker(
    client: Client,
    settings: Settings,
    deps: ActivityDeps,
    **main_options: Any,
) -> WorkerGroup:
    drain = timedelta(seconds=settings.worker_graceful_shutdown_seconds)
    # Tests pass worker options of their own (e.g. no cache); they win over the settings.
    main_options = {"max_cached_workflows": settings.worker_max_cached_workflows, **main_options}
    main = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[VideoJobWorkflow],
        # Every activity is async; blocking work (PyAV encoding, boto3 transfers) runs in
        # threads the activities manage themselves, so no activity executor is needed.
        workflow_runner=workflow_runner(),
        activities=all_activities(deps),
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=drain,
        **main_options,
    )
    providers = []
    for name in deps.providers.names():
        limits = settings.limits_for_provider(name.value)
        providers.append(
            Worker(
                client,
                task_queue=provider_task_queue(settings.task_queue, name.value),
                activities=upstream_activities(deps),
                max_concurrent_activities=limits.concurrency,
                max_task_queue_activities_per_second=limits.requests_per_second,
                graceful_shutdown_timeout=drain,
            )
        )
    return WorkerGroup([main, *providers])


async def build_deps(settings: Settings) -> ActivityDeps:
    url = settings.resolved_database_url
    if url.startswith("sqlite"):
        # The embedded ledger migrates itself; PostgreSQL is migrated as a deploy step so that
        # several replicas never race each other's migrations.
        await migrate(url)
    return ActivityDeps(
        ledger=Ledger.from_url(url),
        providers=build_registry(settings),
        blobs=blob_store_from_settings(settings),
    )


def _runtime(settings: Settings) -> Runtime | None:
    """With ``KYMA_WORKER_METRICS_ADDRESS`` set, the SDK serves Prometheus metrics there; the
    endpoint doubles as the worker's liveness probe in Kubernetes."""
    if not settings.worker_metrics_address:
        return None
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=settings.worker_metrics_address)
        )
    )


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Run until ``stop`` is set, then shut down gracefully."""
    deps = await build_deps(settings)
    client = await connect(settings, runtime=_runtime(settings))
    worker = build_worker(client, settings, deps)
    log.info("worker polling task queue %s on %s", settings.task_queue, settings.temporal_address)
    try:
        async with worker:
            await stop.wait()
            log.info("shutting down: letting in-flight activities finish")
    finally:
        await deps.providers.aclose()
        await deps.ledger.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings = get_settings()

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(_run())


if __name__ == "__main__":
    main()
