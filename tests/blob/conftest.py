"""Real clips for the blob tests, rendered once per session in both moov layouts."""

from pathlib import Path

import pytest

from providers.simulated_media import render_mp4


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[float, bool], Path]:
    """``{(seconds, faststart): path}`` for 1, 5 and 10 s clips."""
    root = tmp_path_factory.mktemp("clips")
    rendered = {}
    for seconds in (1.0, 5.0, 10.0):
        for faststart in (True, False):
            path = root / f"{seconds:g}s-{'faststart' if faststart else 'moov-at-end'}.mp4"
            render_mp4(path, seconds, seed=int(seconds), faststart=faststart)
            rendered[seconds, faststart] = path
    return rendered


@pytest.fixture(scope="session")
def video_bytes(clips: dict[tuple[float, bool], Path]) -> bytes:
    """A real 5 s MP4 (moov at the end, the layout that makes verification hardest)."""
    return clips[5.0, False].read_bytes()
