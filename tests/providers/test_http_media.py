"""stream_url against a real HTTP server on 127.0.0.1.

Most tests use a client whose policy admits loopback over plain HTTP (as local test doubles
are served); the redirect tests map ``media.example.test`` to 127.0.0.1 and admit exactly that
address, so every other hop is judged as it would be in production.
"""

import ipaddress
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from blob import LocalBlobStore, ingest_video
from kyma_video.settings import Settings
from providers.http_media import MAX_REDIRECTS, MediaFetchError, media_client, stream_url
from providers.simulated_media import render_mp4
from providers.url_safety import (
    IPAddress,
    UnsafeUrl,
    UrlPolicy,
    safe_async_client,
    system_resolver,
)

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
        elif path == "/trickle":
            # Never idle long enough for a read timeout, never done in time either.
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                if not self._write_quietly(b"x"):
                    break
                time.sleep(0.05)
        elif path.startswith("/redirect/"):
            left = int(path.rpartition("/")[2])
            if left == 0:
                self._send(200, b"arrived")
            else:
                self._redirect(f"/redirect/{left - 1}")
        elif path == "/to":
            self._redirect(unquote(self.path.partition("?")[2]))
        elif path == "/host":
            self._send(200, self.headers.get("Host", "").encode())
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

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _write_quietly(self, data: bytes) -> bool:
        # The client hangs up on purpose in the over-limit and deadline tests.
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return False
        return True

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


LOCAL = UrlPolicy(allow_private=True, allowed_schemes=frozenset({"http", "https"}))


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with safe_async_client(LOCAL, timeout=httpx.Timeout(5.0)) as http:
        yield http


async def _media_example_test(host: str, port: int) -> list[IPAddress]:
    if host == "media.example.test":
        return [ipaddress.ip_address("127.0.0.1")]
    return await system_resolver(host, port)


@pytest.fixture
async def media_test_client() -> AsyncIterator[httpx.AsyncClient]:
    """A client that reaches ``media.example.test`` (127.0.0.1) and nothing else local."""
    policy = UrlPolicy(
        allowed_schemes=frozenset({"http"}),
        extra_allowed=frozenset({ipaddress.ip_network("127.0.0.1/32")}),
    )
    async with safe_async_client(
        policy, timeout=httpx.Timeout(5.0), resolver=_media_example_test
    ) as http:
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
    async with safe_async_client(LOCAL, timeout=httpx.Timeout(0.2)) as impatient:
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
    with pytest.raises(MediaFetchError, match="scheme") as raised:
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


# --- address policy ------------------------------------------------------------------------------


async def test_a_loopback_server_is_refused_by_default(server: str) -> None:
    async with safe_async_client(
        UrlPolicy(allowed_schemes=frozenset({"http"})), timeout=httpx.Timeout(5.0)
    ) as strict:
        for url in [f"{server}/body?sig=s3cr3t", server.replace("127.0.0.1", "localhost")]:
            with pytest.raises(MediaFetchError, match="loopback") as raised:
                await collect(stream_url(url, client=strict, max_bytes=MIB))
            assert raised.value.retryable is False
            assert isinstance(raised.value.__cause__, UnsafeUrl)
            assert "s3cr3t" not in str(raised.value)


async def test_a_plain_client_gets_the_strict_policy(server: str) -> None:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0)) as plain:
        with pytest.raises(MediaFetchError, match="scheme 'http'") as raised:
            await collect(stream_url(f"{server}/body", client=plain, max_bytes=MIB))
        assert raised.value.retryable is False
        port = server.rpartition(":")[2]
        with pytest.raises(MediaFetchError, match="loopback") as raised:
            await collect(stream_url(f"https://localhost:{port}/", client=plain, max_bytes=MIB))
        assert raised.value.retryable is False


async def test_media_client_follows_the_private_media_switch(server: str) -> None:
    async with media_client(Settings(allow_private_media_urls=True)) as allowed:
        chunks = await collect(stream_url(f"{server}/body", client=allowed, max_bytes=MIB))
    assert b"".join(chunks) == BODY
    port = server.rpartition(":")[2]
    async with media_client(Settings(allow_private_media_urls=False)) as default:
        with pytest.raises(MediaFetchError, match="scheme 'http'"):
            await collect(stream_url(f"{server}/body", client=default, max_bytes=MIB))
        with pytest.raises(MediaFetchError, match="loopback") as raised:
            await collect(
                stream_url(f"https://127.0.0.1:{port}/body", client=default, max_bytes=MIB)
            )
    assert raised.value.retryable is False


