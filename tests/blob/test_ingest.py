"""ingest_video on both stores: real clips are stored with the right facts, refusals leave
nothing behind."""

import hashlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from mypy_boto3_s3 import S3Client

from blob import (
    BlobStore,
    InvalidVideo,
    LocalBlobStore,
    NotAVideo,
    S3BlobStore,
    StoredVideo,
    VideoTooLarge,
    from_settings,
    ingest_video,
)
from kyma_video.settings import Settings
from tests.blob.streams import SourceFailed, chunks_of, failing

MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    if request.param == "local":
        return LocalBlobStore(tmp_path / "blobs", "http://files.test/files")
    return S3BlobStore(
        bucket=request.getfixturevalue("s3_bucket"),
        public_base_url="https://cdn.test",
        part_size=5 * MIB,
        client=request.getfixturevalue("s3_client"),
    )


async def test_a_real_video_is_stored_with_its_facts(store: BlobStore, video_bytes: bytes) -> None:
    stored = await ingest_video(
        store, "jobs/j1.mp4", chunks_of(video_bytes, 4096), max_bytes=len(video_bytes)
    )

    assert stored == StoredVideo(
        key="jobs/j1.mp4",
        url=store.public_url("jobs/j1.mp4"),
        size_bytes=len(video_bytes),
        sha256=hashlib.sha256(video_bytes).hexdigest(),
        content_type="video/mp4",
        duration_seconds=Decimal(5),
    )
    assert await store.read("jobs/j1.mp4") == video_bytes


async def test_one_byte_chunks(store: BlobStore, clips: dict[tuple[float, bool], Path]) -> None:
    data = clips[1.0, True].read_bytes()
    stored = await ingest_video(store, "one.mp4", chunks_of(data, 1), max_bytes=MIB)
    assert (stored.size_bytes, stored.duration_seconds) == (len(data), 1)


async def test_content_type_reaches_the_object(
    s3_bucket: str, s3_client: S3Client, video_bytes: bytes
) -> None:
    store = S3BlobStore(bucket=s3_bucket, public_base_url="https://cdn.test", client=s3_client)
    quicktime = video_bytes[:8] + b"qt  " + video_bytes[12:]
    stored = await ingest_video(store, "q.mov", chunks_of(quicktime), max_bytes=10 * MIB)
    assert stored.content_type == "video/quicktime"
    head = s3_client.head_object(Bucket=s3_bucket, Key="q.mov")
    assert head["ContentType"] == "video/quicktime"


@pytest.mark.parametrize(
    "junk",
    [
        pytest.param(b"<html><body>403 Forbidden</body></html>" * 100, id="html"),
        pytest.param(b"\xff\xd8\xff\xe0" + bytes(50_000), id="jpeg"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_a_non_video_is_refused_and_not_stored(store: BlobStore, junk: bytes) -> None:
    with pytest.raises(NotAVideo):
        await ingest_video(store, "bad.mp4", chunks_of(junk), max_bytes=MIB)
    assert not await store.exists("bad.mp4")


async def test_a_video_refused_at_its_last_byte_is_not_stored(
    store: BlobStore, video_bytes: bytes
) -> None:
    # Truncated mid-mdat: every byte reaches the store before the probe can tell.
    truncated = video_bytes[: len(video_bytes) - 1000]
    with pytest.raises(NotAVideo, match="short"):
        await ingest_video(store, "cut.mp4", chunks_of(truncated), max_bytes=MIB)
    assert not await store.exists("cut.mp4")


async def test_over_max_bytes_is_refused_and_not_stored(
    store: BlobStore, video_bytes: bytes
) -> None:
    with pytest.raises(VideoTooLarge) as raised:
        await ingest_video(store, "big.mp4", chunks_of(video_bytes), max_bytes=len(video_bytes) - 1)
    assert isinstance(raised.value, InvalidVideo)
    assert not await store.exists("big.mp4")


async def test_reingest_overwrites(store: BlobStore, clips: dict[tuple[float, bool], Path]) -> None:
    first, second = clips[1.0, True].read_bytes(), clips[10.0, True].read_bytes()
    await ingest_video(store, "k.mp4", chunks_of(first), max_bytes=MIB)
    stored = await ingest_video(store, "k.mp4", chunks_of(second), max_bytes=MIB)
    assert stored.duration_seconds == 10
    assert await store.read("k.mp4") == second


async def test_a_refused_reingest_keeps_the_earlier_video(
    store: BlobStore, video_bytes: bytes
) -> None:
    await ingest_video(store, "k.mp4", chunks_of(video_bytes), max_bytes=MIB)
    with pytest.raises(NotAVideo):
        await ingest_video(store, "k.mp4", chunks_of(video_bytes[:-1]), max_bytes=MIB)
    assert await store.read("k.mp4") == video_bytes


async def test_source_errors_propagate_unchanged(store: BlobStore, video_bytes: bytes) -> None:
    boom = SourceFailed("reset")
    with pytest.raises(SourceFailed) as raised:
        await ingest_video(store, "e.mp4", failing(video_bytes, boom, after=20_000), max_bytes=MIB)
    assert raised.value is boom
    assert not await store.exists("e.mp4")


async def test_the_source_is_closed_when_refused(store: BlobStore) -> None:
    closed = False

    async def endless_html() -> AsyncIterator[bytes]:
        nonlocal closed
        try:
            while True:
                yield b"<html>" * 1000
        finally:
            closed = True

    with pytest.raises(NotAVideo):
        await ingest_video(store, "h.mp4", endless_html(), max_bytes=MIB)
    assert closed


async def test_a_bad_key_is_refused_before_reading(store: BlobStore, video_bytes: bytes) -> None:
    read = False

    async def source() -> AsyncIterator[bytes]:
        nonlocal read
        read = True
        yield video_bytes

    with pytest.raises(ValueError, match="invalid blob key"):
        await ingest_video(store, "../escape.mp4", source(), max_bytes=MIB)
    assert not read


def test_from_settings_builds_the_configured_store(tmp_path: Path, moto_server: str) -> None:
    local = from_settings(Settings(data_dir=tmp_path, blob_public_base_url="http://api/files"))
    assert isinstance(local, LocalBlobStore)
    assert local.path_for("a.mp4") == (tmp_path / "blobs" / "a.mp4").resolve()

    s3 = from_settings(
        Settings(
            blob_backend="s3",
            s3_bucket="videos-bucket",
            s3_endpoint_url=moto_server,
            blob_public_base_url="https://cdn.test",
        )
    )
    assert isinstance(s3, S3BlobStore)
    assert s3.bucket == "videos-bucket"
    assert s3.object_key("job.mp4") == "videos/job.mp4"
    assert s3.public_url("job.mp4") == "https://cdn.test/videos/job.mp4"
