"""The provider seam: what every upstream adapter (fal, MiniMax, Vertex, simulated) offers.

Adapters are stateless between calls: everything needed to follow a job upstream is in the
small :class:`UpstreamJob` handle (provider, endpoint, request id), which is all the workflow
ever stores. Failures are :class:`ProviderError` carrying a product error code and whether a
retry could help, so activities turn them into retryable or non-retryable Temporal errors
without inspecting messages.
"""

from collections.abc import AsyncIterator, Callable
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, JsonValue

from kyma_video.errors import ErrorCode
from providers.catalog import ProviderName

#: Streams a URL's bytes with the deployment's SSRF guard, size and time bounds
#: (``providers.http_media.media_fetcher``). Adapters fetch every URL through one of these.
MediaFetcher = Callable[[str], AsyncIterator[bytes]]


class UpstreamJob(BaseModel):
    """Enough to find a job upstream again, from any worker, after any restart."""

    provider: ProviderName
    endpoint: str
    request_id: str


class SubmitRequest(BaseModel):
    """What an adapter sends upstream; ``params`` are forwarded to the provider unchanged."""

    job_id: str
    model: str
    endpoint: str
    prompt: str
    duration_seconds: int
    image_url: str | None
    image_field: str
    params: dict[str, JsonValue]


class UpstreamState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class MediaRef(BaseModel):
    """Where a finished video can be fetched; the adapter that produced it knows how."""

    url: str
    content_type: str | None = None


class UpstreamStatus(BaseModel):
    state: UpstreamState
    media: MediaRef | None = None
    error_code: ErrorCode | None = None
    error_message: str | None = None
    #: A provider's hint for when to look again (rate limits, queue position).
    retry_after_seconds: float | None = None


class ProviderError(Exception):
    """An upstream failure, classified once by the adapter that understands the provider."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable
        self.retry_after_seconds = retry_after_seconds


class Provider(Protocol):
    name: ProviderName
    #: True only for the built-in simulated provider; jobs it serves are marked simulated.
    simulated: bool

    async def submit(self, request: SubmitRequest) -> str:
        """Start an upstream job and return the provider's request id."""
        ...

    async def status(self, job: UpstreamJob) -> UpstreamStatus:
        """One cheap look at the upstream job; never blocks until completion."""
        ...

    async def cancel(self, job: UpstreamJob) -> None:
        """Best-effort cancellation; providers that cannot cancel simply return."""
        ...

    def open_media(self, job: UpstreamJob, media: MediaRef) -> AsyncIterator[bytes]:
        """Stream the finished video's bytes (fetching a fresh signed URL if the provider
        needs one); the caller writes them straight to blob storage."""
        ...
