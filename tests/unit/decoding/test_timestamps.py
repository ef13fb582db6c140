""".NET "O" times: truncation to microseconds, offsets to UTC, impossible values refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from workers.decoding import DecodeError, DecodeErrorKind
from workers.decoding.timestamps import from_record_timestamp, parse_timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-04-06T13:00:00.1234567Z", datetime(2026, 4, 6, 13, 0, 0, 123456, tzinfo=UTC)),
        ("2026-04-06T13:00:00.1234567", datetime(2026, 4, 6, 13, 0, 0, 123456, tzinfo=UTC)),
        ("2026-12-31T23:59:59.9999999", datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        ("2026-04-06T13:00:00Z", datetime(2026, 4, 6, 13, 0, tzinfo=UTC)),
        ("2026-04-06T13:00:00", datetime(2026, 4, 6, 13, 0, tzinfo=UTC)),
        ("2026-04-06T13:00:00.5", datetime(2026, 4, 6, 13, 0, 0, 500000, tzinfo=UTC)),
        ("2026-04-06t13:00:00.12z", datetime(2026, 4, 6, 13, 0, 0, 120000, tzinfo=UTC)),
        ("2026-04-06T13:00:00+00:00", datetime(2026, 4, 6, 13, 0, tzinfo=UTC)),
        ("2026-04-06T13:00:00-00:00", datetime(2026, 4, 6, 13, 0, tzinfo=UTC)),
        ("2026-04-06T15:30:00.0000001+02:30", datetime(2026, 4, 6, 13, 0, tzinfo=UTC)),
        ("2026-04-05T20:00:00.9999999-05:00", datetime(2026, 4, 6, 1, 0, 0, 999999, tzinfo=UTC)),
        ("2026-04-07T00:30:00+14:00", datetime(2026, 4, 6, 10, 30, tzinfo=UTC)),
    ],
    ids=str,
)
def test_times_become_aware_utc_truncated_to_microseconds(text: str, expected: datetime) -> None:
    moment = parse_timestamp(text, "$.t")

    assert moment == expected
    assert moment.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("2026-02-30T00:00:00Z", "day is out of range for month"),
        ("2025-02-29T00:00:00Z", "day is out of range for month"),
        ("2026-04-31T00:00:00", "day is out of range for month"),
        ("2026-00-10T00:00:00Z", "month must be in 1..12"),
        ("2026-04-06T24:00:00Z", "hour must be in 0..23"),
        ("2026-04-06T13:60:00Z", "minute must be in 0..59"),
        ("2026-04-06T13:00:60Z", "second must be in 0..59"),
        ("0000-01-01T00:00:00Z", "not a real date-time"),
        ("2026-04-06T13:00:00+24:00", "not a real date-time"),
        ("9999-12-31T23:30:00-01:00", "out of range once converted to UTC"),
    ],
    ids=str,
)
def test_impossible_times_are_invalid_values(text: str, says: str) -> None:
    with pytest.raises(DecodeError) as caught:
        parse_timestamp(text, "$.t")

    assert caught.value.kind is DecodeErrorKind.INVALID_VALUE
    assert caught.value.reason.startswith(f"$.t: {text!r}")
    assert says in caught.value.reason


def test_leap_day_exists_in_leap_years() -> None:
    assert parse_timestamp("2028-02-29T12:00:00Z", "$") == datetime(2028, 2, 29, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("ms", "expected"),
    [
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (1775481301500, datetime(2026, 4, 6, 13, 15, 1, 500000, tzinfo=UTC)),
        (1775481301999, datetime(2026, 4, 6, 13, 15, 1, 999000, tzinfo=UTC)),
    ],
)
def test_record_timestamps_are_exact_utc(ms: int, expected: datetime) -> None:
    moment = from_record_timestamp(ms)

    assert moment == expected
    assert moment.tzinfo is UTC


@pytest.mark.parametrize("ms", [-1, -1000, 10**20], ids=str)
def test_missing_or_absurd_record_timestamps_are_invalid(ms: int) -> None:
    with pytest.raises(DecodeError) as caught:
        from_record_timestamp(ms)

    assert caught.value.kind is DecodeErrorKind.INVALID_VALUE
    assert f"record timestamp {ms}" in caught.value.reason
