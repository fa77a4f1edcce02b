"""Async byte sources for store and ingest tests, including ones that fail on purpose."""

import struct
from collections.abc import AsyncIterator


class SourceFailed(Exception):
    """Raised by a test source; tests check it arrives unchanged (same object)."""


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def failing(
    data: bytes, error: BaseException, *, after: int | None = None, size: int = 64 * 1024
) -> AsyncIterator[bytes]:
    """Yield ``data`` in chunks, then raise ``error`` once ``after`` bytes were yielded
    (``None``: after the last chunk, where a verifier raises its verdict)."""
    sent = 0
    async for chunk in chunks_of(data, size):
        if after is not None and sent + len(chunk) > after:
            chunk = chunk[: after - sent]
            if chunk:
                yield chunk
            raise error
        sent += len(chunk)
        yield chunk
    raise error


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def ftyp(brand: bytes = b"isom") -> bytes:
    return box(b"ftyp", brand + b"\x00\x00\x02\x00" + b"isomiso2avc1mp41")


def mvhd(timescale: int, duration: int, *, version: int = 0) -> bytes:
    if version == 0:
        times = struct.pack(">IIII", 0, 0, timescale, duration)
    else:
        times = struct.pack(">QQIQ", 0, 0, timescale, duration)
    # rate, volume, reserved, matrix, pre_defined, next_track_ID: content irrelevant here.
    return box(b"mvhd", bytes([version, 0, 0, 0]) + times + bytes(80))


def trak(handler: bytes = b"vide") -> bytes:
    hdlr = box(b"hdlr", bytes(8) + handler + bytes(12) + b"Handler\x00")
    return box(b"trak", box(b"tkhd", bytes(84)) + box(b"mdia", box(b"mdhd", bytes(24)) + hdlr))


def moov(timescale: int = 1000, duration: int = 5000, *, version: int = 0) -> bytes:
    return box(b"moov", mvhd(timescale, duration, version=version) + trak())


def mdat(payload: bytes) -> bytes:
    return box(b"mdat", payload)
