"""Every upstream shape decodes to the exact canonical event, through either parse path."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.unit.decoding.upstream import RECORD_TS_MS, changed, raw
from workers.decoding import decode
from workers.events import (
    Event,
    EventType,
    GeneratedSeat,
    OrderItem,
    OrderPlaced,
    ReservationCreated,
    ReservationExpired,
    SeatsGenerated,
)

SEAT = "5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f"
SEAT_KEY_N = b"5f0c8b2e1d3a4c6b8e9f0a1b2c3d4e5f"
CONCERT = "3d6f4e2a-8b1c-4a5d-9e7f-6a2b1c0d9e8f"
RESERVATION = "0b8c5e2a-3f4d-4e1a-9b6c-2d7e8f9a0b1c"
ORDER = "9b2e4f1a-7c3d-4e5b-8a6f-1d0c2b3a4e5f"

# (fixture, topic, Kafka key, expected event)
CASES: list[tuple[str, EventType, bytes | None, Event]] = [
    (
        "reservation-created.v1.producer",
        EventType.RESERVATION_CREATED,
        SEAT_KEY_N,
        ReservationCreated(
            message_id="7c9e6679-7425-40de-944b-e07fc1f90ae7",
            reservation_id=RESERVATION,
            customer_id="customer-123",
            seat_id=SEAT,
            seat_number="VIP-3-12",
            section="VIP",
            base_price=Decimal("0.00"),
            created_at=datetime(2026, 4, 6, 13, 0, 0, 123456, tzinfo=UTC),
            expires_at=datetime(2026, 4, 6, 13, 15, 0, 123456, tzinfo=UTC),
            status="active",
            schema_version=1,
        ),
    ),
    (
        # Unspecified-kind DateTime (no offset) = UTC; .9999999 truncates, never rounds into
        # the next day; GUIDs upper case and "N" form.
        "reservation-created.v1.producer-unspecified-kind",
        EventType.RESERVATION_CREATED,
        b"D9428888122B11E1B85C61CD3CBB3210",
        ReservationCreated(
            message_id="a3bb189e-8bf9-3888-9912-ace4e6543002",
            reservation_id="6b29fc40-ca47-1067-b31d-00dd010662da",
            customer_id="user@example.com",
            seat_id="d9428888-122b-11e1-b85c-61cd3cbb3210",
            seat_number="FRONT-1-7",
            section="FRONT",
            base_price=Decimal("0.00"),
            created_at=datetime(2026, 4, 6, 23, 59, 59, 999999, tzinfo=UTC),
            expires_at=datetime(2026, 4, 7, 0, 14, 59, 999999, tzinfo=UTC),
            status="active",
            schema_version=1,
        ),
    ),
    (
        # The contract file's shape: no section, a GUID customer kept verbatim, an offset.
        "reservation-created.v1.contract",
        EventType.RESERVATION_CREATED,
        None,
        ReservationCreated(
            message_id="e0f4b1a2-5c6d-4e7f-8a9b-0c1d2e3f4a5b",
            reservation_id="1e2d3c4b-5a69-4788-96a5-b4c3d2e1f0a9",
            customer_id="3F2504E0-4F89-11D3-9A0C-0305E82C3301",
            seat_id="2c5ea4c0-4067-11e9-8bad-9b1deb4d3b7d",
            seat_number="A-123",
            section=None,
            base_price=Decimal("150.00"),
            created_at=datetime(2026, 4, 6, 8, 0, tzinfo=UTC),
            expires_at=datetime(2026, 4, 6, 8, 15, tzinfo=UTC),
            status="confirmed",
            schema_version=1,
        ),
    ),
    (
        "reservation-created.v2.docs",
        EventType.RESERVATION_CREATED,
        b"c9d0e1f2-0000-4000-8000-000000000003",
        ReservationCreated(
            message_id="a1b2c3d4-0000-4000-8000-000000000001",
            reservation_id="e5f6a7b8-0000-4000-8000-000000000002",
            customer_id="user@example.com",
            seat_id="c9d0e1f2-0000-4000-8000-000000000003",
            seat_number="A-01",
            section="VIP",
            base_price=Decimal("150.00"),
            created_at=datetime(2026, 4, 6, 13, 0, tzinfo=UTC),
            expires_at=datetime(2026, 4, 6, 13, 15, tzinfo=UTC),
            status="active",
            schema_version=2,
        ),
    ),
    (
        "reservation-expired.v1.contract",
        EventType.RESERVATION_EXPIRED,
        SEAT_KEY_N,
        ReservationExpired(
            message_id="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            reservation_id=RESERVATION,
            seat_id=SEAT,
            customer_id="customer-123",
            concert_event_id=None,
            expired_at=datetime(2026, 4, 6, 13, 15, 1, 500000, tzinfo=UTC),
            reason="ttl_expired",
            schema_version=1,
        ),
    ),
    (
        # -05:00 converted to UTC; the 7th fractional digit (100 ns) truncated.
        "reservation-expired.v2.docs",
        EventType.RESERVATION_EXPIRED,
        SEAT_KEY_N,
        ReservationExpired(
            message_id="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
            reservation_id=RESERVATION,
            seat_id=SEAT,
            customer_id="user@example.com",
            concert_event_id=None,
            expired_at=datetime(2026, 4, 6, 13, 16, tzinfo=UTC),
            reason=None,
            schema_version=2,
        ),
    ),
    (
        # No time in the payload: expired_at is the Kafka record timestamp.
        "reservation-expired.v3.producer",
        EventType.RESERVATION_EXPIRED,
        SEAT_KEY_N,
        ReservationExpired(
            message_id="4d3c2b1a-6f5e-4d7c-9b8a-0f1e2d3c4b5a",
            reservation_id=RESERVATION,
            seat_id=SEAT,
            customer_id="customer-123",
            concert_event_id=CONCERT,
            expired_at=datetime(2026, 4, 6, 13, 15, 1, 500000, tzinfo=UTC),
            reason=None,
            schema_version=3,
        ),
    ),
    (
        # Reservations older than Inventory's EventId column carry the nil GUID: unknown.
        "reservation-expired.v3.producer-before-event-id",
        EventType.RESERVATION_EXPIRED,
        b"a5771bce93e24e7a8c1b2f6d0e9b3a48",
        ReservationExpired(
            message_id="8f14e45f-ceea-467f-a0e6-2d1c5b0c7a31",
            reservation_id="1c383cd3-0b7c-4a8d-b0c4-6f3e9a2d5e17",
            seat_id="a5771bce-93e2-4e7a-8c1b-2f6d0e9b3a48",
            customer_id="customer-77",
            concert_event_id=None,
            expired_at=datetime(2026, 4, 6, 13, 15, 1, 500000, tzinfo=UTC),
            reason=None,
            schema_version=3,
        ),
    ),
    (
        "seats-generated.v1.producer",
        EventType.SEATS_GENERATED,
        CONCERT.encode(),
        SeatsGenerated(
            concert_event_id=CONCERT,
            seats=(
                GeneratedSeat(seat_id=SEAT, section="VIP", row="1", number=1),
                GeneratedSeat(
                    seat_id="6a1d9c3f-2e4b-4d7c-9f0a-1b2c3d4e5f60", section="VIP", row="1", number=2
                ),
                GeneratedSeat(
                    seat_id="7b2ead40-3f5c-4e8d-a01b-2c3d4e5f6071",
                    section="GENERAL",
                    row="12",
                    number=30,
                ),
            ),
            total_seats=3,
            generated_at=datetime(2026, 4, 1, 9, 30, 15, 456789, tzinfo=UTC),
            schema_version=1,
        ),
    ),
    (
        "order-placed.v1",
        EventType.ORDER_PLACED,
        ORDER.upper().encode(),
        OrderPlaced(
            message_id="c56a4180-65aa-42ec-a945-5fd21dec0538",
            order_id=ORDER,
            customer_id="customer-123",
            items=(
                OrderItem(reservation_id=RESERVATION, seat_id=SEAT, price=Decimal("150.50")),
                OrderItem(
                    reservation_id="1e2d3c4b-5a69-4788-96a5-b4c3d2e1f0a9",
                    seat_id="2c5ea4c0-4067-11e9-8bad-9b1deb4d3b7d",
                    price=Decimal("99.995"),
                ),
            ),
            total_amount=Decimal("250.495"),
            currency="EUR",
            placed_at=datetime(2026, 4, 6, 13, 5, tzinfo=UTC),
            schema_version=1,
        ),
    ),
]


def money_and_times(event: Event) -> list[str]:
    """What `==` does not compare: the exact scale of amounts and the tzinfo object."""
    found: list[str] = []
    for name in ("base_price", "total_amount"):
        if hasattr(event, name):
            found.append(f"{name}={getattr(event, name)!s}")
    for item in getattr(event, "items", ()):
        found.append(f"price={item.price!s}")
    for name in ("created_at", "expires_at", "expired_at", "generated_at", "placed_at"):
        if hasattr(event, name):
            moment: datetime = getattr(event, name)
            found.append(f"{name}.tzinfo is UTC: {moment.tzinfo is UTC}")
    return found


@pytest.mark.parametrize(
    ("fixture", "event_type", "key", "expected"), CASES, ids=[case[0] for case in CASES]
)
def test_upstream_shape_decodes_to_the_canonical_event(
    fixture: str, event_type: EventType, key: bytes | None, expected: Event, parse_path: str
) -> None:
    event = decode(event_type, raw(fixture), key, [], RECORD_TS_MS)

    assert event == expected
    assert type(event) is type(expected)
    assert money_and_times(event) == money_and_times(expected)


def test_amount_scales_are_canonical() -> None:
    event = decode(EventType.ORDER_PLACED, raw("order-placed.v1"), None, [], RECORD_TS_MS)

    assert isinstance(event, OrderPlaced)
    assert [str(item.price) for item in event.items] == ["150.50", "99.995"]
    assert str(event.total_amount) == "250.495"


@pytest.mark.parametrize(
    "literal", ["150", "150.0", "150.00", "150.000", "1.5e2", "1.50E+2"], ids=str
)
def test_equal_amounts_decode_identically_whatever_the_literal(
    literal: str, parse_path: str
) -> None:
    value = raw("reservation-created.v1.producer").replace(
        b'"basePrice":0', b'"basePrice":' + literal.encode()
    )

    event = decode(EventType.RESERVATION_CREATED, value, None, [], RECORD_TS_MS)

    assert isinstance(event, ReservationCreated)
    assert str(event.base_price) == "150.00"


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("12345678901234.5678", "12345678901234.5678"),  # 18 digits: a float would round
        ("98765432.10000001", "98765432.10000001"),
        ("1234567.1234567891", "1234567.1234567891"),
    ],
    ids=["18-digits", "float-neighbour", "10-decimals"],
)
def test_long_amounts_take_the_exact_path_and_stay_exact(literal: str, expected: str) -> None:
    value = raw("reservation-created.v1.producer").replace(
        b'"basePrice":0', b'"basePrice":' + literal.encode()
    )

    event = decode(EventType.RESERVATION_CREATED, value, None, [], RECORD_TS_MS)

    assert isinstance(event, ReservationCreated)
    assert str(event.base_price) == expected


def test_integer_row_is_liberally_its_decimal_string() -> None:
    data = raw("seats-generated.v1.producer").replace(b'"row":"12"', b'"row":12')

    event = decode(EventType.SEATS_GENERATED, data, None, [], RECORD_TS_MS)

    assert isinstance(event, SeatsGenerated)
    assert event.seats[2].row == "12"
    assert event.seats[2].seat_number == "GENERAL-12-30"


def test_integral_float_in_an_integer_field_is_an_int_on_both_paths(parse_path: str) -> None:
    data = raw("seats-generated.v1.producer").replace(b'"number":30', b'"number":30.0')

    event = decode(EventType.SEATS_GENERATED, data, None, [], RECORD_TS_MS)

    assert isinstance(event, SeatsGenerated)
    assert type(event.seats[2].number) is int
    assert event.seats[2].seat_number == "GENERAL-12-30"


def test_unknown_properties_are_ignored() -> None:
    data = changed("reservation-expired.v3.producer", traceId="abc", extra={"nested": [1, 2.5]})

    event = decode(EventType.RESERVATION_EXPIRED, data, None, [], RECORD_TS_MS)

    assert isinstance(event, ReservationExpired)
    assert event.schema_version == 3


def test_missing_base_price_means_zero() -> None:
    data = changed("reservation-created.v1.contract", basePrice=...)

    event = decode(EventType.RESERVATION_CREATED, data, None, [], RECORD_TS_MS)

    assert isinstance(event, ReservationCreated)
    assert str(event.base_price) == "0.00"


def test_null_section_decodes_as_none() -> None:
    data = changed("reservation-created.v1.producer", section=None)

    event = decode(EventType.RESERVATION_CREATED, data, None, [], RECORD_TS_MS)

    assert isinstance(event, ReservationCreated)
    assert event.section is None


def test_strings_are_stored_verbatim() -> None:
    data = changed("reservation-created.v1.producer", customerId=" Ünïcødé ✓ ", section="Zona Ñ")

    event = decode(EventType.RESERVATION_CREATED, data, None, [], RECORD_TS_MS)

    assert isinstance(event, ReservationCreated)
    assert (event.customer_id, event.section) == (" Ünïcødé ✓ ", "Zona Ñ")


@pytest.mark.parametrize("header", ["schema-version", "version", "Schema-Version"])
def test_explicit_header_version_selects_the_schema(header: str) -> None:
    event = decode(
        EventType.RESERVATION_EXPIRED,
        raw("reservation-expired.v3.producer"),
        None,
        [(header, b"v3")],
        RECORD_TS_MS,
    )

    assert isinstance(event, ReservationExpired)
    assert event.schema_version == 3


@pytest.mark.parametrize("version", [2, "2", "v2", "reservation-expired/v2"], ids=repr)
def test_explicit_payload_version_selects_the_schema(version: object) -> None:
    data = changed("reservation-expired.v2.docs", schemaVersion=version)

    event = decode(EventType.RESERVATION_EXPIRED, data, None, [], RECORD_TS_MS)

    assert isinstance(event, ReservationExpired)
    assert event.schema_version == 2


def test_agreeing_explicit_versions_are_fine() -> None:
    event = decode(
        EventType.ORDER_PLACED,
        raw("order-placed.v1"),
        None,
        {"schema-version": b"1"},
        RECORD_TS_MS,
    )

    assert event.schema_version == 1


@pytest.mark.parametrize("key", [None, b"", b"not-a-uuid", b"\xff\xfe"], ids=repr)
def test_absent_or_non_uuid_keys_are_accepted(key: bytes | None) -> None:
    event = decode(
        EventType.RESERVATION_CREATED,
        raw("reservation-created.v1.producer"),
        key,
        [],
        RECORD_TS_MS,
    )

    assert isinstance(event, ReservationCreated)


def test_bytes_like_values_are_accepted() -> None:
    value = memoryview(bytearray(raw("reservation-expired.v3.producer")))

    event = decode(EventType.RESERVATION_EXPIRED, value, None, [], RECORD_TS_MS)  # type: ignore[arg-type]

    assert isinstance(event, ReservationExpired)


def test_event_type_may_be_given_as_the_topic_name() -> None:
    event = decode(
        "reservation-expired",  # type: ignore[arg-type]
        raw("reservation-expired.v3.producer"),
        None,
        [],
        RECORD_TS_MS,
    )

    assert isinstance(event, ReservationExpired)
