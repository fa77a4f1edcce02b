"""The BlobStore contract, held against both backends: local files and S3 (moto over HTTP)."""

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from blob import BlobNotFound, BlobStore, LocalBlobStore, S3BlobStore
from tests.blob.streams import SourceFailed, chunks_of, failing

MIB = 1024 * 1024
PART = 5 * MIB


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs", "http://files.test/files/")
    return S3BlobStore(
        bucket=request.getfixturevalue("s3_bucket"),
        public_base_url="https://cdn.test",
        part_size=PART,
        client=request.getfixturevalue("s3_client"),
    )


@pytest.fixture
def nothing_left(
    store: BlobStore, request: pytest.FixtureRequest
) -> Callable[[str], Awaitable[None]]:
    """Check there is no object and no trace of the attempt: no temp file, no open upload."""
    s3 = request.getfixturevalue("s3_client") if isinstance(store, S3BlobStore) else None

    async def check(key: str) -> None:
        assert not await store.exists(key)
        if isinstance(store, LocalBlobStore):
            folder = store.path_for(key).parent
            assert not folder.exists() or os.listdir(folder) == []
        else:
            assert isinstance(store, S3BlobStore) and s3 is not None
            assert "Uploads" not in s3.list_multipart_uploads(Bucket=store.bucket)
            assert s3.list_objects_v2(Bucket=store.bucket)["KeyCount"] == 0

    return check


