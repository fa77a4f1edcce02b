"""Rehosting: the finished video moves from the provider to our storage inside one activity.

Bytes stream from the provider straight into blob storage (multipart on S3), being hashed and
checked as an MP4 on the way, so memory stays flat however large the file is and no byte ever
enters workflow history. The object key is derived from the job id, so a retried attempt
overwrites the same object instead of leaving a second one.
"""

from collections.abc import AsyncIterator

from temporalio import activity

from activities.deps import ActivityDeps
from activities.errors import classified_failures, permanent
from activities.messages import RehostedVideo, RehostInput
from blob import InvalidVideo, ingest_video
from kyma_video.errors import ErrorCode
from kyma_video.jobs import JobOutput
from providers.http_media import MediaFetchError


def video_key(job_id: str) -> str:
    return f"{job_id}.mp4"


async def _heartbeating(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Heartbeat as bytes arrive: a stalled download or a dead worker is noticed within the
    heartbeat timeout instead of at the end of the whole download budget."""
    received = 0
    async for chunk in chunks:
        received += len(chunk)
        activity.heartbeat(received)
        yield chunk


class RehostActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self._deps = deps

    @activity.defn(name="discard_output")
    async def discard_output(self, job_id: str) -> None:
        """Delete the job's stored video, if any, for a job that ends without delivering it.

        A rehost attempt can store the video and still not count: its completion was lost
        (the worker died, the attempt timed out) before a later attempt failed, or the
        deadline fired while the upload was finishing. The key is derived from the job id, so
        whatever any attempt stored is found here; deleting a missing key is not an error.
        """
        await self._deps.blobs.delete(video_key(job_id))

    @activity.defn(name="rehost_output")
    async def rehost_output(self, inp: RehostInput) -> RehostedVideo:
        key = video_key(inp.job_id)
        try:
            with classified_failures():
                provider = self._deps.providers.get(inp.upstream.provider)
                stored = await ingest_video(
                    self._deps.blobs,
                    key,
                    _heartbeating(provider.open_media(inp.upstream, inp.media)),
                    max_bytes=inp.max_video_bytes,
                )
        except InvalidVideo as error:
            message = f"upstream output rejected: {error}"
            raise permanent(ErrorCode.INVALID_OUTPUT, message) from error
        except MediaFetchError as error:
            if error.retryable:
                raise
            raise permanent(ErrorCode.REHOST_FAILED, str(error)) from error
        return RehostedVideo(
            key=stored.key,
            output=JobOutput(
                url=stored.url,
                content_type=stored.content_type,
                size_bytes=stored.size_bytes,
                duration_seconds=stored.duration_seconds,
                sha256=stored.sha256,
            ),
        )
