"""The ledger: every operation that moves money is one transaction, guarded in the database.

Invariants, each enforced by the database rather than by a read-then-write in Python:

* A balance never goes below zero: holds debit with a conditional ``UPDATE ... WHERE
  balance >= :amount`` (row-locked on PostgreSQL, write-locked on SQLite), and a CHECK
  constraint backs it up.
* Every change to a balance is one ledger entry in the same transaction, so an account's
  balance always equals the sum of its entries' ``balance_delta`` (see :meth:`Ledger.audit`).
* A job is settled at most once: a conditional ``UPDATE jobs ... WHERE finished_at IS NULL``
  picks one winner among concurrent settlements, and a UNIQUE ``settles_job_id`` makes a
  second capture or release impossible even for a writer that skipped the first guard.
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any, Self

from sqlalchemy import (
    Row,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from kyma_video.errors import IdempotencyConflict, InsufficientBalance, JobStatus, RateLimited
from kyma_video.jobs import JobError, JobOutput
from kyma_video.money import SECONDS_QUANTUM, charge, hold_amount, usd
from ledger._database import create_engine
from ledger._errors import LedgerConflict
from ledger._records import (
    AccountRecord,
    ApiKeyRecord,
    EntryKind,
    HoldOutcome,
    JobRecord,
    LedgerEntryRecord,
    NewJob,
)
from ledger._schema import Account, ApiKey, Base, Job, LedgerEntry, RateLimitWindow
from ledger._types import utcnow

API_KEY_PREFIX = "kyma_"
#: Characters of the plaintext key kept for display (``kyma_`` plus seven more).
DISPLAY_PREFIX_CHARS = 12
#: Longer inputs cannot be keys we issued; refuse them before hashing.
MAX_API_KEY_CHARS = 128
RELEASE_STATUSES = frozenset({JobStatus.FAILED, JobStatus.REFUNDED, JobStatus.EXPIRED})


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


#: A busy account is told to come back after this long (jobs take minutes, not seconds).
JOBS_IN_FLIGHT_RETRY_AFTER_SECONDS = 10

ACCOUNTS = _table(Account)
API_KEYS = _table(ApiKey)
JOBS = _table(Job)
ENTRIES = _table(LedgerEntry)
RATE_WINDOWS = _table(RateLimitWindow)

_API_KEY_COLUMNS = (
    API_KEYS.c.id,
    API_KEYS.c.account_id,
    API_KEYS.c.prefix,
    API_KEYS.c.created_at,
    API_KEYS.c.revoked_at,
)
#: The account columns read along with a key (labelled apart from the key's own columns).
_KEY_ACCOUNT_COLUMNS = (
    ACCOUNTS.c.name.label("account_name"),
    ACCOUNTS.c.tier.label("account_tier"),
    ACCOUNTS.c.balance.label("account_balance"),
    ACCOUNTS.c.created_at.label("account_created_at"),
)

# The statements of the API's per-request reads, built once with bound parameters: building a
# statement and computing its cache key each time cost half as much CPU again as executing it
# (a statement object memoizes its cache key).
_KEY_WITH_ACCOUNT = (
    select(*_API_KEY_COLUMNS, API_KEYS.c.key_hash, *_KEY_ACCOUNT_COLUMNS)
    .join(ACCOUNTS, ACCOUNTS.c.id == API_KEYS.c.account_id)
    .where(API_KEYS.c.key_hash == bindparam("digest"))
)
_JOB_BY_ID = select(JOBS).where(JOBS.c.id == bindparam("job_id"))
#: The job columns read along with a key, labelled ``job_<column>``.
_KEY_JOB_COLUMNS = tuple(column.label(f"job_{column.name}") for column in JOBS.c)
#: A key and, if its account owns it, one job: the whole of a poll (``GET /v1/jobs/{id}``),
#: which clients repeat every few seconds per job, in one round trip.
_KEY_WITH_JOB = (
    select(*_API_KEY_COLUMNS, API_KEYS.c.key_hash, *_KEY_JOB_COLUMNS)
    .select_from(
        API_KEYS.outerjoin(
            JOBS,
            and_(JOBS.c.id == bindparam("job_id"), JOBS.c.account_id == API_KEYS.c.account_id),
        )
    )
    .where(API_KEYS.c.key_hash == bindparam("digest"))
)
# Likewise the admission's inserts: executed with a dict of values, the statement is the same.
_INSERT_JOB = insert(JOBS)
_INSERT_ENTRY = insert(ENTRIES)


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


#: A result row of any shape.
AnyRow = Row[*tuple[Any, ...]]


def _values(row: AnyRow) -> dict[str, Any]:
    return dict(row._mapping)


def _plausible_key_digest(plaintext: object) -> str | None:
    """The digest to look a key up by, or None for what cannot be one of our keys."""
    if (
        not isinstance(plaintext, str)
        or not plaintext.startswith(API_KEY_PREFIX)
        or len(plaintext) > MAX_API_KEY_CHARS
    ):
        return None
    return _hash_key(plaintext)


def _live_key_row(row: AnyRow | None, digest: str) -> bool:
    if row is None or row.revoked_at is not None:
        return False
    # The lookup was by index; the constant-time comparison is the actual check.
    return hmac.compare_digest(row.key_hash, digest)


class Ledger:
    """Accounts, API keys, jobs and the money that moves between them.

    Every public method runs in its own transaction (or is a single statement, atomic by itself)
    and returns plain records. Safe to share between tasks and between processes: concurrency
    is resolved by the database.

    Args:
        engine: An engine from :func:`ledger.create_engine` on a migrated database.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        # Work of one statement needs no transaction around it: on PostgreSQL it runs in
        # autocommit, one round trip instead of three (BEGIN, statement, COMMIT). The API does
        # such work on every request. SQLite keeps its transactions (see ledger._database).
        postgres = engine.dialect.name == "postgresql"
        self._autocommit = (
            engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else None
        )
        dialect_insert = pg_insert if postgres else sqlite_insert
        self._count_request = (
            dialect_insert(RATE_WINDOWS)
            .values(
                account_id=bindparam("account_id"),
                window_start=bindparam("window_start"),
                requests=1,
            )
            .on_conflict_do_update(
                index_elements=[RATE_WINDOWS.c.account_id, RATE_WINDOWS.c.window_start],
                set_={"requests": RATE_WINDOWS.c.requests + 1},
            )
            .returning(RATE_WINDOWS.c.requests)
        )

    @classmethod
    def from_url(cls, url: str) -> Self:
        """Open a ledger on ``url`` (already migrated; see :func:`ledger.migrate`).

        Args:
            url: An async SQLAlchemy URL.

        Returns:
            A ledger owning its engine; :meth:`close` it when done.
        """
        return cls(create_engine(url))

    @property
    def engine(self) -> AsyncEngine:
        """The engine underneath, for operator tooling and tests that need raw SQL."""
        return self._engine

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._engine.dispose()

    # Accounts and balances -------------------------------------------------------------

    async def create_account(
        self, name: str, *, balance: Decimal = Decimal(0), tier: str = "default"
    ) -> AccountRecord:
        """Open an account.

        Args:
            name: A human-readable name.
            balance: Opening balance in USD; posted as a ``top_up`` entry so the balance
                equals the sum of entries from the first row on.
            tier: The account's tier (rate limits and the like are keyed on it).

        Returns:
            The new account.

        Raises:
            ValueError: ``balance`` is negative or finer than a micro-dollar.
        """
        opening = usd(balance)
        if opening < 0:
            raise ValueError("an opening balance cannot be negative")
        account_id = _new_id("acct_")
        now = utcnow()
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(ACCOUNTS).values(
                    id=account_id, name=name, tier=tier, balance=opening, created_at=now
                )
            )
            if opening > 0:
                await self._post(
                    conn,
                    account_id=account_id,
                    kind=EntryKind.TOP_UP,
                    amount=opening,
                    balance_delta=opening,
                    balance_after=opening,
                    created_at=now,
                )
            return await self._account(conn, account_id)

    async def get_account(self, account_id: str) -> AccountRecord | None:
        """The account, or None if there is no such account."""
        async with self._statements() as conn:
            row = (await conn.execute(select(ACCOUNTS).where(ACCOUNTS.c.id == account_id))).first()
        return None if row is None else AccountRecord.model_validate(_values(row))

    async def balance(self, account_id: str) -> Decimal:
        """The account's balance in USD (holds already deducted).

        Raises:
            LedgerConflict: There is no such account.
        """
        async with self._statements() as conn:
            return await self._balance(conn, account_id)

    async def top_up(
        self, account_id: str, amount: Decimal, *, reference: str | None = None
    ) -> Decimal:
        """Add funds to an account.

        Args:
            account_id: The account to credit.
            amount: USD, positive, at most micro-dollar precision.
            reference: An idempotency reference (a payment id): posting the same reference
                again credits nothing and returns the current balance.

        Returns:
            The balance after the top-up (or, for a repeated reference, the current one).

        Raises:
            ValueError: ``amount`` is not positive or is finer than a micro-dollar.
            LedgerConflict: The account is unknown, or ``reference`` was already used for a
                different amount.
        """
        amount = usd(amount)
        if amount <= 0:
            raise ValueError("a top-up must be positive")
        try:
            async with self._engine.begin() as conn:
                if reference is not None and await self._top_up_seen(
                    conn, account_id, reference, amount
                ):
                    return await self._balance(conn, account_id)
                balance_after = await self._credit(conn, account_id, amount)
                await self._post(
                    conn,
                    account_id=account_id,
                    kind=EntryKind.TOP_UP,
                    amount=amount,
                    balance_delta=amount,
                    balance_after=balance_after,
                    reference=reference,
                )
                return balance_after
        except IntegrityError:
            if reference is None:
                raise
            # A concurrent top-up with the same reference may have committed first.
            async with self._engine.begin() as conn:
                if not await self._top_up_seen(conn, account_id, reference, amount):
                    raise
                return await self._balance(conn, account_id)

    async def entries(self, account_id: str) -> list[LedgerEntryRecord]:
        """The account's ledger entries, oldest first."""
        return await self._entries(ENTRIES.c.account_id == account_id)

    async def entries_for_job(self, job_id: str) -> list[LedgerEntryRecord]:
        """The entries posted for one job (its hold, then its settlement), oldest first."""
        return await self._entries(ENTRIES.c.job_id == job_id)

    async def audit(self, account_id: str) -> tuple[Decimal, Decimal]:
        """Read the stored balance and the sum of the account's entries in one snapshot.

        The two are equal unless something wrote to the database behind the ledger's back.

        Returns:
            ``(stored balance, sum of balance_delta over the account's entries)``.

        Raises:
            LedgerConflict: There is no such account.
        """
        async with self._engine.begin() as conn:
            stored = await self._balance(conn, account_id)
            total = await conn.scalar(
                select(func.sum(ENTRIES.c.balance_delta)).where(ENTRIES.c.account_id == account_id)
            )
        return stored, total if total is not None else usd(0)

    # API keys --------------------------------------------------------------------------

    async def create_api_key(self, account_id: str) -> tuple[ApiKeyRecord, str]:
        """Issue a new API key for an account.

        Returns:
            The stored key and its plaintext. The plaintext is shown to the caller once and
            never stored: only its sha256 is, so a database leak does not leak usable keys.

        Raises:
            LedgerConflict: There is no such account.
        """
        plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
        key_id = _new_id("key_")
        async with self._engine.begin() as conn:
            await self._balance(conn, account_id)
            await conn.execute(
                insert(API_KEYS).values(
                    id=key_id,
                    account_id=account_id,
                    key_hash=_hash_key(plaintext),
                    prefix=plaintext[:DISPLAY_PREFIX_CHARS],
                    created_at=utcnow(),
                )
            )
            row = (
                await conn.execute(select(*_API_KEY_COLUMNS).where(API_KEYS.c.id == key_id))
            ).one()
        return ApiKeyRecord.model_validate(_values(row)), plaintext

    async def authenticate(self, plaintext: str) -> ApiKeyRecord | None:
        """The live key whose plaintext this is, or None (unknown, revoked or malformed)."""
        found = await self.authenticate_account(plaintext)
        return None if found is None else found[0]

    async def authenticate_account(
        self, plaintext: str
    ) -> tuple[ApiKeyRecord, AccountRecord] | None:
        """The live key whose plaintext this is and its account, read in one query; None if
        the key is unknown, revoked or malformed. (The API does this on every request.)"""
        digest = _plausible_key_digest(plaintext)
        if digest is None:
            return None
        async with self._statements() as conn:
            row = (await conn.execute(_KEY_WITH_ACCOUNT, {"digest": digest})).first()
        if not _live_key_row(row, digest):
            return None
        assert row is not None
        values = _values(row)
        key = ApiKeyRecord.model_validate({c.name: values[c.name] for c in _API_KEY_COLUMNS})
        account = AccountRecord(
            id=row.account_id,
            name=row.account_name,
            tier=row.account_tier,
            balance=row.account_balance,
            created_at=row.account_created_at,
        )
        return key, account

    async def job_for_key(
        self, plaintext: str, job_id: str
    ) -> tuple[ApiKeyRecord, JobRecord | None] | None:
        """Authenticate a key and read one of its account's jobs in a single query.

        Returns None if the key is unknown, revoked or malformed; otherwise the key and the
        job, which is None when the key's account has no job ``job_id`` (another account's
        job is not told apart from a missing one).
        """
        digest = _plausible_key_digest(plaintext)
        if digest is None:
            return None
        async with self._statements() as conn:
            row = (
                await conn.execute(_KEY_WITH_JOB, {"digest": digest, "job_id": job_id})
            ).first()
        if not _live_key_row(row, digest):
            return None
        assert row is not None
        values = _values(row)
        key = ApiKeyRecord.model_validate({c.name: values[c.name] for c in _API_KEY_COLUMNS})
        if values["job_id"] is None:
            return key, None
        job = JobRecord.model_validate({c.name: values[f"job_{c.name}"] for c in JOBS.c})
        return key, job

    async def revoke_api_key(self, key_id: str) -> None:
        """Revoke a key; revoking a revoked key changes nothing.

        Raises:
            LedgerConflict: There is no such key.
        """
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(API_KEYS)
                .where(API_KEYS.c.id == key_id, API_KEYS.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            if result.rowcount == 0 and not await conn.scalar(
                select(API_KEYS.c.id).where(API_KEYS.c.id == key_id)
            ):
                raise LedgerConflict(f"no API key {key_id!r}")

    async def list_api_keys(self, account_id: str | None = None) -> list[ApiKeyRecord]:
        """Keys, oldest first: one account's, or every account's when ``account_id`` is None."""
        query = select(*_API_KEY_COLUMNS).order_by(API_KEYS.c.created_at, API_KEYS.c.id)
        if account_id is not None:
            query = query.where(API_KEYS.c.account_id == account_id)
        async with self._engine.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [ApiKeyRecord.model_validate(_values(row)) for row in rows]

    # Jobs ------------------------------------------------------------------------------

    async def place_hold(
        self, new: NewJob, *, max_jobs_in_flight: int | None = None
    ) -> HoldOutcome:
        """Admit a job: hold its estimated cost and record it as pending.

        Idempotent on ``new.job_id``: placing the same job again returns the recorded job
        with ``created=False`` and holds nothing more.

        Args:
            new: The job to admit.
            max_jobs_in_flight: Refuse (``RateLimited``) if the account already has this many
                pending or processing jobs. Counted after the debit has locked the account
                row, so racing admissions for one account are counted one after another.

        Returns:
            The job and whether this call created it.

        Raises:
            IdempotencyConflict: A job with this id exists for a different request.
            InsufficientBalance: The balance does not cover the hold; nothing was written.
            RateLimited: The account has ``max_jobs_in_flight`` unfinished jobs.
            LedgerConflict: The account does not exist.
        """
        estimated = hold_amount(new.per_second_usd, new.duration)
        try:
            async with self._engine.begin() as conn:
                existing = await self._job(conn, new.job_id)
                if existing is not None:
                    return HoldOutcome(job=_replayed(existing, new), created=False)
                now = utcnow()
                balance_after = await self._debit(conn, new.account_id, estimated)
                if max_jobs_in_flight is not None:
                    await self._refuse_if_busy(conn, new.account_id, max_jobs_in_flight)
                await conn.execute(
                    _INSERT_JOB,
                    dict(
                        id=new.job_id,
                        account_id=new.account_id,
                        api_key_id=new.api_key_id,
                        idempotency_key=new.idempotency_key,
                        fingerprint=new.fingerprint,
                        model=new.model,
                        provider=new.provider,
                        endpoint=new.endpoint,
                        duration=new.duration,
                        upstream_duration=new.upstream_duration,
                        per_second_usd=new.per_second_usd,
                        estimated_cost=estimated,
                        status=JobStatus.PENDING.value,
                        prompt=new.prompt,
                        image_url=new.image_url,
                        params=new.params,
                        simulated=new.simulated,
                        workflow_run_id=new.workflow_run_id,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await self._post(
                    conn,
                    account_id=new.account_id,
                    job_id=new.job_id,
                    kind=EntryKind.HOLD,
                    amount=estimated,
                    balance_delta=-estimated,
                    balance_after=balance_after,
                    created_at=now,
                )
                job = await self._require_job(conn, new.job_id)
        except IntegrityError:
            # Most likely a concurrent place_hold for the same job id committed first; its
            # transaction (and so our debit) rolled back, and the job it wrote is the answer.
            winner = await self.get_job(new.job_id)
            if winner is None:
                raise
            return HoldOutcome(job=_replayed(winner, new), created=False)
        return HoldOutcome(job=job, created=True)

    async def mark_processing(self, job_id: str, upstream_request_id: str) -> JobRecord:
        """Record that the provider accepted the job.

        The first upstream request id recorded wins (a retried submit must not overwrite it),
        and only a pending job moves to processing: a status never moves backwards.

        Returns:
            The job as it now stands.

        Raises:
            LedgerConflict: There is no such job.
        """
        async with self._engine.begin() as conn:
            await conn.execute(
                update(JOBS)
                .where(
                    JOBS.c.id == job_id,
                    or_(
                        JOBS.c.upstream_request_id.is_(None),
                        JOBS.c.status == JobStatus.PENDING.value,
                    ),
                )
                .values(
                    upstream_request_id=func.coalesce(
                        JOBS.c.upstream_request_id, upstream_request_id
                    ),
                    status=case(
                        (JOBS.c.status == JobStatus.PENDING.value, JobStatus.PROCESSING.value),
                        else_=JOBS.c.status,
                    ),
                    updated_at=utcnow(),
                )
            )
            return await self._require_job(conn, job_id)

    async def get_job(self, job_id: str) -> JobRecord | None:
        """The job, or None if there is no such job."""
        async with self._statements() as conn:
            return await self._job(conn, job_id)

    async def jobs_for_account(self, account_id: str) -> list[JobRecord]:
        """Every job of the account, oldest first (for audits and operator tooling)."""
        async with self._engine.begin() as conn:
            rows: Sequence[AnyRow] = (
                await conn.execute(
                    select(JOBS)
                    .where(JOBS.c.account_id == account_id)
                    .order_by(JOBS.c.created_at, JOBS.c.id)
                )
            ).all()
        return [JobRecord.model_validate(_values(row)) for row in rows]

    async def get_job_for_account(self, job_id: str, account_id: str) -> JobRecord | None:
        """The job if it belongs to ``account_id``; None otherwise, so ids do not leak."""
        job = await self.get_job(job_id)
        return job if job is not None and job.account_id == account_id else None

    async def capture_usage(self, job_id: str, output: JobOutput, *, output_key: str) -> JobRecord:
        """Settle a job as succeeded: charge for what was delivered, return the rest.

        The hold becomes the charge ``rate x min(requested, delivered)`` seconds, which never
        exceeds the hold. Idempotent: capturing a succeeded job returns it unchanged.

        Args:
            job_id: The job to settle.
            output: The rehosted video; its duration decides the charge.
            output_key: Where the video is stored in the blob store.

        Returns:
            The succeeded job.

        Raises:
            LedgerConflict: The job is unknown or its hold was already released.
        """

        def usage(job: JobRecord) -> _Settlement:
            charged = charge(job.per_second_usd, job.duration, output.duration_seconds)
            assert charged <= job.estimated_cost, "a charge can never exceed its hold"
            return _Settlement(
                kind=EntryKind.USAGE,
                amount=charged,
                balance_delta=job.estimated_cost - charged,
                job_values={
                    "status": JobStatus.SUCCEEDED.value,
                    "charged_amount": charged,
                    "output_key": output_key,
                    "output_url": output.url,
                    "output_content_type": output.content_type,
                    "output_size_bytes": output.size_bytes,
                    "output_sha256": output.sha256,
                    "output_duration_seconds": output.duration_seconds.quantize(
                        SECONDS_QUANTUM, rounding=ROUND_DOWN
                    ),
                },
            )

        return await self._settle(job_id, capturing=True, settlement=usage)

    async def release_hold(self, job_id: str, status: JobStatus, error: JobError) -> JobRecord:
        """Settle a job without a video: return its whole hold and record why.

        Idempotent: releasing a released job returns it unchanged (with its first error).

        Args:
            job_id: The job to settle.
            status: ``failed``, ``refunded`` or ``expired`` (see
                :func:`kyma_video.errors.terminal_status_for`).
            error: Why the job ended.

        Returns:
            The job in its terminal status.

        Raises:
            ValueError: ``status`` is not a release status.
            LedgerConflict: The job is unknown or was already captured.
        """
        if status not in RELEASE_STATUSES:
            raise ValueError(f"a hold is released as failed, refunded or expired, not {status}")

        def release(job: JobRecord) -> _Settlement:
            return _Settlement(
                kind=EntryKind.HOLD_RELEASE,
                amount=job.estimated_cost,
                balance_delta=job.estimated_cost,
                job_values={
                    "status": status.value,
                    "error_code": error.code.value,
                    "error_message": error.message,
                },
            )

        return await self._settle(job_id, capturing=False, settlement=release)

    async def _settle(
        self,
        job_id: str,
        *,
        capturing: bool,
        settlement: Callable[[JobRecord], "_Settlement"],
    ) -> JobRecord:
        """The one way a hold ends: finish the job, post its settling entry, move the money,
        in one transaction; at most once per job however many callers race."""
        try:
            async with self._engine.begin() as conn:
                job = await self._require_job(conn, job_id)
                settled = _already_settled(job, capturing=capturing)
                if settled is not None:
                    return settled
                entry = settlement(job)
                now = utcnow()
                await self._finish(
                    conn, job_id, **entry.job_values, updated_at=now, finished_at=now
                )
                await self._post(
                    conn,
                    account_id=job.account_id,
                    job_id=job_id,
                    settles_job_id=job_id,
                    kind=entry.kind,
                    amount=entry.amount,
                    balance_delta=entry.balance_delta,
                    balance_after=await self._credit(conn, job.account_id, entry.balance_delta),
                    created_at=now,
                )
                return await self._require_job(conn, job_id)
        except (IntegrityError, _SettledConcurrently) as lost:
            return await self._settled_concurrently(job_id, capturing=capturing, cause=lost)

    # Rate limits ------------------------------------------------------------------------

    async def count_request(self, account_id: str, window_start: datetime) -> int:
        """Count one request in the account's window starting at ``window_start`` and return
        the window's total so far (atomic across API replicas); older windows are dropped.

        Every API request does this, so it is one statement, committed on its own: an upsert
        on PostgreSQL's UNLOGGED counter table commits without a WAL flush (migration 0003).
        The older windows are dropped by the request that opens a new window.
        """
        async with self._statements() as conn:
            count = await conn.scalar(
                self._count_request, {"account_id": account_id, "window_start": window_start}
            )
            assert count is not None
            if count == 1:
                await conn.execute(
                    delete(RATE_WINDOWS).where(
                        RATE_WINDOWS.c.account_id == account_id,
                        RATE_WINDOWS.c.window_start < window_start,
                    )
                )
        return int(count)

    async def jobs_in_flight(self, account_id: str) -> int:
        """How many of the account's jobs are pending or processing."""
        async with self._engine.begin() as conn:
            return await self._in_flight(conn, account_id)

    # Helpers (each runs inside the caller's transaction) -------------------------------

    def _statements(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection whose statements each commit on their own (PostgreSQL autocommit): for
        work of ONE statement (its own snapshot, atomic by itself), or statements that need not
        be atomic together. Anything else uses a transaction (``self._engine.begin()``)."""
        if self._autocommit is None:
            return self._engine.begin()
        return self._autocommit.connect()

    async def _settled_concurrently(
        self, job_id: str, *, capturing: bool, cause: Exception
    ) -> JobRecord:
        """Another settlement committed between our read and our write (our transaction
        rolled back): answer as if it had come first, as a serial execution would."""
        async with self._engine.begin() as conn:
            job = await self._require_job(conn, job_id)
        settled = _already_settled(job, capturing=capturing)
        if settled is None:
            raise cause
        return settled

    async def _in_flight(self, conn: AsyncConnection, account_id: str) -> int:
        count = await conn.scalar(
            select(func.count())
            .select_from(JOBS)
            .where(
                JOBS.c.account_id == account_id,
                JOBS.c.status.in_([JobStatus.PENDING.value, JobStatus.PROCESSING.value]),
            )
        )
        return int(count or 0)

    async def _refuse_if_busy(self, conn: AsyncConnection, account_id: str, limit: int) -> None:
        if await self._in_flight(conn, account_id) >= limit:
            raise RateLimited(
                f"{limit} jobs are already in flight for this account; wait for one to finish",
                retry_after_seconds=JOBS_IN_FLIGHT_RETRY_AFTER_SECONDS,
            )

    async def _finish(self, conn: AsyncConnection, job_id: str, **values: Any) -> None:
        """Move an unsettled job to a terminal state, unless another settlement got there."""
        result = await conn.execute(
            update(JOBS).where(JOBS.c.id == job_id, JOBS.c.finished_at.is_(None)).values(**values)
        )
        if result.rowcount != 1:
            raise _SettledConcurrently(job_id)

    async def _debit(self, conn: AsyncConnection, account_id: str, amount: Decimal) -> Decimal:
        """Take ``amount`` if (and only if) the balance covers it; the new balance."""
        new_balance = await conn.scalar(
            update(ACCOUNTS)
            .where(ACCOUNTS.c.id == account_id, ACCOUNTS.c.balance >= amount)
            .values(balance=ACCOUNTS.c.balance - amount)
            .returning(ACCOUNTS.c.balance)
        )
        if new_balance is None:
            await self._balance(conn, account_id)
            raise InsufficientBalance()
        return usd(new_balance)

    async def _credit(self, conn: AsyncConnection, account_id: str, amount: Decimal) -> Decimal:
        new_balance = await conn.scalar(
            update(ACCOUNTS)
            .where(ACCOUNTS.c.id == account_id)
            .values(balance=ACCOUNTS.c.balance + amount)
            .returning(ACCOUNTS.c.balance)
        )
        if new_balance is None:
            raise LedgerConflict(f"no account {account_id!r}")
        return usd(new_balance)

    async def _post(
        self,
        conn: AsyncConnection,
        *,
        account_id: str,
        kind: EntryKind,
        amount: Decimal,
        balance_delta: Decimal,
        balance_after: Decimal,
        job_id: str | None = None,
        settles_job_id: str | None = None,
        reference: str | None = None,
        created_at: datetime | None = None,
    ) -> None:
        await conn.execute(
            _INSERT_ENTRY,
            dict(
                account_id=account_id,
                job_id=job_id,
                kind=kind.value,
                amount=amount,
                balance_delta=balance_delta,
                balance_after=balance_after,
                reference=reference,
                settles_job_id=settles_job_id,
                created_at=created_at or utcnow(),
            )
        )

    async def _balance(self, conn: AsyncConnection, account_id: str) -> Decimal:
        balance = await conn.scalar(select(ACCOUNTS.c.balance).where(ACCOUNTS.c.id == account_id))
        if balance is None:
            raise LedgerConflict(f"no account {account_id!r}")
        return usd(balance)

    async def _account(self, conn: AsyncConnection, account_id: str) -> AccountRecord:
        row = (await conn.execute(select(ACCOUNTS).where(ACCOUNTS.c.id == account_id))).one()
        return AccountRecord.model_validate(_values(row))

    async def _top_up_seen(
        self, conn: AsyncConnection, account_id: str, reference: str, amount: Decimal
    ) -> bool:
        seen = await conn.scalar(
            select(ENTRIES.c.amount).where(
                ENTRIES.c.account_id == account_id,
                ENTRIES.c.reference == reference,
                ENTRIES.c.kind == EntryKind.TOP_UP.value,
            )
        )
        if seen is not None and seen != amount:
            raise LedgerConflict(
                f"top-up reference {reference!r} was already used for {seen} USD, not {amount}"
            )
        return seen is not None

    async def _job(self, conn: AsyncConnection, job_id: str) -> JobRecord | None:
        row = (await conn.execute(_JOB_BY_ID, {"job_id": job_id})).first()
        return None if row is None else JobRecord.model_validate(_values(row))

    async def _require_job(self, conn: AsyncConnection, job_id: str) -> JobRecord:
        job = await self._job(conn, job_id)
        if job is None:
            raise LedgerConflict(f"no job {job_id!r}")
        return job

    async def _entries(self, condition: Any) -> list[LedgerEntryRecord]:
        async with self._engine.begin() as conn:
            rows: Sequence[AnyRow] = (
                await conn.execute(select(ENTRIES).where(condition).order_by(ENTRIES.c.id))
            ).all()
        return [LedgerEntryRecord.model_validate(_values(row)) for row in rows]


@dataclass(frozen=True)
class _Settlement:
    """How a job settles: the entry that ends its hold and the job columns that go with it."""

    kind: EntryKind
    amount: Decimal
    balance_delta: Decimal
    job_values: dict[str, Any]


class _SettledConcurrently(Exception):
    """Raised inside a settlement's transaction to roll it back when another one won."""


def _replayed(existing: JobRecord, new: NewJob) -> JobRecord:
    """The recorded job, if ``new`` asks for the same thing; an idempotency conflict if not."""
    if existing.fingerprint != new.fingerprint or existing.account_id != new.account_id:
        raise IdempotencyConflict()
    return existing


def _already_settled(job: JobRecord, *, capturing: bool) -> JobRecord | None:
    """The job if it is already settled the same way; LedgerConflict if the other way."""
    if job.finished_at is None:
        return None
    if (job.status is JobStatus.SUCCEEDED) == capturing:
        return job
    done = "captured" if job.status is JobStatus.SUCCEEDED else f"released ({job.status})"
    raise LedgerConflict(f"job {job.id!r} was already {done}")