def payload(size: int, seed: int = 0) -> bytes:
    block = bytes((seed + index) % 251 for index in range(4096))
    return (block * (size // len(block) + 1))[:size]


async def test_round_trip(store: BlobStore) -> None:
    data = payload(300_000)
    await store.put_stream("jobs/a.mp4", chunks_of(data, 10_000), content_type="video/mp4")
    assert await store.exists("jobs/a.mp4")
    assert await store.read("jobs/a.mp4") == data
    assert not await store.exists("jobs/b.mp4")


async def test_public_url_joins_base_and_key(store: BlobStore) -> None:
    url = store.public_url("jobs/a.mp4")
    assert url in {"http://files.test/files/jobs/a.mp4", "https://cdn.test/jobs/a.mp4"}


async def test_empty_object(store: BlobStore) -> None:
    await store.put_stream("empty", chunks_of(b""), content_type="video/mp4")
    assert await store.read("empty") == b""


async def test_overwrite_replaces(store: BlobStore) -> None:
    await store.put_stream("k.mp4", chunks_of(b"first version"), content_type="video/mp4")
    await store.put_stream("k.mp4", chunks_of(b"second"), content_type="video/mp4")
    assert await store.read("k.mp4") == b"second"


async def test_delete_and_read_missing(store: BlobStore) -> None:
    await store.put_stream("k.mp4", chunks_of(b"x"), content_type="video/mp4")
    await store.delete("k.mp4")
    await store.delete("k.mp4")
    assert not await store.exists("k.mp4")
    with pytest.raises(BlobNotFound):
        await store.read("k.mp4")


@pytest.mark.parametrize(
    ("size", "after"),
    [
        pytest.param(100_000, 50_000, id="small-mid-stream"),
        pytest.param(100_000, None, id="small-after-last-chunk"),
        pytest.param(0, None, id="no-chunks-at-all"),
        pytest.param(2 * PART + 1000, PART + 10, id="multipart-mid-stream"),
        pytest.param(2 * PART + 1000, None, id="multipart-after-last-chunk"),
        pytest.param(2 * PART, None, id="multipart-exact-parts-after-last-chunk"),
    ],
)
async def test_source_failure_leaves_nothing_and_propagates_unchanged(
    store: BlobStore, nothing_left: Callable[[str], Awaitable[None]], size: int, after: int | None
) -> None:
    boom = SourceFailed("upstream broke")
    with pytest.raises(SourceFailed) as raised:
        await store.put_stream(
            "jobs/x.mp4", failing(payload(size), boom, after=after), content_type="video/mp4"
        )
    assert raised.value is boom
    await nothing_left("jobs/x.mp4")


async def test_failed_overwrite_keeps_the_previous_object(store: BlobStore) -> None:
    await store.put_stream("k.mp4", chunks_of(b"good"), content_type="video/mp4")
    with pytest.raises(SourceFailed):
        await store.put_stream(
            "k.mp4", failing(b"bad" * 1000, SourceFailed()), content_type="video/mp4"
        )
    assert await store.read("k.mp4") == b"good"


async def test_cancellation_leaves_nothing(
    store: BlobStore, nothing_left: Callable[[str], Awaitable[None]]
) -> None:
    started = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield payload(PART + MIB)
        started.set()
        await asyncio.Event().wait()
        yield b"never"

    task = asyncio.create_task(store.put_stream("c.mp4", stalls(), content_type="video/mp4"))
    await started.wait()
    if isinstance(store, S3BlobStore):
        await multipart_upload_started(store)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await nothing_left("c.mp4")


@pytest.mark.parametrize(
    "key", ["", "/abs.mp4", "../up.mp4", "a/../b", "a//b", ".hidden", "a/.b", "a\\b", "sp ace"]
)
async def test_invalid_keys_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="invalid blob key"):
        store.public_url(key)
    with pytest.raises(ValueError, match="invalid blob key"):
        await store.put_stream(key, chunks_of(b"x"), content_type="video/mp4")


# Local store specifics ---------------------------------------------------------------------


async def test_local_files_appear_whole_under_path_for(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs", "http://files.test/")
    target = store.path_for("jobs/a.mp4")
    assert target.is_absolute() and target.parts[-3:] == ("blobs", "jobs", "a.mp4")
    seen_during_write: list[bool] = []

    async def watched() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 1000
            seen_during_write.append(target.exists())

    await store.put_stream("jobs/a.mp4", watched(), content_type="video/mp4")
    assert seen_during_write == [False, False, False]
    assert target.read_bytes() == b"x" * 3000
    assert os.listdir(target.parent) == ["a.mp4"]
    assert target.stat().st_mode & 0o777 == 0o644


# S3 store specifics ------------------------------------------------------------------------


async def multipart_upload_started(store: S3BlobStore) -> None:
    """Wait until S3 holds an open multipart upload, so there is something to abort."""
    for _ in range(250):
        listed = await asyncio.to_thread(store._client.list_multipart_uploads, Bucket=store.bucket)
        if listed.get("Uploads"):
            return
        await asyncio.sleep(0.02)
    pytest.fail("the multipart upload never started")


@pytest.fixture
def s3_store(s3_bucket: str, moto_server: str) -> S3BlobStore:
    """Built from an endpoint like production, not from a shared client."""
    return S3BlobStore(
        bucket=s3_bucket, public_base_url="https://cdn.test", endpoint_url=moto_server,
        part_size=PART,
    )  # fmt: skip


async def test_s3_iterator_error_aborts_the_open_multipart_upload(
    s3_store: S3BlobStore, s3_client: S3Client
) -> None:
    boom = SourceFailed("connection reset by provider")

    async def fails_once_uploading() -> AsyncIterator[bytes]:
        yield payload(PART + MIB)
        await multipart_upload_started(s3_store)
        raise boom

    with pytest.raises(SourceFailed) as raised:
        await s3_store.put_stream("x.mp4", fails_once_uploading(), content_type="video/mp4")
    assert raised.value is boom
    assert "Uploads" not in s3_client.list_multipart_uploads(Bucket=s3_store.bucket)
    assert not await s3_store.exists("x.mp4")


async def test_s3_large_objects_use_multipart(s3_store: S3BlobStore, s3_client: S3Client) -> None:
    data = payload(2 * PART + 12345, seed=3)
    await s3_store.put_stream("big.mp4", chunks_of(data, MIB), content_type="video/mp4")

    head = s3_client.head_object(Bucket=s3_store.bucket, Key="big.mp4")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart ETag names its part count
    assert head["ContentType"] == "video/mp4"
    assert head["ContentLength"] == len(data)
    assert await s3_store.read("big.mp4") == data


async def test_s3_small_objects_use_a_single_put(
    s3_store: S3BlobStore, s3_client: S3Client
) -> None:
    await s3_store.put_stream("small.mp4", chunks_of(b"abc"), content_type="video/quicktime")
    head = s3_client.head_object(Bucket=s3_store.bucket, Key="small.mp4")
    assert "-" not in head["ETag"]
    assert head["ContentType"] == "video/quicktime"


async def test_s3_prefix_applies_to_object_names_and_urls(
    s3_bucket: str, s3_client: S3Client
) -> None:
    store = S3BlobStore(
        bucket=s3_bucket, public_base_url="https://cdn.test/", key_prefix="videos/",
        client=s3_client,
    )  # fmt: skip
    await store.put_stream("job_1.mp4", chunks_of(b"v"), content_type="video/mp4")
    listed = s3_client.list_objects_v2(Bucket=s3_bucket)
    assert [item["Key"] for item in listed["Contents"]] == ["videos/job_1.mp4"]
    assert store.public_url("job_1.mp4") == "https://cdn.test/videos/job_1.mp4"
    assert await store.exists("job_1.mp4")
    assert await store.read("job_1.mp4") == b"v"


def test_s3_refuses_parts_below_the_s3_minimum() -> None:
    with pytest.raises(ValueError, match="part_size"):
        S3BlobStore(bucket="b", public_base_url="https://cdn.test", part_size=MIB)
