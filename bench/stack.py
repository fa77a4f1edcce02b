"""The real parts a benchmark runs against, started for one run and torn down after it.

Benchmarks measure the system as deployed: a Temporal dev server, a PostgreSQL database of its
own (created on the local server and dropped afterwards), moto's S3 server in a separate
process (its memory and CPU are not ours), and our API and worker as separate OS processes
started with ``KYMA_*`` settings, exactly as operators run them. The load generator is the
benchmark process itself.
"""

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from kyma_video import search_attributes
from kyma_video.temporal_binaries import dev_server_path
from ledger import migrate

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SERVER = os.environ.get(
    "KYMA_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "benchmark",
    "AWS_SECRET_ACCESS_KEY": "benchmark",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(
    port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on port {port}") from None
            time.sleep(0.05)


@contextlib.asynccontextmanager
async def temporal_dev_server(*extra_args: str) -> AsyncIterator[WorkflowEnvironment]:
    """``temporal server start-dev`` (in memory unless ``--db-filename`` is passed), with our
    search attributes registered, and a client using our data converter."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_path(),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        dev_server_log_level="error",
        dev_server_extra_args=list(extra_args),
    )
    async with env:
        yield env


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database on the local server; dropped afterwards."""
    server = make_url(POSTGRES_SERVER)
    name = f"bench_{uuid.uuid4().hex[:12]}"

    async def admin() -> asyncpg.Connection:
        return await asyncpg.connect(
            host=server.host,
            port=server.port,
            user=server.username,
            password=server.password,
            database=server.database,
            timeout=5,
        )

    connection = await admin()
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        await migrate(url)
        yield url
    finally:
        connection = await admin()
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@contextlib.contextmanager
def moto_s3() -> Iterator[str]:
    """moto's S3 server in its own process; fake credentials are set in this process's env
    (and so inherited by the processes started after it)."""
    os.environ.update(FAKE_AWS_ENV)
    os.environ.pop("AWS_PROFILE", None)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, server, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def kyma_process(
    role: str, settings_env: Mapping[str, str], *, wait_port: int | None = None, ready: bytes = b""
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``kyma-video <role>`` (``api`` or ``worker``) as its own process, configured only by
    ``KYMA_*`` variables; stopped with SIGTERM (the worker drains) and reaped afterwards.

    Readiness: ``wait_port`` (the API's port answers) or a line of stderr containing ``ready``
    (the worker logs ``worker polling``).
    """
    command = [str(Path(sys.executable).parent / "kyma-video"), role]
    return _process(command, settings_env, wait_port=wait_port, ready=ready)


def module_process(
    module: str,
    settings_env: Mapping[str, str],
    *,
    wait_port: int | None = None,
    ready: bytes = b"",
) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """``python -m <module>`` as its own process (e.g. a floor's worker), started, awaited and
    stopped exactly like :func:`kyma_process`, so a floor and the product get the same
    treatment."""
    return _process([sys.executable, "-m", module], settings_env, wait_port=wait_port, ready=ready)


@contextlib.contextmanager
def _process(
    command: list[str], settings_env: Mapping[str, str], *, wait_port: int | None, ready: bytes
) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        command,
        env={**os.environ, **settings_env},
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if ready else subprocess.DEVNULL,
    )
    try:
        if wait_port is not None:
            wait_for_port(wait_port, process)
        if ready:
            assert process.stderr is not None
            while ready not in (line := process.stderr.readline()):
                if not line and process.poll() is not None:
                    raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
            # Keep draining stderr so a chatty process never blocks on a full pipe.
            threading.Thread(target=process.stderr.read, daemon=True).start()
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def compiled_bytecode() -> Iterator[None]:
    """Processes started inside may write and read compiled bytecode (``__pycache__``, which
    git ignores), as an installed package has it (pip compiles on install).

    Without it (``PYTHONDONTWRITEBYTECODE`` set, as on some development machines) every import
    of a project module compiles its source, and Temporal's workflow sandbox imports the
    workflow module afresh for every workflow run: the product worker then pays a compile of
    ``workflows/video_job.py`` per job, which no deployment pays.
    """
    previous = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        yield
    finally:
        if previous is not None:
            os.environ["PYTHONDONTWRITEBYTECODE"] = previous


def run_until_signalled(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """The main of a benchmark's own worker process: log like ``worker.py`` and run ``serve``
    until SIGTERM or SIGINT sets its stop event (how :func:`module_process` stops it)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def _run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    asyncio.run(_run())
