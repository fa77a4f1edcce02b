"""The money-and-jobs ledger: balances, holds, settlements, API keys (SQLAlchemy + Alembic).

Open one with ``Ledger.from_url(url)`` on a database brought up to date by ``migrate(url)``.
PostgreSQL (``postgresql+asyncpg://``) in production, SQLite (``sqlite+aiosqlite://``) for
the embedded stack; both share one schema, created only by the migrations.
"""

from ledger._database import create_engine, migrate
from ledger._errors import LedgerConflict
from ledger._ledger import Ledger
from ledger._records import (
    AccountRecord,
    ApiKeyRecord,
    EntryKind,
    HoldOutcome,
    JobRecord,
    LedgerEntryRecord,
    NewJob,
)

__all__ = [
    "AccountRecord",
    "ApiKeyRecord",
    "EntryKind",
    "HoldOutcome",
    "JobRecord",
    "Ledger",
    "LedgerConflict",
    "LedgerEntryRecord",
    "NewJob",
    "create_engine",
    "migrate",
]
