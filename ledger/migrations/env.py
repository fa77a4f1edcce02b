"""Alembic environment for the ledger.

Two ways in: :func:`ledger.migrate` hands over an open connection (``config.attributes``) and
this runs on it synchronously; the ``alembic`` command line has none, so this opens its own
async engine on the URL from the config or, failing that, from ``KYMA_DATABASE_URL``.
"""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from kyma_video.settings import get_settings
from ledger._database import create_engine
from ledger._schema import Base

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and "connection" not in config.attributes:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or get_settings().resolved_database_url


def _run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode recreates the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline(_database_url())
elif (connection := config.attributes.get("connection")) is not None:
    _run_on(connection)
else:
    asyncio.run(_run_online(_database_url()))
