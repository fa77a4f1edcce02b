"""The database itself refuses what would corrupt the books, whoever writes to it."""

from decimal import Decimal

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError, StatementError

from kyma_video.errors import ErrorCode, JobStatus
from kyma_video.jobs import JobError
from ledger import Ledger
from ledger._ledger import ACCOUNTS, ENTRIES, JOBS
from ledger._types import utcnow
from tests.ledger.factories import funded_account, new_job, video


async def _settlement_entry(ledger: Ledger, account_id: str, job_id: str, kind: str) -> None:
    async with ledger.engine.begin() as connection:
        await connection.execute(
            insert(ENTRIES).values(
                account_id=account_id,
                job_id=job_id,
                settles_job_id=job_id,
                kind=kind,
                amount=Decimal("0.4725"),
                balance_delta=Decimal("0.4725"),
                balance_after=Decimal("10"),
                created_at=utcnow(),
            )
        )


async def test_a_job_cannot_be_settled_twice_even_behind_the_ledgers_back(
    ledger: Ledger,
) -> None:
    account = await funded_account(ledger)
    job = (await ledger.place_hold(new_job(account))).job
    await ledger.capture_usage(job.id, video(), output_key="videos/a.mp4")

    with pytest.raises(IntegrityError):
        await _settlement_entry(ledger, account, job.id, "hold_release")


async def test_a_job_cannot_be_released_twice_even_behind_the_ledgers_back(
    ledger: Ledger,
) -> None:
    account = await funded_account(ledger)
    job = (await ledger.place_hold(new_job(account))).job
    await ledger.release_hold(
        job.id, JobStatus.FAILED, JobError(code=ErrorCode.UPSTREAM_FAILED, message="no")
    )

    with pytest.raises(IntegrityError):
        await _settlement_entry(ledger, account, job.id, "hold_release")


async def test_only_settlements_name_the_job_they_settle(ledger: Ledger) -> None:
    account = await funded_account(ledger)
    job = (await ledger.place_hold(new_job(account))).job

    with pytest.raises(IntegrityError):
        await _settlement_entry(ledger, account, job.id, "top_up")


async def test_a_balance_cannot_go_negative(ledger: Ledger) -> None:
    account = await funded_account(ledger, "1")

    with pytest.raises(IntegrityError):
        async with ledger.engine.begin() as connection:
            await connection.execute(
                update(ACCOUNTS)
                .where(ACCOUNTS.c.id == account)
                .values(balance=ACCOUNTS.c.balance - Decimal("1.000001"))
            )

    assert await ledger.balance(account) == Decimal("1")


async def test_a_charge_cannot_exceed_its_hold(ledger: Ledger) -> None:
    account = await funded_account(ledger)
    job = (await ledger.place_hold(new_job(account))).job

    with pytest.raises(IntegrityError):
        async with ledger.engine.begin() as connection:
            await connection.execute(
                update(JOBS)
                .where(JOBS.c.id == job.id)
                .values(charged_amount=job.estimated_cost + Decimal("0.000001"))
            )


async def test_money_columns_refuse_floats_and_sub_micro_dollar_amounts(ledger: Ledger) -> None:
    account = await funded_account(ledger, "1")

    for amount in (0.5, Decimal("0.0000005")):
        with pytest.raises(StatementError, match=r"float|decimal places"):
            async with ledger.engine.begin() as connection:
                await connection.execute(
                    update(ACCOUNTS).where(ACCOUNTS.c.id == account).values(balance=amount)
                )

    assert await ledger.balance(account) == Decimal("1")
