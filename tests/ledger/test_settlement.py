"""Settlement: a job ends exactly once, either charged for what it delivered or refunded."""

import asyncio
from decimal import Decimal

import pytest

from kyma_video.errors import ErrorCode, JobStatus
from kyma_video.jobs import JobError
from kyma_video.money import charge
from ledger import EntryKind, JobRecord, Ledger, LedgerConflict
from tests.ledger.factories import RATE, assert_balanced, funded_account, new_job, video

UPSTREAM_FAILED = JobError(code=ErrorCode.UPSTREAM_FAILED, message="the provider gave up")


async def _held_job(ledger: Ledger, balance: str = "10", duration: int = 5) -> JobRecord:
    account = await funded_account(ledger, balance)
    return (await ledger.place_hold(new_job(account, duration=duration))).job


async def test_capture_charges_the_delivered_seconds_and_returns_the_rest(
    ledger: Ledger,
) -> None:
    job = await _held_job(ledger)

    done = await ledger.capture_usage(job.id, video("5.000"), output_key="videos/a.mp4")

    assert done.status is JobStatus.SUCCEEDED
    assert done.charged_amount == job.estimated_cost == Decimal("0.4725")
    assert done.finished_at is not None
    assert done.output_key == "videos/a.mp4"
    assert done.output_duration_seconds == Decimal("5.000")
    assert await ledger.balance(job.account_id) == Decimal("9.5275")
    hold, usage = await ledger.entries_for_job(job.id)
    assert (hold.kind, usage.kind) == (EntryKind.HOLD, EntryKind.USAGE)
    assert usage.amount == Decimal("0.4725")
    assert usage.balance_delta == 0
    assert usage.settles_job_id == job.id
    await assert_balanced(ledger, job.account_id)


async def test_a_shorter_video_costs_less_than_the_hold(ledger: Ledger) -> None:
    job = await _held_job(ledger)

    done = await ledger.capture_usage(job.id, video("4.0416667"), output_key="videos/a.mp4")

    # Billed to the millisecond: 4.041 s x $0.0945 = $0.3818745, rounded half-up once.
    assert done.charged_amount == charge(RATE, 5, Decimal("4.0416667")) == Decimal("0.381875")
    assert done.output_duration_seconds == Decimal("4.041")
    usage = (await ledger.entries_for_job(job.id))[-1]
    assert usage.balance_delta == Decimal("0.4725") - Decimal("0.381875")
    assert await ledger.balance(job.account_id) == Decimal("10") - Decimal("0.381875")
    await assert_balanced(ledger, job.account_id)


async def test_a_longer_video_never_costs_more_than_the_hold(ledger: Ledger) -> None:
    job = await _held_job(ledger)

    done = await ledger.capture_usage(job.id, video("10.000"), output_key="videos/a.mp4")

    assert done.charged_amount == job.estimated_cost
    assert done.charged_amount is not None and done.charged_amount <= done.estimated_cost


async def test_capture_is_idempotent(ledger: Ledger) -> None:
    job = await _held_job(ledger)
    first = await ledger.capture_usage(job.id, video("4.5"), output_key="videos/a.mp4")

    again = await ledger.capture_usage(job.id, video("3.0"), output_key="videos/other.mp4")

    assert again == first
    assert len(await ledger.entries_for_job(job.id)) == 2
    await assert_balanced(ledger, job.account_id)


async def test_release_returns_the_whole_hold_and_records_why(ledger: Ledger) -> None:
    job = await _held_job(ledger)

    done = await ledger.release_hold(job.id, JobStatus.FAILED, UPSTREAM_FAILED)

    assert done.status is JobStatus.FAILED
    assert done.error_code is ErrorCode.UPSTREAM_FAILED
    assert done.error_message == "the provider gave up"
    assert done.charged_amount is None
    assert done.finished_at is not None
    assert await ledger.balance(job.account_id) == Decimal("10")
    release = (await ledger.entries_for_job(job.id))[-1]
    assert release.kind is EntryKind.HOLD_RELEASE
    assert release.amount == release.balance_delta == Decimal("0.4725")
    assert release.settles_job_id == job.id
    await assert_balanced(ledger, job.account_id)


async def test_release_is_idempotent_and_keeps_the_first_reason(ledger: Ledger) -> None:
    job = await _held_job(ledger)
    first = await ledger.release_hold(job.id, JobStatus.FAILED, UPSTREAM_FAILED)

    again = await ledger.release_hold(
        job.id, JobStatus.EXPIRED, JobError(code=ErrorCode.DEADLINE_EXCEEDED, message="late")
    )

    assert again == first
    assert len(await ledger.entries_for_job(job.id)) == 2
    assert await ledger.balance(job.account_id) == Decimal("10")


