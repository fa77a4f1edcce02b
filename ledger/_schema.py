"""The ledger's tables as declarative models: the shape every query is written against.

The schema itself is created only by the Alembic migrations in ``ledger/migrations``; a test
compares these models with the migrated database so the two cannot drift apart. Constraints
that protect money live in the database, not just in Python, because the database is the one
place every writer (worker, API, operator script) has to pass through.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ledger._types import Seconds, Usd, UtcDateTime

#: Deterministic constraint names, so migrations can refer to (and drop) them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: SQLite only auto-increments a column declared exactly ``INTEGER PRIMARY KEY``.
EntryId = BigInteger().with_variant(Integer(), "sqlite")
JsonDocument = JSON().with_variant(JSONB(), "postgresql")

JOB_STATUSES = ("pending", "processing", "succeeded", "failed", "refunded", "expired")
ENTRY_KINDS = ("hold", "usage", "hold_release", "top_up")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Account(Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint("balance >= 0", name="balance_nonnegative"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    tier: Mapped[str] = mapped_column(String(40), default="default")
    balance: Mapped[Decimal] = mapped_column(Usd())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"), index=True)
    #: sha256 hex of the plaintext key; the plaintext itself is never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    #: The first characters of the plaintext, so an operator can tell keys apart.
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(
            "charged_amount IS NULL OR charged_amount <= estimated_cost",
            name="charge_within_hold",
        ),
        CheckConstraint(_one_of("status", JOB_STATUSES), name="status_known"),
        CheckConstraint("duration > 0 AND upstream_duration > 0", name="duration_positive"),
        Index(None, "account_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(255))
    duration: Mapped[int] = mapped_column(Integer)
    upstream_duration: Mapped[int] = mapped_column(Integer)
    per_second_usd: Mapped[Decimal] = mapped_column(Usd())
    estimated_cost: Mapped[Decimal] = mapped_column(Usd())
    charged_amount: Mapped[Decimal | None] = mapped_column(Usd())
    status: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    image_url: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    simulated: Mapped[bool] = mapped_column(Boolean)
    workflow_run_id: Mapped[str | None] = mapped_column(String(64))
    upstream_request_id: Mapped[str | None] = mapped_column(String(255))
    output_key: Mapped[str | None] = mapped_column(Text)
    output_url: Mapped[str | None] = mapped_column(Text)
    output_content_type: Mapped[str | None] = mapped_column(String(255))
    output_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    output_sha256: Mapped[str | None] = mapped_column(String(64))
    output_duration_seconds: Mapped[Decimal | None] = mapped_column(Seconds())
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class LedgerEntry(Base):
    """One movement of money; an account's balance always equals the sum of its deltas."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ENTRY_KINDS), name="kind_known"),
        CheckConstraint("amount >= 0", name="amount_nonnegative"),
        CheckConstraint("balance_after >= 0", name="balance_after_nonnegative"),
        # Exactly the settling kinds name a job they settle, and only their own job.
        CheckConstraint(
            "(kind IN ('usage', 'hold_release') AND settles_job_id = job_id)"
            " OR (kind IN ('hold', 'top_up') AND settles_job_id IS NULL)",
            name="settles_own_job",
        ),
        UniqueConstraint("job_id", "kind"),
        UniqueConstraint("account_id", "reference"),
        Index(None, "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(EntryId, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    kind: Mapped[str] = mapped_column(String(16))
    #: Positive magnitude: what was held, charged, released or topped up.
    amount: Mapped[Decimal] = mapped_column(Usd())
    #: Signed effect on the account's balance.
    balance_delta: Mapped[Decimal] = mapped_column(Usd())
    balance_after: Mapped[Decimal] = mapped_column(Usd())
    #: A top-up's idempotency reference (unique per account).
    reference: Mapped[str | None] = mapped_column(String(255))
    #: Set on the one entry that settles a job; UNIQUE, so a job settles at most once.
    settles_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class RateLimitWindow(Base):
    """Requests an account made in one minute, counted where every API replica can see them.

    UNLOGGED on PostgreSQL (migration 0003): ephemeral counts, no WAL flush per request."""

    __tablename__ = "rate_limit_windows"

    account_id: Mapped[str] = mapped_column(String(40), ForeignKey("accounts.id"), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime(), primary_key=True)
    requests: Mapped[int] = mapped_column(Integer)
