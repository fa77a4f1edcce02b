"""Commands that use the HTTP API as any client would: submit a job, read a job."""

import json
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from kyma_video.cli._app import app, jobs
from kyma_video.settings import Settings, get_settings

TERMINAL = {"succeeded", "failed", "refunded", "expired"}
DEMO_KEY_FILE = "demo-api-key"


def api_key(settings: Settings) -> str:
    if settings.api_key is not None:
        return settings.api_key.get_secret_value()
    saved = settings.data_dir / DEMO_KEY_FILE
    if saved.is_file():
        return saved.read_text().strip()
    raise typer.BadParameter(
        "no API key: set KYMA_API_KEY (or run `kyma-video dev`, which saves a demo key)"
    )


def client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        base_url=settings.api_url,
        headers={"Authorization": f"Bearer {api_key(settings)}"},
        timeout=httpx.Timeout(30.0),
    )


def answer(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    if response.status_code >= 400:
        error = body.get("error", {})
        typer.echo(f"error {response.status_code} {error.get('code')}: {error.get('message')}")
        raise typer.Exit(2)
    return body


def show(job: dict[str, Any]) -> None:
    typer.echo(json.dumps(job, indent=2))


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pass-through params; values are JSON when they parse as JSON."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value")
        try:
            params[key] = json.loads(raw)
        except json.JSONDecodeError:
            params[key] = raw
    return params


@app.command("submit")
def submit(
    model: Annotated[str, typer.Option(help="Model id (see GET /v1/models).")],
    prompt: Annotated[str, typer.Option(help="What the video shows.")],
    duration: Annotated[int, typer.Option(help="Seconds, 1-10.")] = 5,
    image_url: Annotated[str | None, typer.Option(help="HTTPS first frame.")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Makes retries safe.")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="Provider param key=value (repeatable).")
    ] = None,
    wait: Annotated[bool, typer.Option(help="Follow the job until it ends.")] = False,
) -> None:
    """Submit a generation through the API and print the job."""
    settings = get_settings()
    body: dict[str, Any] = {"model": model, "prompt": prompt, "duration": duration}
    body.update(parse_params(param or []))
    if image_url:
        body["image_url"] = image_url
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    with client(settings) as http:
        job = answer(http.post("/v1/videos/generations", json=body))
        if not wait:
            show(job)
            return
        job = follow(http, job)
    show(job)
    if job["status"] != "succeeded":
        raise typer.Exit(1)


def follow(http: httpx.Client, job: dict[str, Any]) -> dict[str, Any]:
    """Poll the job, showing its status and elapsed time on one live line."""
    started = time.monotonic()
    from rich.console import Console

    console = Console(stderr=True)
    with console.status("") as status:
        while job["status"] not in TERMINAL:
            status.update(
                f"{job['job_id']}  {job['status']}  {time.monotonic() - started:5.1f}s  "
                f"(held ${job['estimated_cost']})"
            )
            time.sleep(1.0)
            job = answer(http.get(f"/v1/jobs/{job['job_id']}"))
    console.print(f"{job['job_id']}  {job['status']}  {time.monotonic() - started:.1f}s")
    return job


@jobs.command("get")
def get_job(job_id: str) -> None:
    """Print a job (from the API's database)."""
    with client(get_settings()) as http:
        show(answer(http.get(f"/v1/jobs/{job_id}")))


def save_demo_key(data_dir: Path, key: str) -> Path:
    """Keep the dev stack's demo key where `submit` finds it (owner-only permissions)."""
    path = data_dir / DEMO_KEY_FILE
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(key + "\n")
    return path
