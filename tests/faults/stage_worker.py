"""The production worker, observed: crash tests run it as ``python -m tests.faults.stage_worker``.

It is ``worker.py`` itself (same ``KYMA_*`` settings, same :func:`worker.run_worker`, signal
handling and shutdown); only the dependencies its activities receive are wrapped, at the edges a
crash test needs to see:

* the provider double appends the job id of every submission the provider *accepted* to
  ``KYMA_FAULT_SUBMISSION_LOG`` (one line each, appended by every process, so the test counts
  submissions across the worker it killed and the one that took over);
* with ``KYMA_FAULT_PAUSE_AT=<stage>`` (a :class:`Stage`), the process writes the JSON marker
  ``KYMA_FAULT_MARKER`` when a job reaches that point and then never proceeds past it, so the
  test can ``SIGKILL`` it there. Without it, the process is a normal worker.

The provider double answers "still running" without a retry hint (as fal does), so polls come
every ``KYMA_POLL_INTERVAL_SECONDS`` and a later poll really happens while upstream still runs.
"""

import asyncio
import dataclasses
import json
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import Any

from temporalio import activity

import worker
from activities import ActivityDeps
from blob import BlobStore
from kyma_video.jobs import JobOutput
from kyma_video.settings import Settings
from ledger import JobRecord, Ledger
from providers.base import MediaRef, Provider, SubmitRequest, UpstreamJob, UpstreamState
from providers.base import UpstreamStatus as Status

PAUSE_AT_ENV = "KYMA_FAULT_PAUSE_AT"
MARKER_ENV = "KYMA_FAULT_MARKER"
SUBMISSION_LOG_ENV = "KYMA_FAULT_SUBMISSION_LOG"

ROOT = Path(__file__).resolve().parents[2]
#: What ``worker.run_worker`` logs once it is about to poll.
READY_LINE = b"worker polling"

#: Pieces the store is fed while rehosting, so a pause can fall between two writes.
REHOST_PIECE_BYTES = 16 * 1024


class Stage(StrEnum):
    """Where a worker can be stopped dead, in the order a job passes them."""

    #: The hold is committed; the submit activity runs but has not called the provider.
    BEFORE_SUBMIT = "before_submit"
    #: The provider accepted the job; the activity has not recorded its id (unknown outcome).
    SUBMITTED_UNRECORDED = "submitted_unrecorded"
    #: Submit completed and is in history; the first poll has not asked the provider yet.
    FIRST_POLL = "first_poll"
    #: A later poll (attempt >= 2) was just told that upstream is still running.
    LATER_POLL = "later_poll"
    #: Rehosting: some bytes are written to the store, the rest of the stream is not.
    MID_REHOST = "mid_rehost"
    #: Capture committed the charge in the ledger; the activity has not returned.
    CAPTURED = "captured"


