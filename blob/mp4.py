"""Decide "this is a video, this long" while the bytes stream past, in flat memory.

Rehosting must not trust the upstream's word (or its Content-Type) that it sent a video, and
it must not hold the file in memory or re-read it from storage to find out. ISO-BMFF (MP4,
QuickTime) is a sequence of top-level boxes, each announcing its own size, so a small state
machine can walk them as chunks arrive: the media payload (``mdat``) is skipped by counting,
and only ``moov`` — the index, typically tens of kilobytes — is kept, under a cap. That is
enough to answer the three questions rehosting needs: is it ISO-BMFF (``ftyp`` first), does
it carry a video track, and what is its duration (``moov/mvhd``), which is what we bill by.

The scanner is strict where laxness would let non-videos through (the first box must be
``ftyp``; sizes must be self-consistent; the stream must end on a box boundary) and rejects
as early as the bytes allow, so an HTML error page is refused after its first 8 bytes.
"""

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, localcontext

from blob._errors import InvalidVideo

#: ``moov`` is the only box kept in memory; real ones are kilobytes to a few megabytes.
MAX_MOOV_BYTES = 64 * 1024 * 1024

_HEADER = 8
_LARGE_HEADER = 16
#: ftyp payload: major brand (4 bytes) and minor version (4 bytes), then compatible brands.
_FTYP_MIN_PAYLOAD = 8
_QUICKTIME_BRAND = "qt  "


class NotAVideo(InvalidVideo):
    """The bytes are not an MP4/QuickTime video with a known, non-zero duration."""


@dataclass(frozen=True)
class Mp4Info:
    duration_seconds: Decimal
    major_brand: str
    content_type: str


def content_type_for_brand(major_brand: str) -> str:
    """The media type to store a file under, from its ``ftyp`` major brand."""
    return "video/quicktime" if major_brand == _QUICKTIME_BRAND else "video/mp4"


