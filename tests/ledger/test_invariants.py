"""The books always balance: after any sequence of operations, on either backend.

A seeded random sequence of top-ups, holds (new, replayed, conflicting), progress updates,
captures and releases runs against the ledger and against a tiny model of what it should do.
The seed is fixed, so a failure replays exactly; change it locally to explore other sequences.
"""

import random
from collections import Counter
from decimal import Decimal

import pytest

from kyma_video.errors import (
    ErrorCode,
    IdempotencyConflict,
    InsufficientBalance,
    JobStatus,
)
from kyma_video.jobs import JobError
from kyma_video.money import charge, hold_amount
from ledger import EntryKind, Ledger, LedgerConflict, NewJob
from providers.catalog import CATALOG
from tests.ledger.factories import assert_balanced, funded_account, new_job, video

SEED = 20250601
STEPS = 200
RELEASES = [
    (JobStatus.FAILED, ErrorCode.CONTENT_REJECTED),
    (JobStatus.REFUNDED, ErrorCode.REHOST_FAILED),
    (JobStatus.EXPIRED, ErrorCode.DEADLINE_EXCEEDED),
]


class Model:
    """What the ledger should hold, computed the simple way."""

    def __init__(self, accounts: list[str], opening: Decimal) -> None:
        self.balances = dict.fromkeys(accounts, opening)
        self.jobs: dict[str, NewJob] = {}
        self.outcome: dict[str, str] = {}  # job id -> "captured" | "released"
        self.references: dict[tuple[str, str], Decimal] = {}
        #: Which paths the sequence took, so the test can insist it took all of them.
        self.paths: Counter[str] = Counter()


async def _step(ledger: Ledger, model: Model, rng: random.Random) -> None:
    accounts = list(model.balances)
    operation = rng.choice(
        ["top_up", "hold", "hold", "hold", "replay", "processing", "capture", "capture", "release"]
    )
    if operation != "top_up" and operation != "hold" and not model.jobs:
        operation = "hold"
    job_id = rng.choice(list(model.jobs)) if model.jobs else ""

    if operation == "top_up":
        account = rng.choice(accounts)
        amount = Decimal(rng.randint(1, 2_000_000)).scaleb(-6)
        reference = rng.choice([None, None, "pay_1", "pay_2", "pay_3"])
        seen = model.references.get((account, reference)) if reference else None
        if seen is not None and seen != amount:
            model.paths["reference reused for another amount"] += 1
            with pytest.raises(LedgerConflict):
                await ledger.top_up(account, amount, reference=reference)
            return
        balance = await ledger.top_up(account, amount, reference=reference)
        if seen is None:
            model.balances[account] += amount
            if reference:
                model.references[(account, reference)] = amount
        assert balance == model.balances[account]

    elif operation == "hold":
        account = rng.choice(accounts)
        job = new_job(
            account,
            model=rng.choice(list(CATALOG)),
            duration=rng.randint(1, 10),
            prompt=f"prompt {rng.random()}",
        )
        estimated = hold_amount(job.per_second_usd, job.duration)
        if model.balances[account] < estimated:
            model.paths["insufficient balance"] += 1
            with pytest.raises(InsufficientBalance):
                await ledger.place_hold(job)
            return
        outcome = await ledger.place_hold(job)
        assert outcome.created and outcome.job.estimated_cost == estimated
        model.balances[account] -= estimated
        model.jobs[job.job_id] = job

    elif operation == "replay":
        job = model.jobs[job_id]
        if rng.random() < 0.5:
            model.paths["replayed hold"] += 1
            outcome = await ledger.place_hold(job)
            assert not outcome.created
        else:
            model.paths["conflicting hold"] += 1
            with pytest.raises(IdempotencyConflict):
                await ledger.place_hold(job.model_copy(update={"fingerprint": "other"}))

    elif operation == "processing":
        record = await ledger.mark_processing(job_id, f"upstream-{rng.randint(1, 3)}")
        assert record.status is not JobStatus.PENDING

    elif operation == "capture":
        job = model.jobs[job_id]
        delivered = Decimal(rng.randint(0, 12_000_000)).scaleb(-6)
        if model.outcome.get(job_id) == "released":
            model.paths["capture after release"] += 1
            with pytest.raises(LedgerConflict):
                await ledger.capture_usage(job_id, video(delivered), output_key="k")
            return
        record = await ledger.capture_usage(job_id, video(delivered), output_key="k")
        model.paths["repeated capture" if job_id in model.outcome else "capture"] += 1
        if job_id not in model.outcome:
            charged = charge(job.per_second_usd, job.duration, delivered)
            assert record.charged_amount == charged <= record.estimated_cost
            model.balances[job.account_id] += record.estimated_cost - charged
            model.outcome[job_id] = "captured"

    else:  # release
        job = model.jobs[job_id]
        status, code = rng.choice(RELEASES)
        error = JobError(code=code, message=code.value)
        if model.outcome.get(job_id) == "captured":
            model.paths["release after capture"] += 1
            with pytest.raises(LedgerConflict):
                await ledger.release_hold(job_id, status, error)
            return
        record = await ledger.release_hold(job_id, status, error)
        model.paths["repeated release" if job_id in model.outcome else "release"] += 1
        if job_id not in model.outcome:
            assert record.status is status
            model.balances[job.account_id] += record.estimated_cost
            model.outcome[job_id] = "released"


async def test_a_random_sequence_of_operations_keeps_the_books_balanced(ledger: Ledger) -> None:
    rng = random.Random(SEED)
    opening = Decimal("3")
    accounts = [await funded_account(ledger, str(opening)) for _ in range(3)]
    model = Model(accounts, opening)

    for step in range(STEPS):
        await _step(ledger, model, rng)
        if step % 25 == 0:
            for account in accounts:
                await assert_balanced(ledger, account)

    for account in accounts:
        assert await assert_balanced(ledger, account) == model.balances[account]
        running = Decimal(0)
        for entry in await ledger.entries(account):
            running += entry.balance_delta
            assert entry.balance_after == running >= 0
    for job_id in model.jobs:
        record = await ledger.get_job(job_id)
        assert record is not None
        entries = await ledger.entries_for_job(job_id)
        assert entries[0].kind is EntryKind.HOLD
        assert len([e for e in entries if e.settles_job_id is not None]) <= 1
        held = sum((e.balance_delta for e in entries), Decimal(0))
        if record.status is JobStatus.SUCCEEDED:
            assert held == -(record.charged_amount or 0)
        elif record.status.is_terminal:
            assert held == 0
        else:
            assert held == -record.estimated_cost
    # The sequence must have exercised every path, or it proves little.
    assert set(model.paths) == {
        "reference reused for another amount",
        "insufficient balance",
        "replayed hold",
        "conflicting hold",
        "capture",
        "repeated capture",
        "capture after release",
        "release",
        "repeated release",
        "release after capture",
    }, model.paths
    assert any(job_id not in model.outcome for job_id in model.jobs)
