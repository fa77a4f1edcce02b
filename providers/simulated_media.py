"""Real H.264 clips for the simulated provider.

The simulated provider has to hand the rehost path exactly what a real provider hands it: a
playable MP4 whose container duration is what was asked for. A placeholder file would let the
probe, the billing-by-delivered-duration rule and the players in the demo all pass on bytes no
real provider would ever send, so we encode a real (tiny, fast) clip instead.

Frames are generated one at a time and handed straight to the encoder, so memory does not grow
with the clip's length. The picture moves (a sliding bar over a drifting background colour)
so a viewer, or a test comparing decoded frames, can tell a clip from a still image.
"""

import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path

import av

#: Bright luma for the moving bar; 235 is the top of the video (limited) range.
_BAR_LUMA = 235


def render_mp4(
    path: Path,
    duration_seconds: float,
    *,
    width: int = 320,
    height: int = 240,
    fps: int = 24,
    seed: int = 0,
    faststart: bool = True,
) -> None:
    """Encode a clip of ``duration_seconds`` (rounded to whole frames) to ``path``.

    ``seed`` changes the colours and the bar's phase so different jobs get different bytes
    (and different sha256s). ``faststart`` puts the ``moov`` box before ``mdat`` as web
    players prefer; ``False`` leaves it at the end, the encoder's natural layout. The file
    appears at ``path`` only once complete, so a reader never sees a half-written clip.
    Synchronous and CPU-bound: call it from a worker thread.
    """
    if not (math.isfinite(duration_seconds) and duration_seconds > 0):
        raise ValueError(f"duration_seconds must be a positive number, got {duration_seconds!r}")
    if width < 16 or height < 16 or width % 2 or height % 2:
        raise ValueError(f"yuv420p needs even dimensions of at least 16, got {width}x{height}")
    if fps < 1:
        raise ValueError(f"fps must be at least 1, got {fps}")

    frame_count = max(1, round(duration_seconds * fps))
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        _encode(Path(tmp_name), frame_count, width, height, fps, seed, faststart)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _encode(
    path: Path, frame_count: int, width: int, height: int, fps: int, seed: int, faststart: bool
) -> None:
    container_options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", format="mp4", container_options=container_options) as output:
        stream = output.add_stream("libx264", rate=fps)
        frame_rate = Fraction(1, fps)
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        # ultrafast keeps a 10 s clip well under a second; no B-frames means no edit list,
        # so the container duration is exactly frame_count / fps.
        stream.options = {"preset": "ultrafast", "g": str(2 * fps), "bf": "0"}
        for index in range(frame_count):
            frame = _frame(index, width, height, seed)
            frame.pts = index
            frame.time_base = frame_rate
            for packet in stream.encode(frame):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)


def _frame(index: int, width: int, height: int, seed: int) -> av.VideoFrame:
    frame = av.VideoFrame(width, height, "yuv420p")
    luma, chroma_u, chroma_v = frame.planes

    background = 40 + (seed * 37 + index) % 100
    bar_width = max(2, width // 10)
    bar_x = (seed * 13 + index * max(1, width // 48)) % (width - bar_width)
    row = (
        bytes([background]) * bar_x
        + bytes([_BAR_LUMA]) * bar_width
        + bytes([background]) * (luma.line_size - bar_x - bar_width)
    )
    luma.update(row * luma.height)

    # Hue drifts slowly around the colour wheel; the seed picks the starting angle.
    angle = (seed * 0.7 + index / 48) % (2 * math.pi)
    u = 128 + round(80 * math.cos(angle))
    v = 128 + round(80 * math.sin(angle))
    chroma_u.update(bytes([u]) * (chroma_u.line_size * chroma_u.height))
    chroma_v.update(bytes([v]) * (chroma_v.line_size * chroma_v.height))
    return frame
