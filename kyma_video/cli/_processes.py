"""Long-running processes: the API, the worker, and the whole stack for one machine."""

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated

import httpx
import typer
import uvicorn
from temporalio.testing import WorkflowEnvironment

from api import create_app
from kyma_video import search_attributes
from kyma_video.cli._app import app
from kyma_video.cli._remote import DEMO_KEY_FILE, TERMINAL, save_demo_key
from kyma_video.client import DATA_CONVERTER
from kyma_video.settings import BlobBackend, Settings, get_settings
from kyma_video.temporal_binaries import dev_server_path


@app.command("api")
def api_command() -> None:
    """Run the HTTP API (KYMA_API_HOST:KYMA_API_PORT)."""
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        proxy_headers=True,
        log_level="info",
    )


@app.command("worker")
def worker_command() -> None:
    """Run a Temporal worker for every workflow and activity (SIGTERM drains it)."""
    from worker import main

    main()


@app.command("dev")
def dev_command(
    demo_balance: Annotated[
        str, typer.Option(help="Balance of the demo account created on first start (USD).")
    ] = "10",
    demo: Annotated[
        bool,
        typer.Option(help="Once up, generate one video through the API with the demo key."),
    ] = False,
) -> None:
    """Everything on this machine: Temporal dev server (with UI), worker, API, SQLite ledger,
    local blob storage and the simulated provider. Ctrl-C stops it all."""
    settings = get_settings()
    settings = settings.model_copy(
        update={
            "blob_backend": BlobBackend.LOCAL,
            "blob_public_base_url": f"http://{settings.api_host}:{settings.api_port}/files",
            # Models whose provider has credentials go to it; the simulated one serves the rest.
            "simulated_provider": True,
            "api_url": f"http://{settings.api_host}:{settings.api_port}",
        }
    )
    asyncio.run(run_dev(settings, Decimal(demo_balance), demo=demo))


class _EmbeddedServer(uvicorn.Server):
    """uvicorn, minus its own signal handling: Ctrl-C must stop the whole stack in order (API,
    then the worker draining its activities, then Temporal), not just the API."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    def stop(self) -> None:
        self.should_exit = True


async def run_dev(settings: Settings, demo_balance: Decimal, *, demo: bool = False) -> None:
    from worker import build_deps, build_worker

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    host, _, port = settings.temporal_address.rpartition(":")
    env = await WorkflowEnvironment.start_local(
        namespace=settings.temporal_namespace,
        ip=host or "127.0.0.1",
        port=int(port),
        ui=True,
        ui_port=settings.temporal_ui_port,
        dev_server_existing_path=dev_server_path(),
        dev_server_database_filename=str(settings.data_dir / "temporal.db"),
        dev_server_log_level="error",
        data_converter=DATA_CONVERTER,
        search_attributes=search_attributes.ALL,
    )
    async with env:
        deps = await build_deps(settings)
        try:
            if not await deps.ledger.list_api_keys():
                account = await deps.ledger.create_account("demo", balance=demo_balance)
                _, key = await deps.ledger.create_api_key(account.id)
                saved = save_demo_key(settings.data_dir, key)
                print(f"Demo account {account.id} with ${demo_balance}; its API key:\n  {key}")
                print(f"  (saved to {saved}; `kyma-video submit` uses it)")
            server = _EmbeddedServer(
                uvicorn.Config(
                    create_app(settings),
                    host=settings.api_host,
                    port=settings.api_port,
                    log_level="warning",
                )
            )
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, server.stop)
            async with build_worker(env.client, settings, deps):
                serving = asyncio.create_task(server.serve())
                if await until_serving(server, serving):
                    print(f"API:          {settings.api_url}  (docs: {settings.api_url}/docs)")
                    print(f"Temporal UI:  http://127.0.0.1:{settings.temporal_ui_port}")
                    print("Ctrl-C stops everything.", flush=True)
                    if demo:
                        await demo_job(settings)
                await serving
        finally:
            await deps.providers.aclose()
            await deps.ledger.close()
    print("stopped", flush=True)


async def until_serving(server: uvicorn.Server, serving: asyncio.Task[None]) -> bool:
    """Wait (up to 30 s) until the API accepts connections; False if it stopped instead."""
    for _ in range(600):
        if server.started or serving.done():
            break
        await asyncio.sleep(0.05)
    return server.started and not serving.done()


async def demo_job(settings: Settings) -> None:
    """Generate one video through the API, printing each status as it changes."""
    key_file = settings.data_dir / DEMO_KEY_FILE
    if not key_file.is_file():
        print("demo skipped: no saved demo key", flush=True)
        return
    auth = {"Authorization": f"Bearer {key_file.read_text().strip()}"}
    body = {"model": "kling-3-pro", "prompt": "an hourglass on a wooden desk, golden hour"}
    async with httpx.AsyncClient(base_url=settings.api_url, headers=auth, timeout=30) as http:
        response = await http.post("/v1/videos/generations", json=body)
        job = response.json()
        if response.status_code >= 400:
            print(f"demo job refused: {job['error']}", flush=True)
            return
        print(f"demo job {job['job_id']}: {job['status']} (held ${job['estimated_cost']})")
        status = job["status"]
        while status not in TERMINAL:
            await asyncio.sleep(0.5)
            job = (await http.get(f"/v1/jobs/{job['job_id']}")).json()
            if job["status"] != status:
                status = job["status"]
                print(f"demo job {job['job_id']}: {status}", flush=True)
    if job.get("output"):
        print(
            f"video: {job['output']['url']} ({job['output']['size_bytes']} bytes, "
            f"charged ${job['charged_amount']})",
            flush=True,
        )
