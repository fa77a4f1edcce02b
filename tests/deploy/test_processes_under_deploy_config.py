"""The container commands, run the way the image runs them: the `kyma-video` console script
configured only by the Kubernetes ConfigMap and Secret (production mode), with the endpoints
swapped for this test's PostgreSQL, moto S3 and Temporal dev server. Each probe path and port
the manifests declare must answer, and each process must stop on SIGTERM within the
termination grace period its Deployment gives it.
"""

import asyncio
import os
import shutil
import signal
import sys
import tomllib
import uuid
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from sqlalchemy.engine import make_url
from temporalio.testing import WorkflowEnvironment

from tests.support import free_port

from .manifests import ROOT, config_map, example_secrets, named

pytestmark = pytest.mark.postgres


def kyma_video() -> str:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "kyma-video" in project.get("scripts", {}), "the image's ENTRYPOINT needs it"
    beside_python = Path(sys.executable).parent / "kyma-video"
    if beside_python.is_file():
        return str(beside_python)
    on_path = shutil.which("kyma-video")
    if on_path is None:
        pytest.fail("the kyma-video console script is not installed: pip install -e '.[test]'")
    return on_path


def container(deployment: str) -> dict:  # type: ignore[type-arg]
    [only] = named("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def grace_period(deployment: str) -> int:
    spec = named("Deployment", deployment)["spec"]["template"]["spec"]
    seconds: int = spec["terminationGracePeriodSeconds"]
    return seconds


def production_environment(overrides: dict[str, str]) -> dict[str, str]:
    """This process's environment without any KYMA_* of its own, plus the ConfigMap, the
    Secret's keys and the test's endpoints."""
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("KYMA_")}
    secret = example_secrets()["kyma-video-secrets"]
    return {**inherited, **config_map(), **secret, **overrides}


async def run_to_completion(args: list[str], env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    async with asyncio.timeout(120):
        output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def wait_until_answering(process: asyncio.subprocess.Process, url: str) -> httpx.Response:
    async with asyncio.timeout(60), httpx.AsyncClient(timeout=5) as client:
        while True:
            assert process.returncode is None, "the process exited before answering"
            try:
                return await client.get(url)
            except httpx.TransportError:
                await asyncio.sleep(0.25)


async def stop_within(process: asyncio.subprocess.Process, seconds: int) -> tuple[int, str]:
    """SIGTERM, as the kubelet sends it; the process must be gone before SIGKILL would come."""
    process.send_signal(signal.SIGTERM)
    try:
        async with asyncio.timeout(seconds):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail(f"still running {seconds}s after SIGTERM: Kubernetes would SIGKILL it")
    return process.returncode or 0, output.decode()


async def alembic_revision(url: str) -> str | None:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )
    try:
        exists = await connection.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL")
        if not exists:
            return None
        revision: str | None = await connection.fetchval("SELECT version_num FROM alembic_version")
        return revision
    finally:
        await connection.close()


@pytest.mark.parametrize("empty_database_url", ["postgres"], indirect=True)
async def test_the_migration_job_brings_an_empty_database_to_head_and_can_rerun(
    empty_database_url: str,
):
    job = named("Job", "kyma-video-migrate")
    [main] = job["spec"]["template"]["spec"]["containers"]
    # The job gets the ConfigMap and, from the Secret, only the database URL.
    env = {
        key: value
        for key, value in production_environment({"KYMA_DATABASE_URL": empty_database_url}).items()
        if not key.startswith("AWS_")
    }
    assert await alembic_revision(empty_database_url) is None
    for _ in range(2):
        code, output = await run_to_completion([kyma_video(), *main["args"]], env)
        assert code == 0, output
    assert await alembic_revision(empty_database_url)


async def test_the_api_answers_its_probes_and_stops_on_sigterm(
    postgres_database_url: str, moto_server: str, s3_bucket: str, dev_env: WorkflowEnvironment
):
    api = container("kyma-video-api")
    port = free_port()
    env = production_environment(
        {
            "KYMA_DATABASE_URL": postgres_database_url,
            "KYMA_S3_ENDPOINT_URL": moto_server,
            "KYMA_S3_BUCKET": s3_bucket,
            "KYMA_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "KYMA_API_HOST": "127.0.0.1",
            "KYMA_API_PORT": str(port),
            # moto's fake credentials, in place of the Secret's placeholders.
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        }
    )
    process = await asyncio.create_subprocess_exec(
        kyma_video(),
        *api["args"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = api[probe]["httpGet"]["path"]
            response = await wait_until_answering(process, f"http://127.0.0.1:{port}{path}")
            assert response.status_code == 200, (probe, response.text)
    finally:
        code, output = await stop_within(process, grace_period("kyma-video-api"))
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert code in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output


async def test_the_worker_answers_its_probe_and_stops_on_sigterm(
    postgres_database_url: str, moto_server: str, s3_bucket: str, dev_env: WorkflowEnvironment
):
    worker = container("kyma-video-worker")
    port = free_port()
    env = production_environment(
        {
            "KYMA_DATABASE_URL": postgres_database_url,
            "KYMA_S3_ENDPOINT_URL": moto_server,
            "KYMA_S3_BUCKET": s3_bucket,
            "KYMA_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "KYMA_TASK_QUEUE": f"deploy-{uuid.uuid4().hex}",
            "KYMA_WORKER_METRICS_ADDRESS": f"127.0.0.1:{port}",
            "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
            "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        }
    )
    process = await asyncio.create_subprocess_exec(
        kyma_video(),
        *worker["args"],
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        for probe in ("startupProbe", "livenessProbe"):
            path = worker[probe]["httpGet"]["path"]
            response = await wait_until_answering(process, f"http://127.0.0.1:{port}{path}")
            assert response.status_code == 200, (probe, response.text)
    finally:
        code, output = await stop_within(process, grace_period("kyma-video-worker"))
    assert code == 0, output
