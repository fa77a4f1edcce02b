"""Record workflow histories from real runs, for the replay tests.

    python scripts/record_histories.py            # writes tests/workflows/histories/*.json

Runs each scenario (success, provider failure, expiry) end to end on a fresh ``temporal`` dev
server with a SQLite ledger, local blobs and the simulated provider, then saves each run's full
history. Replay tests (``tests/workflows/test_replay.py``) replay every committed history
against the current workflow code on every CI run: a change that would break a running job
fails the build. Record new histories when you add a workflow path; never re-record existing
ones to make a failing replay pass (that hides the break from old runs) — use
``workflow.patched`` instead.
"""

import asyncio
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from blob import LocalBlobStore  # noqa: E402
from kyma_video import search_attributes  # noqa: E402
from kyma_video.temporal_binaries import dev_server_path  # noqa: E402
from ledger import Ledger, migrate  # noqa: E402
from tests.workflows.harness import JobHarness, make_caller, wall_clock  # noqa: E402
from workflows import JobTimings  # noqa: E402

HISTORIES = ROOT / "tests" / "workflows" / "histories"

SCENARIOS: dict[str, dict[str, Any]] = {
    "success": {"simulate_seconds": 2, "idempotency_key": "record-success"},
    "provider_failure": {"simulate_seconds": 1, "simulate_outcome": "fail"},
    "expiry": {"simulate_outcome": "never"},
}


async def main() -> None:
    HISTORIES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/ledger.db"
        await migrate(url)
        ledger = Ledger.from_url(url)
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=dev_server_path(),
            data_converter=pydantic_data_converter,
            search_attributes=search_attributes.ALL,
        )
        async with env:
            harness = JobHarness(
                env=env,
                ledger=ledger,
                blobs=LocalBlobStore(Path(tmp) / "blobs", "http://127.0.0.1:8000/files"),
                caller=await make_caller(ledger, Decimal("100")),
                clock=wall_clock,
                # A short deadline so the expiry scenario records in seconds.
                timings=JobTimings(deadline_seconds=10, poll_interval_seconds=1),
            )
            async with harness.worker():
                for name, fields in SCENARIOS.items():
                    handle, _ = await harness.start_and_admit(harness.request(**fields))
                    outcome = await handle.result()
                    history = await handle.fetch_history()
                    (HISTORIES / f"{name}.json").write_text(history.to_json())
                    print(f"{name}: {outcome.job.status.value}, {len(history.events)} events")
        await ledger.close()


if __name__ == "__main__":
    asyncio.run(main())
