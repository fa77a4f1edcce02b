from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from blob import LocalBlobStore
from ledger import Ledger
from tests.workflows.harness import JobHarness, make_caller

STARTING_BALANCE = Decimal("10.000000")


@pytest.fixture
async def jobs(
    time_skipping_env: WorkflowEnvironment, sqlite_ledger: Ledger, tmp_path: Path
) -> AsyncIterator[JobHarness]:
    """A job runner on the time-skipping server, with an account holding $10."""
    yield JobHarness(
        env=time_skipping_env,
        ledger=sqlite_ledger,
        blobs=LocalBlobStore(tmp_path / "blobs", "http://files.test/files"),
        caller=await make_caller(sqlite_ledger, STARTING_BALANCE),
    )