# --- redirects -----------------------------------------------------------------------------------


def _port(server: str) -> str:
    return server.rpartition(":")[2]


async def test_redirects_are_followed_with_the_host_header_of_each_hop(
    server: str, media_test_client: httpx.AsyncClient
) -> None:
    origin = f"http://media.example.test:{_port(server)}"
    chunks = await collect(
        stream_url(f"{origin}/to?{origin}/redirect/2", client=media_test_client, max_bytes=MIB)
    )
    assert b"".join(chunks) == b"arrived"
    chunks = await collect(
        stream_url(f"{origin}/to?/host", client=media_test_client, max_bytes=MIB)
    )
    assert b"".join(chunks) == f"media.example.test:{_port(server)}".encode()


async def test_at_most_five_redirects_are_followed(
    server: str, media_test_client: httpx.AsyncClient
) -> None:
    origin = f"http://media.example.test:{_port(server)}"
    chunks = await collect(
        stream_url(
            f"{origin}/redirect/{MAX_REDIRECTS}?sig=s3cr3t", client=media_test_client,
            max_bytes=MIB,
        )
    )  # fmt: skip
    assert b"".join(chunks) == b"arrived"
    with pytest.raises(MediaFetchError, match="redirected more than 5 times") as raised:
        await collect(
            stream_url(
                f"{origin}/redirect/{MAX_REDIRECTS + 1}?sig=s3cr3t", client=media_test_client,
                max_bytes=MIB,
            )
        )  # fmt: skip
    assert raised.value.retryable is False
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://127.0.0.2:{port}/body", "loopback"),
        ("http://10.0.0.1/", "private"),
        ("http://[::1]:{port}/body", "loopback"),
        ("ftp://media.example.test/video.mp4", "scheme"),
        ("https://media.example.test:{port}/body", "scheme"),
        ("http://user:hunter2@media.example.test:{port}/body", "user info"),
    ],
)
async def test_every_redirect_hop_is_checked(
    server: str, media_test_client: httpx.AsyncClient, target: str, reason: str
) -> None:
    origin = f"http://media.example.test:{_port(server)}"
    url = f"{origin}/to?{target.format(port=_port(server))}"
    with pytest.raises(MediaFetchError, match=reason) as raised:
        await collect(stream_url(url, client=media_test_client, max_bytes=MIB))
    assert raised.value.retryable is False
    assert isinstance(raised.value.__cause__, UnsafeUrl)
    assert "hunter2" not in str(raised.value)


# --- the overall deadline ------------------------------------------------------------------------


async def test_a_trickling_download_is_cut_off_at_the_deadline(
    server: str, client: httpx.AsyncClient
) -> None:
    started = time.monotonic()
    received = 0
    with pytest.raises(MediaFetchError, match=r"within 0\.5 seconds") as raised:
        async for chunk in stream_url(
            f"{server}/trickle", client=client, max_bytes=MIB, chunk_size=1, deadline_seconds=0.5
        ):
            received += len(chunk)
    assert time.monotonic() - started < 2.0
    assert 0 < received < 1000
    assert raised.value.retryable is True
    assert isinstance(raised.value.__cause__, TimeoutError)


async def test_the_deadline_covers_waiting_for_the_answer(
    server: str, client: httpx.AsyncClient
) -> None:
    with pytest.raises(MediaFetchError, match=r"within 0\.2 seconds") as raised:
        await collect(
            stream_url(f"{server}/slow", client=client, max_bytes=MIB, deadline_seconds=0.2)
        )
    assert raised.value.retryable is True


async def test_a_download_within_its_deadline_is_unaffected(
    server: str, client: httpx.AsyncClient
) -> None:
    chunks = await collect(
        stream_url(f"{server}/body", client=client, max_bytes=MIB, deadline_seconds=30)
    )
    assert b"".join(chunks) == BODY