class Faults:
    """The test's instruments inside the worker: the submission log and the pause point."""

    def __init__(
        self, *, pause_at: Stage | None, marker: Path | None, submission_log: Path | None
    ) -> None:
        self.pause_at = pause_at
        self.marker = marker
        self.submission_log = submission_log

    @classmethod
    def from_env(cls) -> "Faults":
        pause_at = os.environ.get(PAUSE_AT_ENV)
        marker = os.environ.get(MARKER_ENV)
        log = os.environ.get(SUBMISSION_LOG_ENV)
        if pause_at and not marker:
            raise SystemExit(f"{PAUSE_AT_ENV} needs {MARKER_ENV}")
        return cls(
            pause_at=Stage(pause_at) if pause_at else None,
            marker=Path(marker) if marker else None,
            submission_log=Path(log) if log else None,
        )

    def log_submission(self, job_id: str) -> None:
        if self.submission_log is None:
            return
        # One O_APPEND write per line: lines from several processes never interleave, and
        # the kernel has it once write() returns, so a SIGKILL right after cannot lose it.
        fd = os.open(self.submission_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{job_id}\n".encode())
        finally:
            os.close(fd)

    async def reach(self, stage: Stage, job_id: str, **detail: Any) -> None:
        """Return at once unless this process pauses at ``stage``; then never return."""
        if stage is not self.pause_at:
            return
        assert self.marker is not None
        attempt = activity.info().attempt if activity.in_activity() else None
        payload = {"stage": stage.value, "job_id": job_id, "attempt": attempt, **detail}
        partial = self.marker.with_suffix(".tmp")
        partial.write_text(json.dumps(payload))
        partial.replace(self.marker)  # the test never reads half a marker
        await asyncio.Event().wait()


def _job_id() -> str:
    """The job an activity works for: its workflow id is the job id."""
    return activity.info().workflow_id


class ObservedProvider:
    """A provider (the simulated one, or a real adapter aimed at a double), observed."""

    def __init__(self, inner: Provider, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults
        self.name = inner.name
        self.simulated = inner.simulated

    async def submit(self, request: SubmitRequest) -> str:
        await self._faults.reach(Stage.BEFORE_SUBMIT, request.job_id)
        request_id = await self._inner.submit(request)
        self._faults.log_submission(request.job_id)
        await self._faults.reach(Stage.SUBMITTED_UNRECORDED, request.job_id, request_id=request_id)
        return request_id

    async def status(self, job: UpstreamJob) -> Status:
        first = activity.info().attempt == 1
        if first:
            await self._faults.reach(Stage.FIRST_POLL, _job_id(), request_id=job.request_id)
        status = await self._inner.status(job)
        if status.state is UpstreamState.RUNNING:
            status = status.model_copy(update={"retry_after_seconds": None})
            if not first:
                await self._faults.reach(Stage.LATER_POLL, _job_id(), state=status.state.value)
        return status

    async def cancel(self, job: UpstreamJob) -> None:
        await self._inner.cancel(job)

    def open_media(self, job: UpstreamJob, media: MediaRef) -> AsyncIterator[bytes]:
        return self._inner.open_media(job, media)


class ObservedStore:
    """The blob store, fed in small pieces so that a pause can fall mid-stream."""

    def __init__(self, inner: BlobStore, faults: Faults) -> None:
        self._inner = inner
        self._faults = faults

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str
    ) -> None:
        pieces = self._pieces(_job_id(), key, chunks)
        await self._inner.put_stream(key, pieces, content_type=content_type)

    async def _pieces(
        self, job_id: str, key: str, chunks: AsyncIterator[bytes]
    ) -> AsyncIterator[bytes]:
        written = 0
        async for chunk in chunks:
            for start in range(0, len(chunk), REHOST_PIECE_BYTES):
                if written:
                    # The store asks for more only after it wrote what it was given.
                    await self._faults.reach(Stage.MID_REHOST, job_id, key=key, written=written)
                piece = chunk[start : start + REHOST_PIECE_BYTES]
                yield piece
                written += len(piece)

    def public_url(self, key: str) -> str:
        return self._inner.public_url(key)

    async def exists(self, key: str) -> bool:
        return await self._inner.exists(key)

    async def read(self, key: str) -> bytes:
        return await self._inner.read(key)

    async def delete(self, key: str) -> None:
        await self._inner.delete(key)


class ObservedLedger(Ledger):
    """The ledger, with a pause point after a capture's transaction committed."""

    def __init__(self, ledger: Ledger, faults: Faults) -> None:
        super().__init__(ledger.engine)
        self._faults = faults

    async def capture_usage(self, job_id: str, output: JobOutput, *, output_key: str) -> JobRecord:
        record = await super().capture_usage(job_id, output, output_key=output_key)
        await self._faults.reach(Stage.CAPTURED, job_id, status=record.status.value)
        return record


def observed(deps: ActivityDeps, faults: Faults) -> ActivityDeps:
    registry = deps.providers
    providers = dataclasses.replace(
        registry,
        real={name: ObservedProvider(p, faults) for name, p in registry.real.items()},
        simulated=(
            ObservedProvider(registry.simulated, faults) if registry.simulated is not None else None
        ),
    )
    return ActivityDeps(
        ledger=ObservedLedger(deps.ledger, faults),
        providers=providers,
        blobs=ObservedStore(deps.blobs, faults),
    )


# -- for the tests: starting it and reading what it observed ---------------------------------


def submissions(log: Path) -> Counter[str]:
    """Accepted upstream submissions per job id, from the log every stage worker appends to."""
    if not log.exists():
        return Counter()
    return Counter(line for line in log.read_text().splitlines() if line)


def tail(log: Path, lines: int = 40) -> str:
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


async def until(
    condition: Callable[[], bool], *, within: float, failure: Callable[[], str]
) -> None:
    """Check ``condition`` (file reads: it runs in a thread) every 50 ms until it holds; after
    ``within`` seconds fail with ``failure()``."""
    try:
        async with asyncio.timeout(within):
            while True:
                if await asyncio.to_thread(condition):
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(failure()) from None


@asynccontextmanager
async def stage_worker(
    env: dict[str, str], log: Path, *, ready_within: float = 90
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start a stage worker with ``env`` on top of this process's environment, its output
    appended to ``log``; yield it once it polls, kill it (if still alive) on the way out."""
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.faults.stage_worker",
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output,
            stderr=output,
        )
    try:
        await until(
            lambda: process.returncode is not None or READY_LINE in log.read_bytes(),
            within=ready_within,
            failure=lambda: f"the stage worker did not start polling:\n{tail(log)}",
        )
        assert process.returncode is None, f"the stage worker exited:\n{tail(log)}"
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def main() -> None:
    faults = Faults.from_env()
    production_build_deps = worker.build_deps

    async def build_observed_deps(settings: Settings) -> ActivityDeps:
        return observed(await production_build_deps(settings), faults)

    # run_worker looks build_deps up at call time: everything else is worker.py unchanged.
    worker.build_deps = build_observed_deps
    worker.main()


if __name__ == "__main__":
    main()
