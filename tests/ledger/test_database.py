"""The schema exists only through migrations, and the engine is tuned for each backend."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from ledger import create_engine, migrate
from ledger._database import downgrade
from ledger._schema import Base
from tests.fixtures.database import sqlite_url

REPO_ROOT = Path(__file__).resolve().parents[2]
LEDGER_TABLES = {"accounts", "api_keys", "jobs", "ledger_entries", "rate_limit_windows"}
T = TypeVar("T")


async def _on(url: str, look: Callable[[Connection], T]) -> T:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(look)
    finally:
        await engine.dispose()


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


def _schema_drift(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_migrations_build_the_schema_from_an_empty_database(
    empty_database_url: str,
) -> None:
    assert await _on(empty_database_url, _tables) == set()

    await migrate(empty_database_url)

    assert await _on(empty_database_url, _tables) == LEDGER_TABLES | {"alembic_version"}


async def test_migrating_twice_changes_nothing(database_url: str) -> None:
    await migrate(database_url)

    assert await _on(database_url, _tables) == LEDGER_TABLES | {"alembic_version"}


async def test_the_migrated_schema_is_exactly_what_the_models_describe(
    database_url: str,
) -> None:
    assert await _on(database_url, _schema_drift) == []


async def test_downgrade_removes_every_table_and_upgrade_restores_them(
    database_url: str,
) -> None:
    await downgrade(database_url)

    assert await _on(database_url, _tables) <= {"alembic_version"}

    await migrate(database_url)

    assert await _on(database_url, _tables) == LEDGER_TABLES | {"alembic_version"}


async def test_operators_can_migrate_with_the_alembic_command_line(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "ops" / "kyma.db")
    env = {**os.environ, "KYMA_DATABASE_URL": url}

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "alembic",
        "-c",
        "ledger/alembic.ini",
        "upgrade",
        "head",
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await process.communicate()

    assert process.returncode == 0, output.decode()
    assert await _on(url, _tables) == LEDGER_TABLES | {"alembic_version"}


async def test_sqlite_files_get_their_directory_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "not" / "yet" / "there.db")

    def pragmas(connection: Connection) -> tuple[str, int, int]:
        def read(name: str) -> Any:
            return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

        return read("journal_mode"), read("foreign_keys"), read("busy_timeout")

    journal_mode, foreign_keys, busy_timeout = await _on(url, pragmas)

    assert (tmp_path / "not" / "yet" / "there.db").exists()
    assert journal_mode == "wal"
    assert foreign_keys == 1
    assert busy_timeout > 0


async def test_concurrent_sqlite_writers_wait_for_each_other_instead_of_failing(
    tmp_path: Path,
) -> None:
    url = sqlite_url(tmp_path / "race.db")
    await migrate(url)
    engines = [create_engine(url) for _ in range(2)]
    first_has_written = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> None:
        async with engines[0].begin() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO accounts (id, name, tier, balance, created_at) "
                "VALUES ('acct_a', 'a', 'default', 0, '2025-01-01 00:00:00')"
            )
            first_has_written.set()
            await release_first.wait()

    async def second() -> None:
        await first_has_written.wait()
        # BEGIN IMMEDIATE blocks here (busy_timeout) until the first writer commits.
        async with engines[1].begin() as connection:
            await connection.exec_driver_sql(
                "INSERT INTO accounts (id, name, tier, balance, created_at) "
                "VALUES ('acct_b', 'b', 'default', 0, '2025-01-01 00:00:00')"
            )

    try:
        writer = asyncio.create_task(first())
        waiter = asyncio.create_task(second())
        await first_has_written.wait()
        await asyncio.sleep(0.2)
        assert not waiter.done()
        release_first.set()
        await asyncio.gather(writer, waiter)
    finally:
        for engine in engines:
            await engine.dispose()

    def count(connection: Connection) -> int:
        return int(connection.exec_driver_sql("SELECT count(*) FROM accounts").scalar_one())

    assert await _on(url, count) == 2
