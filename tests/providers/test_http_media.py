"""stream_url against a real HTTP server on 127.0.0.1."""

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from blob import LocalBlobStore, ingest_video
from providers.http_media import MediaFetchError, stream_url
from providers.simulated_media import render_mp4

MIB = 1024 * 1024
BODY = bytes(range(256)) * 4096  # 1 MiB


class _Handler(BaseHTTPRequestHandler):
    video = b""

    def do_GET(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/body":
            self._send(200, BODY)
        elif path == "/video.mp4":
            self._send(200, self.video, content_type="video/mp4")
        elif path.startswith("/status/"):
            self._send(int(path.rpartition("/")[2]), b"nope")
        elif path == "/announced-too-big":
            self.send_response(200)
            self.send_header("Content-Length", str(100 * MIB))
            self.end_headers()
            self._write_quietly(bytes(MIB))
        elif path == "/unannounced":
            # HTTP/1.0 style: no Content-Length, the body ends when the connection closes.
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            for _ in range(3):
                self._write_quietly(bytes(MIB))
        elif path == "/slow":
            time.sleep(1.0)
            self._send(200, b"late")
        else:
            self._send(404, b"no route")

    def _send(
        self, status: int, body: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write_quietly(body)

    def _write_quietly(self, data: bytes) -> None:
        # The client hangs up on purpose in the over-limit tests.
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    clip = tmp_path_factory.mktemp("served") / "clip.mp4"
    render_mp4(clip, 2.0, seed=42)
    _Handler.video = clip.read_bytes()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as http:
        yield http


async def collect(chunks: AsyncIterator[bytes]) -> list[bytes]:
    return [chunk async for chunk in chunks]


async def test_streams_the_body_in_chunks(server: str, client: httpx.AsyncClient) -> None:
    chunks = await collect(
        stream_url(f"{server}/body", client=client, max_bytes=MIB, chunk_size=64 * 1024)
    )
    assert b"".join(chunks) == BODY
    assert len(chunks) == 16
    assert all(len(chunk) <= 64 * 1024 for chunk in chunks)


async def test_exactly_max_bytes_is_allowed(server: str, client: httpx.AsyncClient) -> None:
    chunks = await collect(stream_url(f"{server}/body", client=client, max_bytes=len(BODY)))
    assert sum(map(len, chunks)) == len(BODY)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(404, False), (403, False), (410, False), (503, True), (500, True), (429, True), (408, True)],
)
async def test_http_errors_are_classified(
    server: str, client: httpx.AsyncClient, status: int, retryable: bool
) -> None:
    with pytest.raises(MediaFetchError) as raised:
        await collect(
            stream_url(f"{server}/status/{status}?sig=s3cr3t", client=client, max_bytes=MIB)
        )
    assert raised.value.retryable is retryable
    assert raised.value.status_code == status
    assert str(status) in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


async def test_an_announced_oversize_body_is_refused_before_reading(
    server: str, client: httpx.AsyncClient
) -> None:
    chunks: list[bytes] = []
    with pytest.raises(MediaFetchError, match="announced") as raised:
        async for chunk in stream_url(f"{server}/announced-too-big", client=client, max_bytes=MIB):
            chunks.append(chunk)
    assert raised.value.retryable is False
    assert chunks == []


async def test_an_unannounced_oversize_body_is_cut_off_at_the_limit(
    server: str, client: httpx.AsyncClient
) -> None:
    received = 0
    with pytest.raises(MediaFetchError, match="more than") as raised:
        async for chunk in stream_url(
            f"{server}/unannounced", client=client, max_bytes=MIB + 1, chunk_size=64 * 1024
        ):
            received += len(chunk)
    assert raised.value.retryable is False
    assert received <= MIB + 1


async def test_timeouts_are_retryable(server: str) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(0.2)) as impatient:
        with pytest.raises(MediaFetchError, match="Timeout") as raised:
            await collect(stream_url(f"{server}/slow", client=impatient, max_bytes=MIB))
    assert raised.value.retryable is True
    assert raised.value.status_code is None
    assert isinstance(raised.value.__cause__, httpx.TimeoutException)


async def test_refused_connections_are_retryable(client: httpx.AsyncClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(MediaFetchError) as raised:
        await collect(stream_url(f"http://127.0.0.1:{port}/x", client=client, max_bytes=MIB))
    assert raised.value.retryable is True


async def test_unsupported_schemes_are_not_retryable(client: httpx.AsyncClient) -> None:
    with pytest.raises(MediaFetchError) as raised:
        await collect(stream_url("ftp://127.0.0.1/video.mp4", client=client, max_bytes=MIB))
    assert raised.value.retryable is False


async def test_fetch_and_ingest_end_to_end(
    server: str, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    store = LocalBlobStore(tmp_path, "http://files.test")
    stored = await ingest_video(
        store,
        "jobs/e2e.mp4",
        stream_url(f"{server}/video.mp4", client=client, max_bytes=MIB),
        max_bytes=MIB,
    )
    assert stored.duration_seconds == 2
    assert stored.size_bytes == len(_Handler.video)
    assert await store.read("jobs/e2e.mp4") == _Handler.video
