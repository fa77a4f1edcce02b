"""Admission: a hold is placed once per job, atomically, and never spends money twice."""

import asyncio
from decimal import Decimal

import pytest

from kyma_video.errors import ErrorCode, IdempotencyConflict, InsufficientBalance, JobStatus
from kyma_video.jobs import JobError
from ledger import EntryKind, Ledger, LedgerConflict
from tests.ledger.factories import RATE, assert_balanced, funded_account, new_job


async def test_a_hold_debits_the_estimate_and_records_a_pending_job(ledger: Ledger) -> None:
    account = await funded_account(ledger, "10")
    job = new_job(account, duration=5)

    outcome = await ledger.place_hold(job)

    assert outcome.created
    assert outcome.job.id == job.job_id
    assert outcome.job.status is JobStatus.PENDING
    assert outcome.job.estimated_cost == Decimal("0.472500") == RATE * 5
    assert outcome.job.charged_amount is None
    assert outcome.job.params == {"seed": 7}
    assert outcome.job.created_at.utcoffset() is not None
    assert await ledger.balance(account) == Decimal("9.527500")
    [hold] = await ledger.entries_for_job(job.job_id)
    assert hold.kind is EntryKind.HOLD
    assert hold.amount == Decimal("0.4725")
    assert hold.balance_delta == Decimal("-0.4725")
    assert hold.balance_after == Decimal("9.5275")
    assert hold.settles_job_id is None
    await assert_balanced(ledger, account)


async def test_placing_the_same_job_again_returns_it_without_a_second_hold(
    ledger: Ledger,
) -> None:
    account = await funded_account(ledger, "10")
    job = new_job(account)
    first = await ledger.place_hold(job)

    again = await ledger.place_hold(job)

    assert not again.created
    assert again.job == first.job
    assert len(await ledger.entries_for_job(job.job_id)) == 1
    assert await ledger.balance(account) == Decimal("9.5275")


async def test_the_same_job_id_for_a_different_request_is_an_idempotency_conflict(
    ledger: Ledger,
) -> None:
    account = await funded_account(ledger, "10")
    await ledger.place_hold(new_job(account, job_id="job_1", prompt="a cat"))

    with pytest.raises(IdempotencyConflict):
        await ledger.place_hold(new_job(account, job_id="job_1", prompt="a dog"))

    assert len(await ledger.entries_for_job("job_1")) == 1


async def test_another_account_cannot_claim_an_existing_job_id(ledger: Ledger) -> None:
    owner = await funded_account(ledger, "10")
    other = await funded_account(ledger, "10")
    await ledger.place_hold(new_job(owner, job_id="job_1"))

    with pytest.raises(IdempotencyConflict):
        await ledger.place_hold(new_job(other, job_id="job_1"))

    assert await ledger.balance(other) == Decimal("10")


async def test_an_insufficient_balance_writes_nothing(ledger: Ledger) -> None:
    account = await funded_account(ledger, "0.47")  # a 5 s hold needs 0.4725

    with pytest.raises(InsufficientBalance):
        await ledger.place_hold(new_job(account, job_id="job_1"))

    assert await ledger.get_job("job_1") is None
    assert await ledger.balance(account) == Decimal("0.47")
    assert [e.kind for e in await ledger.entries(account)] == [EntryKind.TOP_UP]


async def test_a_hold_may_take_the_balance_to_exactly_zero(ledger: Ledger) -> None:
    account = await funded_account(ledger, "0.4725")

    await ledger.place_hold(new_job(account))

    assert await ledger.balance(account) == 0


async def test_a_hold_on_an_unknown_account_is_a_conflict(ledger: Ledger) -> None:
    with pytest.raises(LedgerConflict):
        await ledger.place_hold(new_job("acct_missing"))


async def test_racing_holds_never_take_the_last_dollar_twice(database_url: str) -> None:
    # Four engines stand in for four worker processes, each with its own connections.
    ledgers = [Ledger.from_url(database_url) for _ in range(4)]
    try:
        account = await funded_account(ledgers[0], str(RATE * 5 * 3))  # exactly three holds
        jobs = [new_job(account, duration=5) for _ in range(20)]

        results = await asyncio.gather(
            *(ledgers[i % 4].place_hold(job) for i, job in enumerate(jobs)),
            return_exceptions=True,
        )

        admitted = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(admitted) == 3
        assert all(outcome.created for outcome in admitted)
        assert len(refused) == 17
        assert all(isinstance(error, InsufficientBalance) for error in refused)
        assert await assert_balanced(ledgers[0], account) == 0
        holds = [e for e in await ledgers[0].entries(account) if e.kind is EntryKind.HOLD]
        assert len(holds) == 3
        assert all(entry.balance_after >= 0 for entry in holds)
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_racing_admissions_of_one_job_hold_once(database_url: str) -> None:
    ledgers = [Ledger.from_url(database_url) for _ in range(4)]
    try:
        account = await funded_account(ledgers[0], "10")
        job = new_job(account)

        outcomes = await asyncio.gather(*(ledgers[i % 4].place_hold(job) for i in range(8)))

        assert sum(outcome.created for outcome in outcomes) == 1
        assert all(outcome.job == outcomes[0].job for outcome in outcomes)
        assert len(await ledgers[0].entries_for_job(job.job_id)) == 1
        assert await assert_balanced(ledgers[0], account) == Decimal("9.5275")
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_processing_records_the_first_upstream_id_and_never_goes_backwards(
    ledger: Ledger,
) -> None:
    account = await funded_account(ledger)
    job = (await ledger.place_hold(new_job(account))).job

    first = await ledger.mark_processing(job.id, "upstream-1")
    retried = await ledger.mark_processing(job.id, "upstream-2")

    assert first.status is JobStatus.PROCESSING
    assert first.upstream_request_id == "upstream-1"
    assert retried.upstream_request_id == "upstream-1"
    assert retried.updated_at == first.updated_at


async def test_processing_never_reopens_a_finished_job(ledger: Ledger) -> None:
    account = await funded_account(ledger)
    job = (await ledger.place_hold(new_job(account))).job
    await ledger.release_hold(
        job.id, JobStatus.EXPIRED, JobError(code=ErrorCode.DEADLINE_EXCEEDED, message="late")
    )

    late = await ledger.mark_processing(job.id, "upstream-1")

    assert late.status is JobStatus.EXPIRED
    assert late.upstream_request_id == "upstream-1"


async def test_processing_an_unknown_job_is_a_conflict(ledger: Ledger) -> None:
    with pytest.raises(LedgerConflict):
        await ledger.mark_processing("job_missing", "upstream-1")


async def test_jobs_are_only_visible_to_their_own_account(ledger: Ledger) -> None:
    owner = await funded_account(ledger)
    other = await funded_account(ledger)
    job = (await ledger.place_hold(new_job(owner))).job

    assert await ledger.get_job_for_account(job.id, owner) == job
    assert await ledger.get_job_for_account(job.id, other) is None
    assert await ledger.get_job_for_account("job_missing", owner) is None


async def test_an_account_lists_its_own_jobs_oldest_first(ledger: Ledger) -> None:
    account = await funded_account(ledger, "10")
    other = await funded_account(ledger, "10")
    first, second = new_job(account), new_job(account)
    await ledger.place_hold(first)
    await ledger.place_hold(new_job(other))
    await ledger.place_hold(second)

    jobs = await ledger.jobs_for_account(account)

    assert [job.id for job in jobs] == [first.job_id, second.job_id]
    assert await ledger.jobs_for_account("acct_nobody") == []
