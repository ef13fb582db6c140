"""`utc_iso` is the read models' one spelling of an instant (seat hashes' expires_at)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from workers.projection.model import utc_iso

OFFSETS = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60)
)


@given(
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=OFFSETS | st.just(UTC),
    )
)
def test_spelled_as_strftime_in_utc(moment: datetime) -> None:
    expected = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert utc_iso(moment) == expected


def test_microseconds_and_z_always_written() -> None:
    assert utc_iso(datetime(2026, 4, 1, 12, tzinfo=UTC)) == "2026-04-01T12:00:00.000000Z"
    plus_two = timezone(timedelta(hours=2))
    assert utc_iso(datetime(2026, 4, 1, 1, 0, 0, 5, plus_two)) == "2026-03-31T23:00:00.000005Z"
