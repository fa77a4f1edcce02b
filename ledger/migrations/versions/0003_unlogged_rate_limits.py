"""Rate-limit counters skip the write-ahead log (PostgreSQL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

Every API request counts itself in ``rate_limit_windows``. The counts are worth nothing after
a minute, so on PostgreSQL the table is UNLOGGED: counting is one statement that commits
without waiting for a WAL flush (and writes no WAL), instead of a durable commit per request.
The price is the one a rate limit can pay: a database crash empties the table (every account's
current minute starts again from zero) and standbys do not carry it. No money is in it.
SQLite has no such thing and is left as it is.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE rate_limit_windows SET UNLOGGED")


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("ALTER TABLE rate_limit_windows SET LOGGED")
