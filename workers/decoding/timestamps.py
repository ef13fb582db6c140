""".NET "O"-format date-times and Kafka record timestamps -> aware UTC datetimes.

.NET writes `DateTime.ToString("O")` with 7 fractional digits (100 ns ticks) and with no
offset at all when the value's kind is unspecified, which is common after a database round
trip; upstream means UTC then. Python keeps microseconds, so the 7th digit is truncated,
never rounded: rounding could carry into the next second, minute or day and move an event
across a UTC day boundary that the read models group by.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from workers.decoding.errors import DecodeError, DecodeErrorKind

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _invalid(reason: str) -> DecodeError:
    return DecodeError(DecodeErrorKind.INVALID_VALUE, reason)


def parse_timestamp(text: str, path: str) -> datetime:
    """Return the UTC instant `text` names; `path` names the field in error reasons.

    Precondition: `text` matched the schemas' timestamp pattern
    (YYYY-MM-DDTHH:MM:SS[.f{1,7}][Z|+HH:MM|-HH:MM]), so only values, not syntax, can be
    wrong here: 2026-02-30, hour 24, a leap second, an offset of +25:00. The C parser of
    `datetime.fromisoformat` (Python >= 3.11) reads this syntax and truncates fractions
    beyond microseconds; the tests pin that behaviour down.
    """
    last = text[-1]
    if last == "Z" or (len(text) >= 25 and text[-6] in "+-"):
        source = text
    elif last == "z":
        source = text[:-1] + "Z"
    else:
        source = text + "Z"  # no offset: UTC (cheaper than replacing tzinfo afterwards)
    try:
        parsed = datetime.fromisoformat(source)
    except ValueError as exc:
        raise _invalid(f"{path}: {text!r} is not a real date-time: {exc}") from None
    if parsed.tzinfo is UTC:
        return parsed
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise _invalid(f"{path}: {text!r} is out of range once converted to UTC") from None


def from_record_timestamp(timestamp_ms: int) -> datetime:
    """The Kafka record timestamp (ms since the epoch) as a UTC datetime, exactly.

    Kafka reports -1 when a record has no timestamp; an event that needs this time has none.
    """
    if type(timestamp_ms) is not int or timestamp_ms < 0:
        raise _invalid(
            f"record timestamp {timestamp_ms!r} is missing or negative, and the payload "
            "carries no time of its own"
        )
    seconds, milliseconds = divmod(timestamp_ms, 1000)
    try:
        return EPOCH + timedelta(0, seconds, milliseconds * 1000)  # positional: faster
    except OverflowError:
        raise _invalid(f"record timestamp {timestamp_ms!r} is out of range") from None
