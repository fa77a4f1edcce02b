"""Rehost one video: stream it into storage while proving it is a video, in flat memory.

Everything is decided on the bytes as they pass: size against the limit, the sha256 we
publish, and the :class:`~blob.mp4.Mp4Probe` verdict. The verdict on the last byte arrives
after the store has received all the others, so it is raised from inside the stream the
store is reading; by the :class:`~blob.BlobStore` contract the store then discards the
object. Nothing is ever downloaded twice or read back.
"""

import hashlib
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from blob._errors import VideoTooLarge
from blob._store import BlobStore
from blob.mp4 import Mp4Info, Mp4Probe, NotAVideo, content_type_for_brand


class StoredVideo(BaseModel):
    """A verified video at its permanent URL; maps one-to-one onto a job's output."""

    model_config = ConfigDict(frozen=True)

    key: str
    url: str
    size_bytes: int
    sha256: str
    content_type: str
    duration_seconds: Decimal


async def ingest_video(
    store: BlobStore, key: str, chunks: AsyncIterator[bytes], *, max_bytes: int
) -> StoredVideo:
    """Store ``chunks`` under ``key`` if and only if they form a video of at most ``max_bytes``.

    Raises :class:`~blob.NotAVideo` or :class:`~blob.VideoTooLarge` (both
    :class:`~blob.InvalidVideo`) and stores nothing when the bytes are refused; errors from
    ``chunks`` or the store propagate unchanged. An existing object under ``key`` is
    replaced, so retrying an ingest is safe. ``chunks`` is closed (``aclose``) on return.
    """
    url = store.public_url(key)  # rejects a bad key before a byte is fetched
    verifier = _Verifier(chunks, max_bytes)
    try:
        content_type = await verifier.read_brand()
        async with aclosing(verifier.stream()) as verified:
            await store.put_stream(key, verified, content_type=content_type)
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
    if verifier.info is None:
        # A store that returns before exhausting its input broke its contract; what it
        # stored was never verified, so it must not stay published.
        await store.delete(key)
        raise RuntimeError(f"{type(store).__name__} stopped reading before the end")
    return StoredVideo(
        key=key,
        url=url,
        size_bytes=verifier.size,
        sha256=verifier.sha256.hexdigest(),
        content_type=verifier.info.content_type,
        duration_seconds=verifier.info.duration_seconds,
    )


class _Verifier:
    def __init__(self, chunks: AsyncIterator[bytes], max_bytes: int) -> None:
        self._chunks = chunks
        self._max_bytes = max_bytes
        self._probe = Mp4Probe()
        self._head: list[bytes] = []
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.info: Mp4Info | None = None

    async def read_brand(self) -> str:
        """Read just far enough to name the content type, which stores need up front.

        The ``ftyp`` brand sits in the first 12 bytes, so this holds at most a chunk or two.
        """
        while (brand := self._probe.major_brand) is None:
            chunk = await anext(self._chunks, None)
            if chunk is None:
                raise NotAVideo(
                    "the stream ended before its ftyp box" if self.size else "the stream is empty"
                )
            self._take(chunk)
            self._head.append(chunk)
        return content_type_for_brand(brand)

    async def stream(self) -> AsyncGenerator[bytes, None]:
        while self._head:
            yield self._head.pop(0)
        async for chunk in self._chunks:
            self._take(chunk)
            yield chunk
        self.info = self._probe.finish()

    def _take(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self._max_bytes:
            raise VideoTooLarge(f"the video is larger than the {self._max_bytes}-byte limit")
        self.sha256.update(chunk)
        self._probe.feed(chunk)