async def test_a_released_job_cannot_be_captured(ledger: Ledger) -> None:
    job = await _held_job(ledger)
    await ledger.release_hold(job.id, JobStatus.REFUNDED, UPSTREAM_FAILED)

    with pytest.raises(LedgerConflict):
        await ledger.capture_usage(job.id, video(), output_key="videos/a.mp4")

    assert await ledger.balance(job.account_id) == Decimal("10")


async def test_a_captured_job_cannot_be_released(ledger: Ledger) -> None:
    job = await _held_job(ledger)
    await ledger.capture_usage(job.id, video(), output_key="videos/a.mp4")

    with pytest.raises(LedgerConflict):
        await ledger.release_hold(job.id, JobStatus.FAILED, UPSTREAM_FAILED)

    assert await ledger.balance(job.account_id) == Decimal("9.5275")


async def test_a_hold_is_only_released_into_a_failure_status(ledger: Ledger) -> None:
    job = await _held_job(ledger)

    with pytest.raises(ValueError):
        await ledger.release_hold(job.id, JobStatus.SUCCEEDED, UPSTREAM_FAILED)


async def test_settling_an_unknown_job_is_a_conflict(ledger: Ledger) -> None:
    with pytest.raises(LedgerConflict):
        await ledger.capture_usage("job_missing", video(), output_key="videos/a.mp4")
    with pytest.raises(LedgerConflict):
        await ledger.release_hold("job_missing", JobStatus.FAILED, UPSTREAM_FAILED)


async def test_racing_settlements_settle_each_job_exactly_once(database_url: str) -> None:
    ledgers = [Ledger.from_url(database_url) for _ in range(3)]
    try:
        account = await funded_account(ledgers[0], "100")
        jobs = [(await ledgers[0].place_hold(new_job(account))).job for _ in range(10)]

        for job in jobs:
            capture, release, capture_again = await asyncio.gather(
                ledgers[0].capture_usage(job.id, video("4.2"), output_key="videos/a.mp4"),
                ledgers[1].release_hold(job.id, JobStatus.REFUNDED, UPSTREAM_FAILED),
                ledgers[2].capture_usage(job.id, video("4.2"), output_key="videos/a.mp4"),
                return_exceptions=True,
            )

            settled = await ledgers[0].get_job(job.id)
            assert settled is not None
            settlements = [e for e in await ledgers[0].entries_for_job(job.id) if e.settles_job_id]
            assert len(settlements) == 1
            if settled.status is JobStatus.SUCCEEDED:
                assert capture == capture_again == settled
                assert isinstance(release, LedgerConflict)
                assert settlements[0].kind is EntryKind.USAGE
            else:
                assert release == settled
                assert isinstance(capture, LedgerConflict)
                assert isinstance(capture_again, LedgerConflict)
                assert settlements[0].kind is EntryKind.HOLD_RELEASE

        usages = [e for e in await ledgers[0].entries(account) if e.kind is EntryKind.USAGE]
        expected = Decimal("100") - len(usages) * charge(RATE, 5, Decimal("4.2"))
        assert await assert_balanced(ledgers[0], account) == expected
    finally:
        for ledger in ledgers:
            await ledger.close()


async def test_the_succeeded_view_carries_the_output_and_no_error(ledger: Ledger) -> None:
    job = await _held_job(ledger)
    done = await ledger.capture_usage(job.id, video("5.0"), output_key="videos/a.mp4")

    view = done.view()

    assert view.job_id == job.id
    assert view.status is JobStatus.SUCCEEDED
    assert view.charged_amount == Decimal("0.4725")
    assert view.error is None
    assert view.output is not None
    assert view.output.url == "https://cdn.example.test/videos/abc.mp4"
    assert view.output.duration_seconds == Decimal("5.000")
    assert view.output.size_bytes == 1_234_567


async def test_the_failed_view_carries_the_error_and_no_output(ledger: Ledger) -> None:
    job = await _held_job(ledger)
    done = await ledger.release_hold(job.id, JobStatus.FAILED, UPSTREAM_FAILED)

    view = done.view()

    assert view.status is JobStatus.FAILED
    assert view.output is None
    assert view.error == UPSTREAM_FAILED
    assert job.view().error is None and job.view().output is None
