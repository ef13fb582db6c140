"""GUIDs in any .NET form become one canonical form; keys are checked against the payload."""

from __future__ import annotations

import pytest

from tests.unit.decoding.upstream import RECORD_TS_MS, raw
from workers.decoding import DecodeError, DecodeErrorKind, decode
from workers.decoding.ids import canonical_uuid, optional_uuid, uuid_in_key
from workers.events import EventType

CANONICAL = "5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f"


@pytest.mark.parametrize(
    "text",
    [
        "5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f",
        "5F0C8B2E-1D3A-4C6B-8E9F-0A1B2C3D4E5F",
        "5f0c8b2e1d3a4c6b8e9f0a1b2c3d4e5f",
        "5F0C8B2E1D3A4C6B8E9F0A1B2C3D4E5F",
        "5f0C8b2E-1d3A-4c6B-8e9F-0a1B2c3D4e5F",
    ],
)
def test_every_form_and_case_becomes_lower_8_4_4_4_12(text: str) -> None:
    assert canonical_uuid(text, "$.id") == CANONICAL


@pytest.mark.parametrize(
    "text", ["00000000-0000-0000-0000-000000000000", "00000000000000000000000000000000"]
)
def test_the_nil_uuid_is_not_an_id(text: str) -> None:
    with pytest.raises(DecodeError) as caught:
        canonical_uuid(text, "$.id")

    assert caught.value.kind is DecodeErrorKind.INVALID_VALUE
    assert "$.id: the nil UUID" in caught.value.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [(None, None), ("00000000-0000-0000-0000-000000000000", None), (CANONICAL.upper(), CANONICAL)],
)
def test_optional_ids_treat_null_and_nil_as_unknown(text: str | None, expected: str | None) -> None:
    assert optional_uuid(text) == expected


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (CANONICAL.encode(), CANONICAL),
        (CANONICAL.replace("-", "").upper().encode(), CANONICAL),
        (b"customer-123", None),
        (b"5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5g", None),
        (b"5f0c8b2e1d3a-4c6b-8e9f-0a1b2c3d4e5f", None),
        (b"\xff" * 32, None),
        (b"", None),
    ],
)
def test_keys_that_look_like_uuids(key: bytes, expected: str | None) -> None:
    assert uuid_in_key(key) == expected


@pytest.mark.parametrize(
    "key",
    [
        b"5f0c8b2e1d3a4c6b8e9f0a1b2c3d4e5f",
        b"5F0C8B2E1D3A4C6B8E9F0A1B2C3D4E5F",
        b"5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f",
        b"5F0C8B2E-1D3A-4C6B-8E9F-0A1B2C3D4E5F",
        bytearray(b"5f0c8b2e1d3a4c6b8e9f0a1b2c3d4e5f"),
    ],
    ids=repr,
)
def test_a_matching_key_in_any_form_is_accepted(key: bytes) -> None:
    for fixture, event_type in [
        ("reservation-created.v1.producer", EventType.RESERVATION_CREATED),
        ("reservation-expired.v3.producer", EventType.RESERVATION_EXPIRED),
    ]:
        event = decode(event_type, raw(fixture), key, [], RECORD_TS_MS)
        assert event.seat_id == CANONICAL  # type: ignore[union-attr]


def test_a_key_naming_another_seat_is_refused() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(
            EventType.RESERVATION_EXPIRED,
            raw("reservation-expired.v3.producer"),
            b"6a1d9c3f2e4b4d7c9f0a1b2c3d4e5f60",
            [],
            RECORD_TS_MS,
        )

    assert caught.value.kind is DecodeErrorKind.INVALID_VALUE
    assert caught.value.reason == (
        "key '6a1d9c3f2e4b4d7c9f0a1b2c3d4e5f60' does not match "
        "$.seatId '5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f'"
    )
    assert caught.value.schema_version == "reservation-expired/v3"
