"""Exact money: every amount is a ``Decimal`` in US dollars, rounded in exactly one place.

Rates in the catalog carry at most six decimal places and durations are whole seconds, so a
hold (rate x requested seconds) is exact and never rounded. Only a usage charge for a
fractional delivered duration produces more digits; :func:`charge` rounds it, half-up, to
the micro-dollar (six places), which is also the ledger's column scale.
"""

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

#: One micro-dollar: the ledger stores amounts as NUMERIC(18, 6).
USD_QUANTUM = Decimal("0.000001")
#: Footage is billed to the millisecond; a container's duration is truncated to this.
SECONDS_QUANTUM = Decimal("0.001")


def usd(value: Decimal | int | str) -> Decimal:
    """Parse an exact amount; refuses binary floats, which cannot represent cents exactly."""
    if isinstance(value, float):  # typing forbids it; callers at run time may not respect that
        raise TypeError("money must not be a float")
    amount = Decimal(value)
    if amount != amount.quantize(USD_QUANTUM):
        raise ValueError(f"{value} has more precision than a micro-dollar")
    return amount.quantize(USD_QUANTUM)


def hold_amount(per_second_usd: Decimal, requested_seconds: int) -> Decimal:
    """The amount held at admission: rate x requested seconds, exact by construction."""
    return usd(per_second_usd * requested_seconds)


def billable_seconds(requested_seconds: int, delivered_seconds: Decimal) -> Decimal:
    """Seconds a customer pays for: what they asked for, or less if less was delivered."""
    delivered = delivered_seconds.quantize(SECONDS_QUANTUM, rounding=ROUND_DOWN)
    return min(Decimal(requested_seconds), max(delivered, Decimal(0)))


def charge(per_second_usd: Decimal, requested_seconds: int, delivered_seconds: Decimal) -> Decimal:
    """The usage charge on success: the single place where money is rounded (half-up, 6 dp).

    Never exceeds :func:`hold_amount` for the same request, because billable seconds never
    exceed the requested seconds.
    """
    raw = per_second_usd * billable_seconds(requested_seconds, delivered_seconds)
    return raw.quantize(USD_QUANTUM, rounding=ROUND_HALF_UP)
