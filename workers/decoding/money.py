"""JSON numbers -> exact, canonical `Decimal` amounts.

Amounts arrive as a float (fast parse path), an int, or a `Decimal` (exact parse path); all
three yield the same `Decimal` for the same literal, because the fast path is only taken when
every literal has at most 15 significant digits, which `repr` of a float reproduces exactly.
"""

from __future__ import annotations

from decimal import Decimal

from workers.decoding.errors import DecodeError, DecodeErrorKind
from workers.events import canonical_money

MAX_FRACTION_DIGITS = 10
"""Significant digits after the point. With amounts below 10^15 (the schemas' bound) a value
then has at most 25 significant digits: within the 28 of Python's default decimal context and
of a C# decimal, so `canonical_money` and sums stay exact."""

ZERO = canonical_money(Decimal(0))


_CACHE_LIMIT = 4096
_canonical_cache: dict[int | float | Decimal, Decimal] = {}
"""Canonical amount by numeric value. Sound because `canonical_money` depends on the value
alone and equal numbers hash alike across int, float and Decimal (150 == 150.0 ==
Decimal("150.00")); a float and a Decimal only compare equal when their values are
identical. Prices repeat a lot, so most conversions become one dictionary lookup."""


def to_money(value: int | float | Decimal, path: str) -> Decimal:
    """Return `value` as a canonical amount; `path` names the field in error reasons.

    Precondition: the schema checked that `value` is a number, >= 0 and < 10^15.
    """
    cached = _canonical_cache.get(value)
    if cached is not None:
        return cached
    amount = Decimal(repr(value)) if type(value) is float else Decimal(value)
    if not amount:
        return ZERO  # also turns -0.0 into 0.00
    _, digits, exponent = amount.as_tuple()
    assert isinstance(exponent, int)  # finite: the schema compared it with bounds
    if exponent < -MAX_FRACTION_DIGITS:
        trailing_zeros = len(digits) - len(bytes(digits).rstrip(b"\0"))
        if -exponent - trailing_zeros > MAX_FRACTION_DIGITS:
            raise DecodeError(
                DecodeErrorKind.INVALID_VALUE,
                f"{path}: {amount} has more than {MAX_FRACTION_DIGITS} decimal places",
            )
    canonical = canonical_money(amount)
    if len(_canonical_cache) >= _CACHE_LIMIT:
        _canonical_cache.clear()
    _canonical_cache[value] = canonical
    return canonical
