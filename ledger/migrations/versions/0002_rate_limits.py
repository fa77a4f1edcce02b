"""Per-account request counters for API rate limits.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

The counters live in the ledger database because every API replica already shares it: a
limit enforced there holds however many replicas run, with no extra service to operate.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rate_limit_windows",
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("window_start", TIMESTAMP, nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_rate_limit_windows_account_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("account_id", "window_start", name=op.f("pk_rate_limit_windows")),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_windows")
