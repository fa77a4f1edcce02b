"""A provider that behaves like an upstream without leaving the machine.

It accepts a job, takes a configurable time, then succeeds or fails as the request asks, and
delivers a real, playable H.264 MP4 of the delivered duration. It powers the local stack, demos
and tests, is off unless ``KYMA_SIMULATED_PROVIDER`` is set, and every job it serves is marked
``simulated``.

It keeps no state: the request id it returns encodes when the job was submitted and how it
should behave, so any worker can answer a status call after any restart, exactly as a real
provider would. Its clock is injectable, which is how tests on Temporal's time-skipping server
make a "9 minute" upstream finish instantly.

Behaviour is chosen through pass-through params (ignored by real providers' adapters only in
the sense that they would forward them and the provider would reject or ignore them):

``simulate_seconds``            how long the upstream job runs (default: settings)
``simulate_outcome``            ``succeed`` | ``fail`` | ``reject`` | ``invalid_output`` |
                                ``media_unavailable`` | ``never``
``simulate_delivered_seconds``  footage length to deliver (default: the upstream duration)
``seed``                        varies the rendered frames
"""

import asyncio
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from pydantic import JsonValue

from kyma_video.errors import ErrorCode
from providers.base import (
    MediaRef,
    ProviderError,
    SubmitRequest,
    UpstreamJob,
    UpstreamState,
    UpstreamStatus,
)
from providers.catalog import ProviderName
from providers.simulated_media import render_mp4

#: Async so a test can read the Temporal test server's (skipped) time over RPC.
Clock = Callable[[], Awaitable[datetime]]
_CHUNK = 256 * 1024
_MAX_SIMULATED_SECONDS = 24 * 3600.0
#: Rendered clips kept per provider for reuse (a clip of the same length and seed is the same
#: bytes): a real upstream hands over a finished file, so serving one must not cost an encode.
_CLIP_CACHE_BYTES = 32 * 1024 * 1024
#: Longer clips (minutes of footage) are rendered for each download and never kept.
_MAX_CACHED_CLIP_BYTES = 4 * 1024 * 1024


async def _utcnow() -> datetime:
    return datetime.now(UTC)


class Outcome(StrEnum):
    SUCCEED = "succeed"
    FAIL = "fail"
    REJECT = "reject"
    INVALID_OUTPUT = "invalid_output"
    MEDIA_UNAVAILABLE = "media_unavailable"
    NEVER = "never"


@dataclass(frozen=True)
class _Ticket:
    """Everything a simulated upstream job is, packed into its request id."""

    job_id: str
    submitted_ms: int
    run_ms: int
    outcome: Outcome
    delivered_ms: int
    seed: int

    def encode(self) -> str:
        # The job id goes last, so it may contain the separator.
        return ".".join(
            (
                "sim",
                str(self.submitted_ms),
                str(self.run_ms),
                self.outcome.value,
                str(self.delivered_ms),
                str(self.seed),
                self.job_id,
            )
        )

    @classmethod
    def decode(cls, request_id: str) -> "_Ticket":
        try:
            tag, submitted, run, outcome, delivered, seed, job_id = request_id.split(".", 6)
            if tag != "sim":
                raise ValueError(tag)
            return cls(
                job_id, int(submitted), int(run), Outcome(outcome), int(delivered), int(seed)
            )
        except ValueError:
            raise ProviderError(
                ErrorCode.UPSTREAM_FAILED,
                f"unknown simulated request id {request_id!r}",
                retryable=False,
            ) from None


def _seconds_param(params: dict[str, JsonValue], name: str, default: float) -> float:
    value = params.get(name, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= _MAX_SIMULATED_SECONDS
    ):
        raise ProviderError(
            ErrorCode.UPSTREAM_REJECTED,
            f"{name} must be a number of seconds between 0 and {_MAX_SIMULATED_SECONDS:g}",
            retryable=False,
        )
    return float(value)


class _Clips:
    """Recently rendered clips by (delivered milliseconds, seed), least recently used first out,
    within a byte budget."""

    def __init__(self, max_bytes: int) -> None:
        self._clips: OrderedDict[tuple[int, int], bytes] = OrderedDict()
        self._bytes = 0
        self._max_bytes = max_bytes

    def get(self, key: tuple[int, int]) -> bytes | None:
        clip = self._clips.get(key)
        if clip is not None:
            self._clips.move_to_end(key)
        return clip

    def put(self, key: tuple[int, int], clip: bytes) -> None:
        if key in self._clips:
            return
        self._clips[key] = clip
        self._bytes += len(clip)
        while self._bytes > self._max_bytes:
            _, evicted = self._clips.popitem(last=False)
            self._bytes -= len(evicted)


