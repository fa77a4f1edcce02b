"""Initial ledger: accounts, API keys, jobs and the ledger entries that move money.

Revision ID: 0001
Revises:
Create Date: 2025-01-01

Types and constraint names are spelled out here rather than imported from the models, so this
file keeps describing the same schema however the Python code evolves (names are wrapped in
``op.f()`` so the models' naming convention does not prefix them a second time). Money is
NUMERIC(18, 6) on PostgreSQL and an integer count of micro-dollars on SQLite (see
``ledger._types``), durations likewise NUMERIC(10, 3) or integer milliseconds.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY = sa.Numeric(18, 6).with_variant(sa.BigInteger(), "sqlite")
SECONDS = sa.Numeric(10, 3).with_variant(sa.BigInteger(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
ENTRY_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOCUMENT = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(40), nullable=False),
        sa.Column("balance", MONEY, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_accounts_balance_nonnegative")),
    )

    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(12), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("revoked_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_api_keys_account_id_accounts")
        ),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_account_id"), "api_keys", ["account_id"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(255), nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("api_key_id", sa.String(40), nullable=True),
        sa.Column("idempotency_key", sa.String(128), nullable=True),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(255), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=False),
        sa.Column("upstream_duration", sa.Integer(), nullable=False),
        sa.Column("per_second_usd", MONEY, nullable=False),
        sa.Column("estimated_cost", MONEY, nullable=False),
        sa.Column("charged_amount", MONEY, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("image_url", sa.Text(), nullable=True),
        sa.Column("params", JSON_DOCUMENT, nullable=False),
        sa.Column("simulated", sa.Boolean(), nullable=False),
        sa.Column("workflow_run_id", sa.String(64), nullable=True),
        sa.Column("upstream_request_id", sa.String(255), nullable=True),
        sa.Column("output_key", sa.Text(), nullable=True),
        sa.Column("output_url", sa.Text(), nullable=True),
        sa.Column("output_content_type", sa.String(255), nullable=True),
        sa.Column("output_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("output_sha256", sa.String(64), nullable=True),
        sa.Column("output_duration_seconds", SECONDS, nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("finished_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_jobs_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_jobs_api_key_id_api_keys")
        ),
        sa.CheckConstraint(
            "charged_amount IS NULL OR charged_amount <= estimated_cost",
            name=op.f("ck_jobs_charge_within_hold"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'processing', 'succeeded', 'failed', 'refunded', 'expired')",
            name=op.f("ck_jobs_status_known"),
        ),
        sa.CheckConstraint(
            "duration > 0 AND upstream_duration > 0", name=op.f("ck_jobs_duration_positive")
        ),
    )
    op.create_index(op.f("ix_jobs_account_id_created_at"), "jobs", ["account_id", "created_at"])

    op.create_table(
        "ledger_entries",
        sa.Column("id", ENTRY_ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.String(40), nullable=False),
        sa.Column("job_id", sa.String(255), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("amount", MONEY, nullable=False),
        sa.Column("balance_delta", MONEY, nullable=False),
        sa.Column("balance_after", MONEY, nullable=False),
        sa.Column("reference", sa.String(255), nullable=True),
        sa.Column("settles_job_id", sa.String(255), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_entries")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_ledger_entries_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_ledger_entries_job_id_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["settles_job_id"], ["jobs.id"], name=op.f("fk_ledger_entries_settles_job_id_jobs")
        ),
        sa.CheckConstraint(
            "kind IN ('hold', 'usage', 'hold_release', 'top_up')",
            name=op.f("ck_ledger_entries_kind_known"),
        ),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_ledger_entries_amount_nonnegative")),
        sa.CheckConstraint(
            "balance_after >= 0", name=op.f("ck_ledger_entries_balance_after_nonnegative")
        ),
        # Exactly the settling kinds name a job they settle, and only their own job.
        sa.CheckConstraint(
            "(kind IN ('usage', 'hold_release') AND settles_job_id = job_id)"
            " OR (kind IN ('hold', 'top_up') AND settles_job_id IS NULL)",
            name=op.f("ck_ledger_entries_settles_own_job"),
        ),
        # One hold, one usage, one release per job at most...
        sa.UniqueConstraint("job_id", "kind", name=op.f("uq_ledger_entries_job_id_kind")),
        # ...and one settlement (usage or release) per job: never both.
        sa.UniqueConstraint("settles_job_id", name=op.f("uq_ledger_entries_settles_job_id")),
        sa.UniqueConstraint(
            "account_id", "reference", name=op.f("uq_ledger_entries_account_id_reference")
        ),
    )
    op.create_index(op.f("ix_ledger_entries_account_id_id"), "ledger_entries", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ledger_entries_account_id_id"), table_name=op.f("ledger_entries"))
    op.drop_table("ledger_entries")
    op.drop_index(op.f("ix_jobs_account_id_created_at"), table_name=op.f("jobs"))
    op.drop_table("jobs")
    op.drop_index(op.f("ix_api_keys_account_id"), table_name=op.f("api_keys"))
    op.drop_table("api_keys")
    op.drop_table("accounts")
