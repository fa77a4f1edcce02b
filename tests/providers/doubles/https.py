"""Serving a double over real HTTPS: a test CA (trustme), a certificate for localhost, and
uvicorn on a free loopback port. Clients trust the CA through ``SSL_CERT_FILE``, exactly as a
deployment pointed at a proxy or a double would."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache, lru_cache
from pathlib import Path
from tempfile import mkdtemp

import trustme
import uvicorn
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tests.support import free_port

HOSTNAMES = ("localhost", "127.0.0.1")


@lru_cache(maxsize=1)
def test_ca() -> trustme.CA:
    return trustme.CA()


@lru_cache(maxsize=1)
def ca_bundle() -> Path:
    """A PEM file with the test CA: point ``SSL_CERT_FILE`` (and ``REQUESTS_CA_BUNDLE``) here."""
    path = Path(mkdtemp(prefix="kyma-test-ca-")) / "ca.pem"
    test_ca().cert_pem.write_to_path(str(path))
    return path


@cache
def _server_files(hostnames: tuple[str, ...] = HOSTNAMES) -> tuple[Path, Path]:
    cert = test_ca().issue_cert(*hostnames)
    folder = Path(mkdtemp(prefix="kyma-test-cert-"))
    chain, key = folder / "cert.pem", folder / "key.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    return chain, key


class DroppedResponse(Response):
    """A connection reset mid-body: promises 1000 bytes of JSON, sends ``start`` and stops, so
    the server closes the connection. Every double uses it for its "dropped" fault."""

    def __init__(self, start: bytes) -> None:
        super().__init__(b"")
        self._start = start

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": self._start, "more_body": True})


@asynccontextmanager
async def serve_https(
    app: ASGIApp, *, host: str = "127.0.0.1", hostnames: tuple[str, ...] = HOSTNAMES
) -> AsyncIterator[str]:
    """Serve ``app`` over TLS on ``host``, with a certificate for ``hostnames``; yields its base
    URL ``https://<first hostname>:<port>`` (by default ``https://localhost:<port>``)."""
    chain, key = _server_files(hostnames)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            ssl_certfile=str(chain),
            ssl_keyfile=str(key),
            log_level="warning",
            lifespan="off",
        )
    )
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
    try:
        yield f"https://{hostnames[0]}:{port}"
    finally:
        server.should_exit = True
        await task
