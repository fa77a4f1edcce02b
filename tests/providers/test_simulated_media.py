"""render_mp4 produces real, playable, moving H.264 clips of the asked-for duration, fast."""

import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from providers.simulated_media import render_mp4


def luma_planes(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(frame.planes[0]) for frame in container.decode(video=0)]


@pytest.mark.parametrize("seconds", [1.0, 5.0, 10.0])
def test_a_playable_h264_clip_of_the_asked_duration(tmp_path: Path, seconds: float) -> None:
    path = tmp_path / "clip.mp4"
    render_mp4(path, seconds)

    with av.open(str(path)) as container:
        assert container.format.name.startswith("mov,mp4")
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 240)
        assert stream.codec_context.pix_fmt == "yuv420p"
        duration = Fraction(container.duration, av.time_base)
        decoded = sum(1 for _ in container.decode(video=0))
    assert abs(duration - Fraction(seconds)) <= Fraction(1, 24)
    assert decoded == round(seconds * 24)


def test_odd_durations_round_to_whole_frames(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    render_mp4(path, 2.51, fps=10, width=64, height=48)
    with av.open(str(path)) as container:
        assert abs(Fraction(container.duration, av.time_base) - Fraction(251, 100)) <= Fraction(
            1, 10
        )


def test_frames_change(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    render_mp4(path, 1.0)
    frames = luma_planes(path)
    assert len(set(frames)) == len(frames), "every frame should differ from every other"


def test_seeds_give_different_files(tmp_path: Path) -> None:
    render_mp4(tmp_path / "a.mp4", 1.0, seed=1)
    render_mp4(tmp_path / "b.mp4", 1.0, seed=2)
    render_mp4(tmp_path / "c.mp4", 1.0, seed=1)
    assert (tmp_path / "a.mp4").read_bytes() != (tmp_path / "b.mp4").read_bytes()
    assert luma_planes(tmp_path / "a.mp4") == luma_planes(tmp_path / "c.mp4")


@pytest.mark.parametrize("faststart", [True, False])
def test_moov_layout(tmp_path: Path, faststart: bool) -> None:
    path = tmp_path / "clip.mp4"
    render_mp4(path, 1.0, faststart=faststart)
    data = path.read_bytes()
    assert data[4:8] == b"ftyp"
    assert (data.index(b"moov") < data.index(b"mdat")) is faststart


def test_ten_seconds_render_well_under_two_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    render_mp4(tmp_path / "clip.mp4", 10.0)
    assert time.perf_counter() - started < 2.0


def test_only_the_finished_file_is_left(tmp_path: Path) -> None:
    render_mp4(tmp_path / "clip.mp4", 1.0)
    render_mp4(tmp_path / "clip.mp4", 2.0)  # overwrites in place
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    with av.open(str(tmp_path / "clip.mp4")) as container:
        assert container.duration == 2 * av.time_base


@pytest.mark.parametrize(
    "kwargs",
    [
        {"duration_seconds": 0},
        {"duration_seconds": -1},
        {"duration_seconds": float("nan")},
        {"duration_seconds": 1, "width": 321},
        {"duration_seconds": 1, "height": 8},
        {"duration_seconds": 1, "fps": 0},
    ],
)
def test_bad_arguments_are_refused(tmp_path: Path, kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        render_mp4(tmp_path / "clip.mp4", **kwargs)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
