"""API keys: the plaintext is shown once and never stored; revoked keys stop working."""

import pytest
from sqlalchemy import text

from ledger import Ledger, LedgerConflict
from tests.ledger.factories import funded_account, new_job


async def _database_dump(ledger: Ledger) -> str:
    """Every value of every ledger table, as one string to search in."""
    async with ledger.engine.connect() as connection:
        rows: list[object] = []
        for table in ("accounts", "api_keys", "jobs", "ledger_entries"):
            rows += (await connection.execute(text(f"SELECT * FROM {table}"))).all()
    return repr(rows)


async def test_a_new_key_authenticates_as_its_account(ledger: Ledger) -> None:
    account = await funded_account(ledger)

    key, plaintext = await ledger.create_api_key(account)

    assert plaintext.startswith("kyma_") and len(plaintext) > 40
    assert key.id.startswith("key_")
    assert key.account_id == account
    assert key.prefix == plaintext[:12]
    assert not key.revoked
    assert await ledger.authenticate(plaintext) == key


async def test_only_a_hash_of_the_key_is_stored(ledger: Ledger) -> None:
    account = await funded_account(ledger)
    _, plaintext = await ledger.create_api_key(account)

    dump = await _database_dump(ledger)

    assert plaintext not in dump
    assert plaintext[12:] not in dump
    assert "key_hash" not in repr(await ledger.list_api_keys(account))


async def test_a_revoked_key_no_longer_authenticates(ledger: Ledger) -> None:
    account = await funded_account(ledger)
    key, plaintext = await ledger.create_api_key(account)
    other, other_plaintext = await ledger.create_api_key(account)

    await ledger.revoke_api_key(key.id)
    await ledger.revoke_api_key(key.id)

    assert await ledger.authenticate(plaintext) is None
    assert await ledger.authenticate(other_plaintext) == other
    [revoked, live] = await ledger.list_api_keys(account)
    assert revoked.id == key.id and revoked.revoked and revoked.revoked_at is not None
    assert live == other


async def test_unknown_and_malformed_keys_do_not_authenticate(ledger: Ledger) -> None:
    account = await funded_account(ledger)
    _, plaintext = await ledger.create_api_key(account)

    for candidate in (
        "",
        "kyma_",
        plaintext[:-1],
        plaintext + "x",
        "Bearer " + plaintext,
        plaintext.upper(),
        "kyma_" + "a" * 500,
        "kyma_ünïcode",
    ):
        assert await ledger.authenticate(candidate) is None


async def test_keys_are_listed_per_account_or_all_together(ledger: Ledger) -> None:
    first = await funded_account(ledger)
    second = await funded_account(ledger)
    mine, _ = await ledger.create_api_key(first)
    theirs, _ = await ledger.create_api_key(second)

    assert await ledger.list_api_keys(first) == [mine]
    assert {k.id for k in await ledger.list_api_keys()} == {mine.id, theirs.id}


async def test_keys_need_an_existing_account_and_revoking_needs_an_existing_key(
    ledger: Ledger,
) -> None:
    with pytest.raises(LedgerConflict):
        await ledger.create_api_key("acct_missing")
    with pytest.raises(LedgerConflict):
        await ledger.revoke_api_key("key_missing")


async def test_a_key_reads_its_own_accounts_job_in_one_query_and_nothing_else(
    ledger: Ledger,
) -> None:
    owner, other = await funded_account(ledger), await funded_account(ledger)
    key, plaintext = await ledger.create_api_key(owner)
    _, other_plaintext = await ledger.create_api_key(other)
    job = (await ledger.place_hold(new_job(owner))).job

    found = await ledger.job_for_key(plaintext, job.id)
    assert found == (key, job)
    # Another account's key sees no job at all (as if the id did not exist).
    other_found = await ledger.job_for_key(other_plaintext, job.id)
    assert other_found is not None and other_found[1] is None
    missing = await ledger.job_for_key(plaintext, "job_missing")
    assert missing == (key, None)
    # Unknown, malformed and revoked keys read nothing.
    assert await ledger.job_for_key("kyma_" + "0" * 40, job.id) is None
    assert await ledger.job_for_key("not-a-key", job.id) is None
    await ledger.revoke_api_key(key.id)
    assert await ledger.job_for_key(plaintext, job.id) is None
