"""Records are plain, frozen values; money in them is never a float."""

from decimal import Decimal

import pytest
from pydantic import ValidationError

from ledger import ApiKeyRecord, NewJob
from tests.ledger.factories import new_job


def test_a_new_job_refuses_a_float_rate() -> None:
    fields = new_job("acct_1").model_dump()

    with pytest.raises(ValidationError, match="float"):
        NewJob.model_validate({**fields, "per_second_usd": 0.0945})

    assert NewJob.model_validate({**fields, "per_second_usd": "0.0945"}).per_second_usd == (
        Decimal("0.0945")
    )


@pytest.mark.parametrize("field", ["duration", "upstream_duration"])
def test_a_new_job_needs_a_positive_duration(field: str) -> None:
    with pytest.raises(ValidationError):
        NewJob.model_validate({**new_job("acct_1").model_dump(), field: 0})


def test_records_are_frozen() -> None:
    job = new_job("acct_1")

    with pytest.raises(ValidationError):
        job.duration = 10  # type: ignore[misc]


def test_an_api_key_record_carries_neither_plaintext_nor_hash() -> None:
    assert set(ApiKeyRecord.model_fields) == {
        "id",
        "account_id",
        "prefix",
        "created_at",
        "revoked_at",
    }
