"""Blobs in an S3-compatible bucket (AWS, R2, MinIO), uploaded in bounded memory.

boto3's managed transfer does the hard parts: it splits the stream into parts, uploads them
in parallel, retries them, and aborts the multipart upload when anything fails, so S3 never
assembles an object from a failed stream. It is synchronous and wants a file-like object,
while our bytes come from an async iterator on the event loop. The bridge is
:class:`_IteratorReader`: ``upload_fileobj`` runs in a worker thread and reads from a
non-seekable raw stream whose ``readinto`` asks the event loop for the next chunk. Nothing
else is buffered, so memory is about ``part_size`` x ``max_concurrency`` whatever the
object's size.

Credentials are never parameters: boto3's default chain (environment, profile, instance
role) supplies them, so they cannot leak through settings dumps or logs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import threading
from collections.abc import AsyncIterator
from typing import IO, TYPE_CHECKING, cast

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from blob._keys import check_key, join_url
from blob._store import BlobNotFound

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from mypy_boto3_s3 import S3Client

MIB = 1024 * 1024
#: S3 rejects multipart uploads whose parts (all but the last) are smaller than this.
MIN_PART_SIZE = 5 * MIB


class S3BlobStore:
    """``key_prefix`` is prepended to every key to form the object name (and the public URL
    path), so callers use the same keys with every store and never see the prefix.

    Per upload, about ``part_size`` x (``max_concurrency`` + 2) bytes are in memory (parts
    in flight, the part being read, and its copy). Beyond ``max_parallel_uploads`` uploads
    at once, further ``put_stream`` calls wait for a free upload thread.

    Parts default to S3's minimum, 5 MiB: a rehost is limited by its download, not by how
    many bytes are in flight to S3, and with 8 MiB parts the pipeline was only full for
    videos well over 50 MB, so peak memory still grew by ~25 MB from a 50 MB video to a
    500 MB one; at 5 MiB (~30 MiB per upload) it is full by 50 MB and grows ~10 MB, with the
    same throughput (``bench.rehost``). A 512 MiB video is 103 parts, far from S3's 10,000.
    """

    def __init__(
        self,
        *,
        bucket: str,
        public_base_url: str,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        part_size: int = MIN_PART_SIZE,
        max_concurrency: int = 4,
        key_prefix: str = "",
        max_parallel_uploads: int = 64,
        client: S3Client | None = None,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        if key_prefix:
            check_key(key_prefix + "k")
        self._bucket = bucket
        self._public_base_url = public_base_url
        self._key_prefix = key_prefix
        self._client: S3Client = client or boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url or None,
            region_name=region,
            config=Config(
                retries={"mode": "standard"},
                max_pool_connections=max(10, max_concurrency + 2),
                # S3-compatible servers (MinIO, moto) rarely resolve bucket subdomains.
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        )
        # The classic transfer manager is the one whose memory bound we rely on; the CRT one
        # (picked automatically on some instance types) buffers differently.
        self._transfer = TransferConfig(
            multipart_threshold=part_size,
            multipart_chunksize=part_size,
            max_concurrency=max_concurrency,
            use_threads=True,
            preferred_transfer_client="classic",
        )
        # Parts read but not yet sent; boto3's default (10) would allow 10 x part_size.
        self._transfer.max_in_memory_upload_chunks = max_concurrency
        # Each upload parks a thread for its whole duration, mostly waiting on the source.
        # Parking them in the loop's default executor (asyncio.to_thread) would starve
        # everything else that uses it, such as DNS lookups, while large uploads run.
        self._uploads = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_parallel_uploads, thread_name_prefix="s3-upload"
        )

    @property
    def bucket(self) -> str:
        return self._bucket

    def object_key(self, key: str) -> str:
        """The S3 object name that holds ``key``."""
        return check_key(self._key_prefix + check_key(key))

    def public_url(self, key: str) -> str:
        return join_url(self._public_base_url, self.object_key(key))

    async def put_stream(
        self, key: str, chunks: AsyncIterator[bytes], *, content_type: str
    ) -> None:
        object_key = self.object_key(key)
        loop = asyncio.get_running_loop()
        reader = _IteratorReader(chunks, loop)
        upload = loop.run_in_executor(self._uploads, self._upload, reader, object_key, content_type)
        try:
            await asyncio.shield(upload)
        except asyncio.CancelledError:
            if not upload.done():
                # The thread cannot be interrupted; make its next read fail so boto3 aborts
                # the multipart upload, and wait for that so no parts are left behind.
                reader.abort()
                await asyncio.wait([upload])
                if not upload.cancelled():
                    upload.exception()
            raise

    def _upload(self, reader: _IteratorReader, object_key: str, content_type: str) -> None:
        self._client.upload_fileobj(
            # The stubs want IO[Any]; boto3 only needs read() (and checks seekable()).
            cast(IO[bytes], reader),
            self._bucket,
            object_key,
            ExtraArgs={"ContentType": content_type},
            Config=self._transfer,
        )

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(
                self._client.head_object, Bucket=self._bucket, Key=self.object_key(key)
            )
        except ClientError as exc:
            if _is_not_found(exc):
                return False
            raise
        return True

    async def read(self, key: str) -> bytes:
        return await asyncio.to_thread(self._read, self.object_key(key))

    def _read(self, object_key: str) -> bytes:
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=object_key)
        except ClientError as exc:
            if _is_not_found(exc):
                raise BlobNotFound(object_key) from None
            raise
        return response["Body"].read()

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(
            self._client.delete_object, Bucket=self._bucket, Key=self.object_key(key)
        )


def _is_not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}


class _Aborted(Exception):
    """The waiting coroutine was cancelled; the upload must fail so boto3 cleans up."""


class _IteratorReader(io.RawIOBase):
    """A readable, non-seekable stream over an async iterator that lives on ``loop``.

    Used from boto3's threads only. ``readinto`` fills the whole buffer unless the iterator
    ends, because boto3 reads each part with a single ``read(part_size)`` and would take a
    short read for a short part. An exception from the iterator is raised from ``readinto``
    as is, so boto3 fails the transfer with that very exception.
    """

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._chunks = chunks
        self._loop = loop
        self._pending = memoryview(b"")
        self._exhausted = False
        self._aborted = threading.Event()
        self._fetch: concurrent.futures.Future[bytes | None] | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        target = memoryview(buffer).cast("B")
        filled = 0
        while filled < len(target):
            if not self._pending:
                if self._exhausted:
                    break
                chunk = self._next_chunk()
                if chunk is None:
                    self._exhausted = True
                    break
                self._pending = memoryview(chunk)
            count = min(len(target) - filled, len(self._pending))
            target[filled : filled + count] = self._pending[:count]
            self._pending = self._pending[count:]
            filled += count
        return filled

    def abort(self) -> None:
        """Make the reading thread fail at its next step. Called from the event loop."""
        self._aborted.set()
        fetch = self._fetch
        if fetch is not None:
            fetch.cancel()

    def _next_chunk(self) -> bytes | None:
        if self._aborted.is_set():
            raise _Aborted
        self._fetch = asyncio.run_coroutine_threadsafe(_next_or_none(self._chunks), self._loop)
        try:
            return self._fetch.result()
        except concurrent.futures.CancelledError:
            raise _Aborted from None
        finally:
            self._fetch = None


async def _next_or_none(chunks: AsyncIterator[bytes]) -> bytes | None:
    # None marks the end: StopAsyncIteration cannot travel through a future.
    try:
        return await anext(chunks)
    except StopAsyncIteration:
        return None
