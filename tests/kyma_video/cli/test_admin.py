"""Operator commands on the ledger, run through the real command-line parser."""

import re
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kyma_video.cli import app
from kyma_video.settings import Settings, get_settings


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("KYMA_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def run(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_help_lists_every_setting_with_its_default(cli: CliRunner):
    text = run(cli, "--help")
    for name in Settings.model_fields:
        assert f"KYMA_{name.upper()} [" in text
    assert "KYMA_JOB_TIMEOUT_SECONDS [600]" in text


def test_keys_are_created_listed_and_revoked_and_balances_topped_up(cli: CliRunner):
    run(cli, "migrate")
    created = run(cli, "keys", "create", "--balance", "12.5", "--tier", "pro", "--name", "acme")
    account = re.search(r"account: (\S+)", created).group(1)
    key_id = re.search(r"key id:  (\S+)", created).group(1)
    assert re.search(r"api key: kyma_\S+", created)

    listed = run(cli, "keys", "list", "--account", account)
    assert key_id in listed and "active" in listed
    assert "kyma_" in listed  # the prefix, never the whole key
    plaintext = re.search(r"api key: (\S+)", created).group(1)
    assert plaintext not in listed

    assert f"{account}: 20.000000 USD" in run(
        cli, "balance", "top-up", account, "7.5", "--reference", "invoice-1"
    )
    # The same reference never credits twice.
    run(cli, "balance", "top-up", account, "7.5", "--reference", "invoice-1")
    assert Decimal(run(cli, "balance", "show", account).split()[1]) == Decimal("20")

    run(cli, "keys", "revoke", key_id)
    assert "revoked" in run(cli, "keys", "list", "--account", account)


def test_bad_amounts_are_refused(cli: CliRunner):
    result = cli.invoke(app, ["keys", "create", "--balance", "ten"])
    assert result.exit_code != 0
    assert "not an amount" in result.output
