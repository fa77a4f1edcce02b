"""Accounts and top-ups: every balance change is an entry, and a payment is credited once."""

import asyncio
from decimal import Decimal

import pytest

from ledger import EntryKind, Ledger, LedgerConflict
from tests.ledger.factories import assert_balanced, funded_account


async def test_an_opening_balance_is_posted_as_a_top_up(ledger: Ledger) -> None:
    account = await ledger.create_account("Acme", balance=Decimal("25.5"), tier="pro")

    assert account.id.startswith("acct_") and len(account.id) == len("acct_") + 24
    assert (account.name, account.tier, account.balance) == ("Acme", "pro", Decimal("25.5"))
    assert account.created_at.utcoffset() is not None
    [entry] = await ledger.entries(account.id)
    assert entry.kind is EntryKind.TOP_UP
    assert entry.amount == entry.balance_delta == entry.balance_after == Decimal("25.5")
    await assert_balanced(ledger, account.id)


async def test_an_empty_account_has_no_entries(ledger: Ledger) -> None:
    account = await ledger.create_account("Acme")

    assert account.tier == "default"
    assert await ledger.entries(account.id) == []
    assert await ledger.audit(account.id) == (Decimal(0), Decimal(0))
    assert await ledger.get_account(account.id) == account


async def test_opening_balances_must_be_exact_and_not_negative(ledger: Ledger) -> None:
    with pytest.raises(ValueError):
        await ledger.create_account("Acme", balance=Decimal("-1"))
    with pytest.raises(ValueError):
        await ledger.create_account("Acme", balance=Decimal("0.0000001"))


async def test_a_top_up_credits_the_account(ledger: Ledger) -> None:
    account = await funded_account(ledger, "1")

    balance = await ledger.top_up(account, Decimal("2.000001"))

    assert balance == Decimal("3.000001") == await ledger.balance(account)
    top_up = (await ledger.entries(account))[-1]
    assert (top_up.amount, top_up.balance_after) == (Decimal("2.000001"), balance)
    await assert_balanced(ledger, account)


async def test_a_top_up_reference_is_credited_once(ledger: Ledger) -> None:
    account = await funded_account(ledger, "1")
    await ledger.top_up(account, Decimal("5"), reference="pi_123")
    await ledger.top_up(account, Decimal("1"))

    again = await ledger.top_up(account, Decimal("5"), reference="pi_123")

    assert again == Decimal("7")
    assert [e.reference for e in await ledger.entries(account)] == [None, "pi_123", None]


async def test_a_reference_is_per_account(ledger: Ledger) -> None:
    first = await funded_account(ledger, "0")
    second = await funded_account(ledger, "0")

    await ledger.top_up(first, Decimal("5"), reference="pi_123")
    await ledger.top_up(second, Decimal("5"), reference="pi_123")

    assert await ledger.balance(first) == await ledger.balance(second) == Decimal("5")


async def test_reusing_a_reference_for_another_amount_is_a_conflict(ledger: Ledger) -> None:
    account = await funded_account(ledger, "0")
    await ledger.top_up(account, Decimal("5"), reference="pi_123")

    with pytest.raises(LedgerConflict):
        await ledger.top_up(account, Decimal("50"), reference="pi_123")

    assert await ledger.balance(account) == Decimal("5")


async def test_racing_top_ups_with_one_reference_credit_once(database_url: str) -> None:
    ledgers = [Ledger.from_url(database_url) for _ in range(4)]
    try:
        account = await funded_account(ledgers[0], "0")

        balances = await asyncio.gather(
            *(ledgers[i % 4].top_up(account, Decimal("5"), reference="pi_1") for i in range(8))
        )

        assert set(balances) == {Decimal("5")}
        assert await assert_balanced(ledgers[0], account) == Decimal("5")
    finally:
        for ledger in ledgers:
            await ledger.close()


@pytest.mark.parametrize("amount", ["0", "-1", "0.0000001"])
async def test_a_top_up_must_be_positive_and_exact(ledger: Ledger, amount: str) -> None:
    account = await funded_account(ledger, "1")

    with pytest.raises(ValueError):
        await ledger.top_up(account, Decimal(amount))


async def test_unknown_accounts_are_conflicts(ledger: Ledger) -> None:
    assert await ledger.get_account("acct_missing") is None
    with pytest.raises(LedgerConflict):
        await ledger.balance("acct_missing")
    with pytest.raises(LedgerConflict):
        await ledger.top_up("acct_missing", Decimal("1"))
    with pytest.raises(LedgerConflict):
        await ledger.audit("acct_missing")


async def test_balances_keep_every_micro_dollar(ledger: Ledger) -> None:
    # 0.1 + 0.2 is the classic float failure; NUMERIC affinity on SQLite would commit it.
    account = await funded_account(ledger, "0.1")

    await ledger.top_up(account, Decimal("0.2"))
    for _ in range(10):
        await ledger.top_up(account, Decimal("0.000001"))

    assert await ledger.balance(account) == Decimal("0.300010")
    big = await ledger.create_account("whale", balance=Decimal("999999999999.999999"))
    assert await ledger.balance(big.id) == Decimal("999999999999.999999")