class SimulatedProvider:
    name = ProviderName.SIMULATED
    simulated = True

    def __init__(self, *, default_seconds: float = 3.0, clock: Clock = _utcnow) -> None:
        self._default_seconds = default_seconds
        self._clock = clock
        self._clips = _Clips(_CLIP_CACHE_BYTES)

    async def _now_ms(self) -> int:
        return int((await self._clock()).timestamp() * 1000)

    async def submit(self, request: SubmitRequest) -> str:
        params = request.params
        try:
            outcome = Outcome(str(params.get("simulate_outcome", Outcome.SUCCEED.value)))
        except ValueError:
            raise ProviderError(
                ErrorCode.UPSTREAM_REJECTED,
                f"simulate_outcome must be one of {[o.value for o in Outcome]}",
                retryable=False,
            ) from None
        run = _seconds_param(params, "simulate_seconds", self._default_seconds)
        delivered = _seconds_param(
            params, "simulate_delivered_seconds", float(request.duration_seconds)
        )
        if int(delivered * 1000) <= 0:
            raise ProviderError(
                ErrorCode.UPSTREAM_REJECTED,
                "simulate_delivered_seconds must be at least a millisecond",
                retryable=False,
            )
        seed = params.get("seed", 0)
        ticket = _Ticket(
            job_id=request.job_id,
            submitted_ms=await self._now_ms(),
            run_ms=int(run * 1000),
            outcome=outcome,
            delivered_ms=int(delivered * 1000),
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else 0,
        )
        return ticket.encode()

    async def status(self, job: UpstreamJob) -> UpstreamStatus:
        ticket = _Ticket.decode(job.request_id)
        elapsed_ms = await self._now_ms() - ticket.submitted_ms
        if ticket.outcome is Outcome.NEVER or elapsed_ms < ticket.run_ms:
            remaining = None
            if ticket.outcome is not Outcome.NEVER:
                remaining = (ticket.run_ms - elapsed_ms) / 1000
            return UpstreamStatus(state=UpstreamState.RUNNING, retry_after_seconds=remaining)
        if ticket.outcome is Outcome.FAIL:
            return UpstreamStatus(
                state=UpstreamState.FAILED,
                error_code=ErrorCode.UPSTREAM_FAILED,
                error_message="simulated upstream failure",
            )
        if ticket.outcome is Outcome.REJECT:
            return UpstreamStatus(
                state=UpstreamState.FAILED,
                error_code=ErrorCode.CONTENT_REJECTED,
                error_message="simulated content-policy rejection",
            )
        return UpstreamStatus(
            state=UpstreamState.SUCCEEDED,
            media=MediaRef(url=f"simulated://{job.request_id}.mp4", content_type="video/mp4"),
        )

    async def cancel(self, job: UpstreamJob) -> None:
        """Nothing runs anywhere, so there is nothing to stop."""
        _Ticket.decode(job.request_id)

    async def open_media(self, job: UpstreamJob, media: MediaRef) -> AsyncIterator[bytes]:
        ticket = _Ticket.decode(job.request_id)
        if ticket.outcome is Outcome.MEDIA_UNAVAILABLE:
            raise ProviderError(
                ErrorCode.REHOST_FAILED,
                "simulated media host is unavailable",
                retryable=True,
            )
        if ticket.outcome is Outcome.INVALID_OUTPUT:
            yield b"<html><body>503 Service Unavailable</body></html>"
            return
        key = (ticket.delivered_ms, ticket.seed)
        clip = self._clips.get(key)
        if clip is not None:
            for start in range(0, len(clip), _CHUNK):
                yield clip[start : start + _CHUNK]
            return
        workdir = await asyncio.to_thread(tempfile.mkdtemp, prefix="kyma-simulated-")
        path = Path(workdir) / "output.mp4"
        try:
            await asyncio.to_thread(
                render_mp4, path, ticket.delivered_ms / 1000, seed=ticket.seed
            )
            size = await asyncio.to_thread(lambda: path.stat().st_size)
            if size <= _MAX_CACHED_CLIP_BYTES:
                clip = await asyncio.to_thread(path.read_bytes)
                self._clips.put(key, clip)
                for start in range(0, len(clip), _CHUNK):
                    yield clip[start : start + _CHUNK]
                return
            video = await asyncio.to_thread(path.open, "rb")
            try:
                while chunk := await asyncio.to_thread(video.read, _CHUNK):
                    yield chunk
            finally:
                video.close()
        finally:
            await asyncio.to_thread(shutil.rmtree, workdir, True)

