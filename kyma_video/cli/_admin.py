"""Operator commands that work on the ledger directly: keys, top-ups, migrations."""

import asyncio
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import Annotated, TypeVar

import typer

from kyma_video.cli._app import app, balance, keys
from kyma_video.settings import get_settings
from ledger import Ledger, migrate

T = TypeVar("T")


def with_ledger(work: Callable[[Ledger], Awaitable[T]]) -> T:
    async def run() -> T:
        url = get_settings().resolved_database_url
        if url.startswith("sqlite"):
            await migrate(url)
        ledger = Ledger.from_url(url)
        try:
            return await work(ledger)
        finally:
            await ledger.close()

    return asyncio.run(run())


def money(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise typer.BadParameter(f"{value!r} is not an amount in dollars") from None
    if amount < 0 or amount != amount.quantize(Decimal("0.000001")):
        raise typer.BadParameter("amounts are non-negative dollars with at most 6 decimals")
    return amount


@app.command("migrate")
def migrate_command() -> None:
    """Apply the ledger's database migrations (a deploy step for PostgreSQL)."""
    url = get_settings().resolved_database_url
    asyncio.run(migrate(url))
    typer.echo("ledger schema is up to date")


@keys.command("create")
def create_key(
    balance_usd: Annotated[str, typer.Option("--balance", help="Opening balance in USD.")] = "0",
    tier: Annotated[str, typer.Option(help="Rate-limit tier (see KYMA_TIERS).")] = "default",
    name: Annotated[str, typer.Option(help="Account name.")] = "account",
    account: Annotated[
        str | None, typer.Option(help="Add a key to this existing account instead.")
    ] = None,
) -> None:
    """Create an account (or use --account) and a new API key; the key is shown once."""
    opening = money(balance_usd)

    async def create(ledger: Ledger) -> tuple[str, str, str]:
        account_id = account
        if account_id is None:
            account_id = (await ledger.create_account(name, balance=opening, tier=tier)).id
        record, plaintext = await ledger.create_api_key(account_id)
        return account_id, record.id, plaintext

    account_id, key_id, plaintext = with_ledger(create)
    typer.echo(f"account: {account_id}\nkey id:  {key_id}\napi key: {plaintext}")
    typer.echo("The key is shown once; only its hash is stored.", err=True)


@keys.command("list")
def list_keys(
    account: Annotated[str | None, typer.Option(help="Only this account's keys.")] = None,
) -> None:
    """List API keys (prefixes only; keys themselves are never stored)."""
    records = with_ledger(lambda ledger: ledger.list_api_keys(account))
    for record in records:
        state = f"revoked {record.revoked_at:%Y-%m-%d}" if record.revoked_at else "active"
        typer.echo(f"{record.id}  {record.account_id}  {record.prefix}…  {state}")


@keys.command("revoke")
def revoke_key(key_id: str) -> None:
    """Revoke an API key: it stops authenticating at once."""
    with_ledger(lambda ledger: ledger.revoke_api_key(key_id))
    typer.echo(f"revoked {key_id}")


@balance.command("top-up")
def top_up(
    account: str,
    amount: str,
    reference: Annotated[
        str | None, typer.Option(help="Idempotency reference: the same one never credits twice.")
    ] = None,
) -> None:
    """Credit an account."""
    credit = money(amount)
    if credit == 0:
        raise typer.BadParameter("a top-up must be positive")
    new_balance = with_ledger(lambda ledger: ledger.top_up(account, credit, reference=reference))
    typer.echo(f"{account}: {new_balance} USD")


@balance.command("show")
def show_balance(account: str) -> None:
    """An account's balance."""
    typer.echo(f"{account}: {with_ledger(lambda ledger: ledger.balance(account))} USD")
