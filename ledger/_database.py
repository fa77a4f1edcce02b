"""Engines and migrations: the only way the ledger reaches a database.

SQLite is tuned so that concurrent writers queue up instead of failing: every transaction
starts with ``BEGIN IMMEDIATE`` (it takes the write lock up front, so a transaction never
upgrades a read lock into a write lock halfway, which SQLite resolves by failing one side
with "database is locked"), and ``busy_timeout`` makes the waiting side wait. This follows
SQLAlchemy's documented recipe for taking transaction control away from the sqlite3 driver.
"""

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

#: How long a SQLite writer waits for the lock before giving up, in milliseconds.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: PostgreSQL connections a process keeps open; a burst beyond them waits for one to be free.
#: No extra "overflow" connections: SQLAlchemy closes those as soon as they are returned, so a
#: process busier than its pool (its default was 5 + 10 overflow) opened and closed
#: connections all the time: TCP, authentication, and asyncpg's prepared statements, which
#: live per connection. Waiting a moment for a pooled connection is far cheaper.
POOL_SIZE = 20
#: A pooled PostgreSQL connection idle at least this long is pinged before it is handed out.
IDLE_PING_AFTER_SECONDS = 5.0
_IDLE_SINCE = "kyma_idle_since"
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_engine(url: str) -> AsyncEngine:
    """Create an async engine configured for the ledger.

    Args:
        url: An async SQLAlchemy URL (``sqlite+aiosqlite:///path`` or
            ``postgresql+asyncpg://user@host/db``). A SQLite file's directory is created.

    Returns:
        The engine; dispose of it (or close the owning ``Ledger``) when done.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)
        _ping_idle_connections(engine)
        return engine
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url)
    _serialize_sqlite_writers(engine)
    return engine


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Check a pooled connection that sat idle for a while before handing it out.

    This replaces ``pool_pre_ping``, which pings on *every* checkout, and for asyncpg a ping is
    three round trips (SQLAlchemy wraps it in BEGIN ... ROLLBACK): on the API's hot paths that
    was half of all database round trips. A connection goes stale while it sits unused (the
    database restarted or failed over, a proxy dropped an idle connection), so only those are
    pinged; a dead one is replaced before use. A connection that dies while in use fails that
    one statement, and SQLAlchemy then recognises the disconnect and discards the whole pool,
    exactly as it would with ``pool_pre_ping``.
    """
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as error:
            # The pool discards this connection and checks out another (a fresh one if needed).
            raise DisconnectionError(f"a pooled connection went stale: {error}") from error


def _serialize_sqlite_writers(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the driver from issuing its own (deferred) BEGIN; _on_begin issues ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def alembic_config(url: str | None = None) -> Config:
    """Build the Alembic configuration in code, so no ``alembic.ini`` is needed in the CWD.

    Args:
        url: The database to migrate; when omitted, ``env.py`` falls back to the settings.

    Returns:
        A config whose script location is this package's migrations directory.
    """
    config = Config()
    config.set_main_option("script_location", MIGRATIONS_DIR.as_posix())
    if url is not None:
        # ConfigParser interpolates '%', which percent-encoded passwords contain.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def _run_alembic(url: str, operation: Callable[[Config], None]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_with_connection, url, operation)
    finally:
        await engine.dispose()


def _with_connection(connection: Connection, url: str, operation: Callable[[Config], None]) -> None:
    config = alembic_config(url)
    # env.py migrates on this connection (inside our transaction) instead of opening its own.
    config.attributes["connection"] = connection
    operation(config)


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (``alembic upgrade head``).

    Args:
        url: An async SQLAlchemy URL, as for :func:`create_engine`.
    """
    await _run_alembic(url, lambda config: command.upgrade(config, "head"))


async def downgrade(url: str, revision: str = "base") -> None:
    """Undo migrations down to ``revision`` (by default, all of them).

    Args:
        url: An async SQLAlchemy URL, as for :func:`create_engine`.
        revision: The Alembic revision to end at.
    """
    await _run_alembic(url, lambda config: command.downgrade(config, revision))