class Mp4Probe:
    """Feed it every chunk in order, then call :meth:`finish`.

    :meth:`feed` raises :class:`NotAVideo` as soon as the bytes seen so far prove the stream
    is not a video; once raised, every later call raises the same error.
    """

    def __init__(self, *, max_moov_bytes: int = MAX_MOOV_BYTES) -> None:
        self._max_moov_bytes = max_moov_bytes
        self._position = 0
        # Header of the next top-level box, while it is incomplete.
        self._header = bytearray()
        self._header_offset = 0
        # The box whose payload is being consumed; None while reading a header.
        self._box: bytes | None = None
        # Payload bytes still to come; None when the box runs to the end of the stream.
        self._remaining: int | None = 0
        # The payload kept for parsing: the ftyp's first bytes, or the whole moov.
        self._kept: bytearray | None = None
        self._boxes = 0
        self._major_brand: str | None = None
        self._duration: Decimal | None = None
        self._error: NotAVideo | None = None
        self._info: Mp4Info | None = None

    @property
    def major_brand(self) -> str | None:
        """Known once the first 4 bytes of the ``ftyp`` payload have been fed."""
        return self._major_brand

    def feed(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error
        if self._info is not None:
            raise RuntimeError("feed() after finish()")
        view = memoryview(chunk)
        try:
            while view:
                view = self._read_header(view) if self._box is None else self._read_payload(view)
        except NotAVideo as exc:
            self._error = exc
            raise

    def finish(self) -> Mp4Info:
        """Declare the end of the stream and return what the file is."""
        if self._error is not None:
            raise self._error
        if self._info is None:
            try:
                self._info = self._conclude()
            except NotAVideo as exc:
                self._error = exc
                raise
        return self._info

    def _conclude(self) -> Mp4Info:
        if self._position == 0:
            raise NotAVideo("the stream is empty")
        if self._box is None:
            if self._header:
                raise NotAVideo(f"the stream ends inside a box header at byte {self._position}")
        elif self._remaining is None:
            self._close_box()
        else:
            raise NotAVideo(
                f"the stream ends inside the {_name(self._box)} box, "
                f"{self._remaining} bytes short (truncated download?)"
            )
        if self._major_brand is None:
            raise NotAVideo("the ftyp box is incomplete")
        if self._duration is None:
            raise NotAVideo("there is no moov box, so no duration")
        return Mp4Info(
            duration_seconds=self._duration,
            major_brand=self._major_brand,
            content_type=content_type_for_brand(self._major_brand),
        )

    def _read_header(self, view: memoryview) -> memoryview:
        if not self._header:
            self._header_offset = self._position
        needed = _LARGE_HEADER if self._is_large_header() else _HEADER
        taken = view[: needed - len(self._header)]
        self._header += taken
        self._position += len(taken)
        view = view[len(taken) :]
        if len(self._header) < _HEADER:
            return view
        size, box_type = struct.unpack_from(">I4s", self._header)
        self._check_type(box_type)
        if size == 1:
            if len(self._header) < _LARGE_HEADER:
                return view
            (size,) = struct.unpack_from(">Q", self._header, _HEADER)
            if size < _LARGE_HEADER:
                raise self._bad_size(box_type, size)
            payload: int | None = size - _LARGE_HEADER
        elif size == 0:
            payload = None
        elif size < _HEADER:
            raise self._bad_size(box_type, size)
        else:
            payload = size - _HEADER
        self._header.clear()
        self._open_box(box_type, payload)
        return view

    def _is_large_header(self) -> bool:
        return len(self._header) >= _HEADER and self._header[:4] == b"\x00\x00\x00\x01"

    def _check_type(self, box_type: bytes) -> None:
        if self._boxes == 0 and box_type != b"ftyp":
            raise NotAVideo(
                "not an MP4/QuickTime file: it does not start with an ftyp box "
                f"(first bytes {bytes(self._header[:_HEADER])!r})"
            )
        if not all(0x20 <= byte <= 0x7E or byte == 0xA9 for byte in box_type):
            raise NotAVideo(f"corrupt box type {box_type!r} at byte {self._header_offset}")

    def _bad_size(self, box_type: bytes, size: int) -> NotAVideo:
        return NotAVideo(
            f"the {_name(box_type)} box at byte {self._header_offset} has an impossible "
            f"size ({size})"
        )

    def _open_box(self, box_type: bytes, payload: int | None) -> None:
        first = self._boxes == 0
        self._boxes += 1
        self._kept = None
        if first:
            if payload is None or payload < _FTYP_MIN_PAYLOAD:
                raise NotAVideo("the ftyp box is too small to name a brand")
            self._kept = bytearray()
        elif box_type == b"moov":
            if self._duration is not None:
                raise NotAVideo("the file has more than one moov box")
            if payload is not None and payload > self._max_moov_bytes:
                raise NotAVideo(
                    f"the moov box is {payload} bytes, over the {self._max_moov_bytes} limit"
                )
            self._kept = bytearray()
        self._box = box_type
        self._remaining = payload
        if payload == 0:
            self._close_box()

    def _read_payload(self, view: memoryview) -> memoryview:
        size = len(view) if self._remaining is None else min(len(view), self._remaining)
        if self._kept is not None:
            if self._boxes == 1:
                self._kept += view[: max(0, min(size, _FTYP_MIN_PAYLOAD - len(self._kept)))]
                if self._major_brand is None and len(self._kept) >= 4:
                    self._major_brand = self._kept[:4].decode("latin-1")
            else:
                if len(self._kept) + size > self._max_moov_bytes:
                    raise NotAVideo(f"the moov box is over the {self._max_moov_bytes} limit")
                self._kept += view[:size]
        self._position += size
        if self._remaining is not None:
            self._remaining -= size
            if self._remaining == 0:
                self._close_box()
        return view[size:]

    def _close_box(self) -> None:
        if self._box == b"moov" and self._kept is not None:
            self._duration = _moov_duration(memoryview(self._kept))
        self._box = None
        self._kept = None
        self._remaining = 0


def _moov_duration(moov: memoryview) -> Decimal:
    mvhd: memoryview | None = None
    has_video = False
    for box_type, payload in _children(moov, "moov"):
        if box_type == b"mvhd":
            if mvhd is not None:
                raise NotAVideo("the moov box has more than one mvhd box")
            mvhd = payload
        elif box_type == b"trak" and _is_video_track(payload):
            has_video = True
    if mvhd is None:
        raise NotAVideo("the moov box has no mvhd box, so no duration")
    if not has_video:
        raise NotAVideo("the file has no video track")
    return _mvhd_duration(mvhd)


def _mvhd_duration(mvhd: memoryview) -> Decimal:
    version = mvhd[0] if mvhd else None
    if version == 0 and len(mvhd) >= 20:
        timescale, duration = struct.unpack_from(">II", mvhd, 12)
        unknown = duration == 0xFFFFFFFF
    elif version == 1 and len(mvhd) >= 32:
        timescale, duration = struct.unpack_from(">IQ", mvhd, 20)
        unknown = duration == 0xFFFFFFFFFFFFFFFF
    else:
        raise NotAVideo("the mvhd box is malformed")
    if timescale == 0:
        raise NotAVideo("the mvhd timescale is zero")
    if unknown:
        raise NotAVideo("the mvhd duration is unknown")
    if duration == 0:
        raise NotAVideo("the video's duration is zero")
    # Exact whenever the quotient terminates (it does for every common timescale); the
    # local context keeps a caller's decimal settings from changing what we bill.
    with localcontext(prec=28):
        return Decimal(duration) / Decimal(timescale)


def _is_video_track(trak: memoryview) -> bool:
    for box_type, mdia in _children(trak, "trak"):
        if box_type == b"mdia":
            for child_type, hdlr in _children(mdia, "mdia"):
                # version/flags (4), pre_defined or QuickTime component type (4), handler (4)
                if child_type == b"hdlr" and len(hdlr) >= 12 and bytes(hdlr[8:12]) == b"vide":
                    return True
    return False


def _children(parent: memoryview, parent_name: str) -> Iterator[tuple[bytes, memoryview]]:
    offset = 0
    end = len(parent)
    while offset < end:
        if end - offset < _HEADER:
            raise NotAVideo(f"a box inside {parent_name} is cut short")
        size, box_type = struct.unpack_from(">I4s", parent, offset)
        header = _HEADER
        if size == 1:
            if end - offset < _LARGE_HEADER:
                raise NotAVideo(f"a box inside {parent_name} is cut short")
            (size,) = struct.unpack_from(">Q", parent, offset + _HEADER)
            header = _LARGE_HEADER
        elif size == 0:
            size = end - offset
        if size < header or offset + size > end:
            raise NotAVideo(
                f"the {_name(box_type)} box inside {parent_name} has an impossible size ({size})"
            )
        yield box_type, parent[offset + header : offset + size]
        offset += size


def _name(box_type: bytes) -> str:
    return repr(box_type.decode("latin-1"))
