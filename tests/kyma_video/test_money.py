"""Money is exact: holds are never rounded, a charge never exceeds its hold, and a charge is
rounded once, half-up, to the micro-dollar, from footage truncated to the millisecond."""

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal

import pytest

from kyma_video.money import (
    SECONDS_QUANTUM,
    USD_QUANTUM,
    billable_seconds,
    charge,
    hold_amount,
    usd,
)
from providers.catalog import CATALOG

CATALOG_RATES = sorted({spec.per_second_usd for spec in CATALOG.values()})
MILLISECOND = Decimal("0.001")


def test_amounts_are_kept_to_the_micro_dollar_and_footage_to_the_millisecond() -> None:
    assert (Decimal("0.000001"), Decimal("0.001")) == (USD_QUANTUM, SECONDS_QUANTUM)


# --- usd() -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0.1, 1.0, 0.0])
def test_usd_refuses_binary_floats(value: float) -> None:
    with pytest.raises(TypeError):
        usd(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["0.0000001", Decimal("1.0000005"), "0.12345678"])
def test_usd_refuses_amounts_finer_than_a_micro_dollar(value: str | Decimal) -> None:
    with pytest.raises(ValueError):
        usd(value)


@pytest.mark.parametrize(
    ("value", "amount"),
    [
        ("0.000001", Decimal("0.000001")),
        ("1.632825", Decimal("1.632825")),
        (Decimal("0.10"), Decimal("0.1")),
        (3, Decimal("3")),
        ("2.700000000", Decimal("2.7")),
    ],
)
def test_usd_accepts_exact_amounts_and_keeps_them_at_micro_dollar_scale(
    value: str | Decimal | int, amount: Decimal
) -> None:
    parsed = usd(value)
    assert parsed == amount
    assert parsed.as_tuple().exponent == -6


# --- holds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", CATALOG_RATES)
def test_a_hold_is_exactly_the_rate_times_the_requested_seconds(rate: Decimal) -> None:
    for seconds in range(1, 11):
        assert hold_amount(rate, seconds) == rate * seconds


@pytest.mark.parametrize(
    ("rate", "seconds", "hold"),
    [
        (Decimal("0.326565"), 5, Decimal("1.632825")),
        (Decimal("0.40959"), 10, Decimal("4.0959")),
        (Decimal("0.000001"), 7, Decimal("0.000007")),
    ],
)
def test_hold_spot_checks(rate: Decimal, seconds: int, hold: Decimal) -> None:
    assert hold_amount(rate, seconds) == hold


def test_a_hold_that_would_need_rounding_is_refused_rather_than_rounded() -> None:
    with pytest.raises(ValueError):
        hold_amount(Decimal("0.0000001"), 3)


# --- billable seconds ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "delivered", "billable"),
    [
        (5, Decimal("4.9999"), Decimal("4.999")),
        (5, Decimal("4.0119"), Decimal("4.011")),
        (5, Decimal("4.0001"), Decimal("4.000")),
        (5, Decimal("3.999999999"), Decimal("3.999")),
        (5, Decimal("0.0009"), Decimal("0")),
    ],
)
def test_billable_seconds_truncate_delivered_footage_to_the_millisecond(
    requested: int, delivered: Decimal, billable: Decimal
) -> None:
    assert billable_seconds(requested, delivered) == billable


@pytest.mark.parametrize("delivered", ["5", "5.0001", "5.5", "10", "8.0"])
def test_billable_seconds_never_exceed_the_requested_seconds(delivered: str) -> None:
    assert billable_seconds(5, Decimal(delivered)) == 5


def test_negative_delivered_footage_bills_nothing() -> None:
    assert billable_seconds(5, Decimal("-1.5")) == 0


# --- charges ---------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [Decimal("0.40959"), Decimal("0.326565"), Decimal("0.0945")])
def test_a_charge_never_exceeds_the_hold_for_footage_around_the_request(rate: Decimal) -> None:
    for requested in range(1, 11):
        hold = hold_amount(rate, requested)
        previous = Decimal(0)
        delivered = Decimal(requested) - Decimal("0.5")
        while delivered <= requested + 2:
            charged = charge(rate, requested, delivered)
            assert charged <= hold, (rate, requested, delivered)
            assert charged >= previous, "more footage never costs less"
            previous = charged
            delivered += MILLISECOND
        assert charge(rate, requested, Decimal(requested)) == hold


@pytest.mark.parametrize("rate", CATALOG_RATES)
def test_delivering_at_least_the_request_charges_exactly_the_hold(rate: Decimal) -> None:
    for requested in range(1, 11):
        for extra in ("0", "0.0004", "0.001", "1", "5"):
            delivered = Decimal(requested) + Decimal(extra)
            assert charge(rate, requested, delivered) == hold_amount(rate, requested)


def test_a_shorter_clip_costs_proportionally_less() -> None:
    assert charge(Decimal("0.1512"), 5, Decimal("2.5")) == Decimal("0.378")


def test_a_charge_is_a_micro_dollar_amount() -> None:
    charged = charge(Decimal("0.40959"), 5, Decimal("4.011"))
    assert charged == charged.quantize(USD_QUANTUM)


def test_a_charge_whose_seventh_decimal_is_five_rounds_half_up() -> None:
    # 0.0945 x 4.001 = 0.3780945: half-up gives ...095, half-even or truncation ...094.
    raw = Decimal("0.0945") * Decimal("4.001")
    assert raw == Decimal("0.3780945")
    assert raw.quantize(USD_QUANTUM, rounding=ROUND_HALF_EVEN) == Decimal("0.378094")
    assert charge(Decimal("0.0945"), 5, Decimal("4.001")) == Decimal("0.378095")


def test_a_half_micro_dollar_rounds_up_not_to_even() -> None:
    assert charge(Decimal("0.000001"), 1, Decimal("0.5")) == Decimal("0.000001")
    assert charge(Decimal("0.000001"), 1, Decimal("0.499")) == Decimal("0")


def test_a_charge_is_rounded_once_not_in_steps() -> None:
    # 0.40959 x 4.011 = 1.64286549. Rounded once: 1.642865. Rounded to 7 places first and
    # then to 6 (double rounding), it would become 1.642866.
    raw = Decimal("0.40959") * Decimal("4.011")
    assert raw == Decimal("1.64286549")
    twice = raw.quantize(Decimal("0.0000001"), rounding=ROUND_HALF_UP).quantize(
        USD_QUANTUM, rounding=ROUND_HALF_UP
    )
    assert twice == Decimal("1.642866")
    assert charge(Decimal("0.40959"), 5, Decimal("4.011")) == Decimal("1.642865")


def test_the_delivered_footage_is_truncated_not_rounded_before_the_charge_is() -> None:
    # 4.0119 s bills as 4.011 s (1.642865); rounding it to 4.012 s would charge 1.643275.
    assert charge(Decimal("0.40959"), 5, Decimal("4.0119")) == Decimal("1.642865")
    assert charge(Decimal("0.40959"), 5, Decimal("4.0119")) == charge(
        Decimal("0.40959"), 5, Decimal("4.011")
    )


def test_nothing_delivered_costs_nothing() -> None:
    assert charge(Decimal("0.2268"), 5, Decimal("0")) == 0
