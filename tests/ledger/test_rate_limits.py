"""Rate-limit state lives in the ledger database, so every API replica sees the same counts."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from kyma_video.errors import ErrorCode, JobStatus, RateLimited
from kyma_video.jobs import JobError
from ledger import Ledger
from tests.ledger.factories import assert_balanced, funded_account, new_job

MINUTE = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


async def test_concurrent_requests_in_one_window_are_each_counted_once(ledger: Ledger) -> None:
    account = await funded_account(ledger, "1")
    counts = await asyncio.gather(*(ledger.count_request(account, MINUTE) for _ in range(20)))
    assert sorted(counts) == list(range(1, 21))


async def test_a_new_window_starts_from_one_and_forgets_the_old(ledger: Ledger) -> None:
    account = await funded_account(ledger, "1")
    other = await funded_account(ledger, "1")
    for _ in range(3):
        await ledger.count_request(account, MINUTE)
    assert await ledger.count_request(other, MINUTE) == 1
    assert await ledger.count_request(account, MINUTE + timedelta(minutes=1)) == 1
    # The old window is gone, so counting in it again starts afresh.
    assert await ledger.count_request(account, MINUTE) == 1


async def test_racing_admissions_never_exceed_the_jobs_in_flight_limit(ledger: Ledger) -> None:
    account = await funded_account(ledger, "100")
    results = await asyncio.gather(
        *(ledger.place_hold(new_job(account), max_jobs_in_flight=3) for _ in range(12)),
        return_exceptions=True,
    )
    admitted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(admitted) == 3
    assert len(refused) == 9
    assert await ledger.jobs_in_flight(account) == 3
    await assert_balanced(ledger, account)


async def test_a_finished_job_frees_its_slot(ledger: Ledger) -> None:
    account = await funded_account(ledger, "100")
    first = await ledger.place_hold(new_job(account), max_jobs_in_flight=1)
    with pytest.raises(RateLimited) as raised:
        await ledger.place_hold(new_job(account), max_jobs_in_flight=1)
    assert raised.value.retry_after_seconds > 0
    await ledger.release_hold(
        first.job.id, JobStatus.FAILED, JobError(code=ErrorCode.UPSTREAM_FAILED, message="x")
    )
    assert (await ledger.place_hold(new_job(account), max_jobs_in_flight=1)).created
    await assert_balanced(ledger, account)
