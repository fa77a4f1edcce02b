"""Mp4Probe against real encoder output (PyAV as the oracle) and hand-built edge cases."""

import random
import struct
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import av
import pytest

from blob import InvalidVideo, Mp4Info, Mp4Probe, NotAVideo
from tests.blob.streams import box, ftyp, mdat, moov, mvhd, trak

CLIPS = [(seconds, faststart) for seconds in (1.0, 5.0, 10.0) for faststart in (True, False)]


def probe(data: bytes, chunk_size: int | None = None, **kwargs: int) -> Mp4Info:
    scanner = Mp4Probe(**kwargs)
    step = chunk_size or max(1, len(data))
    for start in range(0, len(data), step):
        scanner.feed(data[start : start + step])
    return scanner.finish()


def rejected_at(data: bytes) -> int:
    """Feed one byte at a time; the number of bytes fed when NotAVideo was raised."""
    scanner = Mp4Probe()
    for index in range(len(data)):
        try:
            scanner.feed(data[index : index + 1])
        except NotAVideo:
            return index + 1
    with pytest.raises(NotAVideo):
        scanner.finish()
    return len(data) + 1


def pyav_duration(path: Path) -> Fraction:
    with av.open(str(path)) as container:
        return Fraction(container.duration, av.time_base)


@pytest.mark.parametrize(("seconds", "faststart"), CLIPS)
def test_duration_agrees_with_pyav(
    clips: dict[tuple[float, bool], Path], seconds: float, faststart: bool
) -> None:
    path = clips[seconds, faststart]
    data = path.read_bytes()
    # The two layouts really are different: moov before or after the media.
    assert (data.index(b"moov") < data.index(b"mdat")) is faststart

    info = probe(data)

    assert info == Mp4Info(
        duration_seconds=info.duration_seconds, major_brand="isom", content_type="video/mp4"
    )
    assert abs(Fraction(info.duration_seconds) - pyav_duration(path)) <= Fraction(1, 1000)
    assert info.duration_seconds == Decimal(int(seconds))


@pytest.mark.parametrize("faststart", [True, False])
def test_any_chunking_gives_the_same_answer(
    clips: dict[tuple[float, bool], Path], faststart: bool
) -> None:
    data = clips[1.0, faststart].read_bytes()
    whole = probe(data)
    assert probe(data, chunk_size=1) == whole
    assert probe(data, chunk_size=7) == whole

    scanner = Mp4Probe()
    rng = random.Random(7)
    position = 0
    while position < len(data):
        step = rng.randint(0, 5000)
        scanner.feed(data[position : position + step])
        position += step
    assert scanner.finish() == whole


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(b"<!DOCTYPE html><html><body>Access denied</body></html>", id="html"),
        pytest.param(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01" + bytes(100), id="jpeg"),
        pytest.param(b'{"error": "expired"}', id="json"),
        pytest.param(random.Random(1).randbytes(4096), id="random"),
        pytest.param(box(b"mdat", bytes(64)) + ftyp() + moov(), id="mdat-first"),
    ],
)
def test_non_videos_are_rejected_within_the_first_header(garbage: bytes) -> None:
    assert rejected_at(garbage) <= 8


def test_rejection_is_an_invalid_video_and_sticky() -> None:
    scanner = Mp4Probe()
    with pytest.raises(NotAVideo) as first:
        scanner.feed(b"GIF89a\x01\x00\x01\x00")
    assert isinstance(first.value, InvalidVideo)
    with pytest.raises(NotAVideo):
        scanner.feed(b"more")
    with pytest.raises(NotAVideo):
        scanner.finish()


def test_empty_stream_is_not_a_video() -> None:
    with pytest.raises(NotAVideo, match="empty"):
        Mp4Probe().finish()


@pytest.mark.parametrize("faststart", [True, False])
def test_truncated_files_are_rejected(
    clips: dict[tuple[float, bool], Path], faststart: bool
) -> None:
    data = clips[1.0, faststart].read_bytes()
    moov_at = data.index(b"moov") - 4
    mdat_at = data.index(b"mdat") - 4
    for cut in sorted({4, 12, 30, moov_at + 3, moov_at + 100, mdat_at + 3, mdat_at + 500}):
        with pytest.raises(NotAVideo):
            probe(data[:cut])
    with pytest.raises(NotAVideo, match="short"):
        probe(data[:-1])


