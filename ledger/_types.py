"""Column types that behave identically on PostgreSQL and SQLite.

SQLite has no fixed-point type: a column declared NUMERIC stores a value like ``0.1`` as a
binary float, and ``balance - 0.1`` is then computed in floating point. The ledger cannot
accept that, so on SQLite every fixed-point column is stored as a scaled integer (micro-dollars
for money, milliseconds for durations). Integer arithmetic and comparison are exact, so the
conditional debit ``balance = balance - :e WHERE balance >= :e`` means the same thing on both
backends. PostgreSQL keeps a real ``NUMERIC(p, s)``, which is what operators query there.

SQLite also stores datetimes as naive text; the ledger always writes UTC and re-attaches the
zone on read, so callers see timezone-aware UTC datetimes from either backend.
"""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

from kyma_video.money import SECONDS_QUANTUM, USD_QUANTUM


def _exponent(quantum: Decimal) -> int:
    return -int(quantum.as_tuple().exponent)


class FixedDecimal(TypeDecorator[Decimal]):
    """An exact decimal with ``scale`` places: NUMERIC on PostgreSQL, scaled BIGINT on SQLite.

    Binding a value with more places than ``scale`` raises instead of rounding: rounding is
    :mod:`kyma_video.money`'s job, and a silent database rounding would break the ledger's sum.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, quantum: Decimal) -> None:
        super().__init__()
        self.precision = precision
        self.quantum = quantum
        self.scale = _exponent(quantum)
        self._limit = Decimal(10) ** (precision - self.scale)

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError("exact decimal columns refuse binary floats")
        exact = Decimal(value)
        if exact != exact.quantize(self.quantum):
            raise ValueError(f"{value} has more than {self.scale} decimal places")
        if abs(exact) >= self._limit:
            raise ValueError(f"{value} does not fit NUMERIC({self.precision}, {self.scale})")
        if dialect.name == "sqlite":
            return int(exact.scaleb(self.scale))
        return exact.quantize(self.quantum)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return Decimal(int(value)).scaleb(-self.scale).quantize(self.quantum)
        return Decimal(value).quantize(self.quantum)


class Usd(FixedDecimal):
    """Money: NUMERIC(18, 6) dollars on PostgreSQL, integer micro-dollars on SQLite."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(18, USD_QUANTUM)


class Seconds(FixedDecimal):
    """A media duration: NUMERIC(10, 3) on PostgreSQL, integer milliseconds on SQLite."""

    cache_ok = True

    def __init__(self) -> None:
        super().__init__(10, SECONDS_QUANTUM)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC instant on both backends; naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware datetimes")
        instant = value.astimezone(UTC)
        return instant.replace(tzinfo=None) if dialect.name == "sqlite" else instant

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # pragma: no cover - drivers return datetimes
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    """The one clock the ledger reads, so every timestamp it writes is aware UTC."""
    return datetime.now(UTC)