def test_brand_is_known_as_soon_as_the_ftyp_names_it() -> None:
    scanner = Mp4Probe()
    header = ftyp(b"qt  ")
    scanner.feed(header[:11])
    assert scanner.major_brand is None
    scanner.feed(header[11:12])
    assert scanner.major_brand == "qt  "


def test_quicktime_brand_is_stored_as_quicktime() -> None:
    info = probe(ftyp(b"qt  ") + moov() + mdat(bytes(10)))
    assert (info.major_brand, info.content_type) == ("qt  ", "video/quicktime")


@pytest.mark.parametrize("version", [0, 1])
def test_mvhd_versions_give_exact_decimals(version: int) -> None:
    info = probe(ftyp() + moov(timescale=90000, duration=459000, version=version) + mdat(b""))
    assert info.duration_seconds == Decimal("5.1")
    assert str(info.duration_seconds) == "5.1"


def test_a_final_box_of_size_zero_runs_to_the_end() -> None:
    to_end = struct.pack(">I4s", 0, b"mdat") + bytes(10_000)
    assert probe(ftyp() + moov() + to_end, chunk_size=333).duration_seconds == 5
    moov_to_end = struct.pack(">I4s", 0, b"moov") + moov()[8:]
    assert probe(ftyp() + mdat(bytes(100)) + moov_to_end).duration_seconds == 5


def test_a_size_zero_box_before_moov_swallows_it() -> None:
    to_end = struct.pack(">I4s", 0, b"mdat")
    with pytest.raises(NotAVideo, match="no moov"):
        probe(ftyp() + to_end + moov())


@pytest.mark.parametrize("size", [2, 4, 7])
def test_box_sizes_below_the_header_are_rejected_on_sight(size: int) -> None:
    bad = struct.pack(">I4s", size, b"free")
    assert rejected_at(ftyp() + bad + moov()) == len(ftyp()) + 8


def test_largesize_boxes() -> None:
    payload = bytes(5000)
    large_mdat = struct.pack(">I4sQ", 1, b"mdat", 16 + len(payload)) + payload
    assert probe(ftyp() + large_mdat + moov(), chunk_size=1).duration_seconds == 5
    too_small = struct.pack(">I4sQ", 1, b"mdat", 12)
    assert rejected_at(ftyp() + too_small + moov()) == len(ftyp()) + 16


def test_a_huge_moov_is_rejected_from_its_header() -> None:
    header = struct.pack(">I4s", 65 * 1024 * 1024, b"moov")
    assert rejected_at(ftyp() + header) == len(ftyp()) + 8


def test_a_moov_growing_past_the_cap_is_rejected() -> None:
    moov_to_end = struct.pack(">I4s", 0, b"moov") + bytes(2000)
    with pytest.raises(NotAVideo, match="limit"):
        probe(ftyp() + moov_to_end, chunk_size=100, max_moov_bytes=1000)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (ftyp() + mdat(bytes(100)), "no moov"),
        (ftyp() + box(b"moov", trak()) + mdat(b""), "no mvhd"),
        (ftyp() + moov(duration=0), "zero"),
        (ftyp() + moov(timescale=0), "timescale"),
        (ftyp() + moov(duration=0xFFFFFFFF), "unknown"),
        (ftyp() + box(b"moov", mvhd(1000, 5000) + trak(b"soun")), "no video track"),
        (ftyp() + moov() + moov(), "more than one moov"),
        (ftyp() + box(b"moov", trak() + mvhd(1000, 5000)[:-10]), "impossible size"),
        (ftyp() + box(b"moov", trak() + bytes(5)), "cut short"),
        (box(b"ftyp", b"isom"), "too small"),
        (ftyp() + box(b"mo\x00v", bytes(8)), "corrupt box type"),
    ],
)
def test_structurally_unusable_files_are_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(NotAVideo, match=reason):
        probe(data)
