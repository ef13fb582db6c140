"""Malformed records: each fails with one DecodeError of the right kind, saying what is wrong."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.unit.decoding.upstream import RECORD_TS_MS, changed, encode, payload, raw
from workers.decoding import DecodeError, DecodeErrorKind, decode
from workers.events import EventType

UNDECODABLE = DecodeErrorKind.UNDECODABLE
SCHEMA = DecodeErrorKind.SCHEMA_VIOLATION
VERSION = DecodeErrorKind.UNKNOWN_VERSION
INVALID = DecodeErrorKind.INVALID_VALUE

CREATED = EventType.RESERVATION_CREATED
EXPIRED = EventType.RESERVATION_EXPIRED
SEATS = EventType.SEATS_GENERATED
ORDER = EventType.ORDER_PLACED

PRODUCER_CREATED = raw("reservation-created.v1.producer")


@dataclass(frozen=True)
class Bad:
    id: str
    event_type: EventType
    value: bytes | None
    kind: DecodeErrorKind
    reason: str
    """A substring the reason must contain: what is wrong, and where."""
    key: bytes | None = None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    timestamp_ms: int = RECORD_TS_MS
    schema_version: str | None = None
    """If set, the version the error must report."""


def created(**changes: Any) -> bytes:
    return changed("reservation-created.v1.producer", **changes)


def order_with_items(items: list[dict[str, Any]], **changes: Any) -> bytes:
    data = payload("order-placed.v1")
    data["items"] = items
    data.update(changes)
    return encode(data)


def item(
    price: object,
    seat: str = "5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f",
    reservation: str = "0b8c5e2a-3f4d-4e1a-9b6c-2d7e8f9a0b1c",
) -> dict[str, Any]:
    return {"reservationId": reservation, "seatId": seat, "price": price}


OTHER_SEAT = "6a1d9c3f-2e4b-4d7c-9f0a-1b2c3d4e5f60"
OTHER_RESERVATION = "1e2d3c4b-5a69-4788-96a5-b4c3d2e1f0a9"


def seats_with(**seat_changes: Any) -> bytes:
    data = payload("seats-generated.v1.producer")
    data["seats"][0].update(seat_changes)
    return encode(data)


DEEP = b'{"a":' + b"[" * 10_000 + b"]" * 10_000 + b"}"

CASES = [
    # --- not a JSON object at all --------------------------------------------------------
    Bad(
        "malformed-json", CREATED, b'{"eventId": }', UNDECODABLE, "malformed JSON: Expecting value"
    ),
    Bad("truncated-json", CREATED, PRODUCER_CREATED[:150], UNDECODABLE, "malformed JSON"),
    Bad("empty-bytes", CREATED, b"", UNDECODABLE, "empty (0 bytes)"),
    Bad("null-value-tombstone", CREATED, None, UNDECODABLE, "tombstone"),
    Bad("json-null-literal", CREATED, b"null", UNDECODABLE, "JSON null, not an object"),
    Bad(
        "array-not-object",
        CREATED,
        b"[" + PRODUCER_CREATED + b"]",
        UNDECODABLE,
        "JSON array, not an object",
    ),
    Bad("string-not-object", CREATED, b'"hello"', UNDECODABLE, "JSON string, not an object"),
    Bad(
        "invalid-utf8",
        CREATED,
        created(customerId="x").replace(b'"x"', b'"\xff\xfe"'),
        UNDECODABLE,
        "invalid UTF-8",
    ),
    Bad(
        "utf8-encoded-surrogate",
        CREATED,
        created(customerId="x").replace(b'"x"', b'"\xed\xa0\x80"'),
        UNDECODABLE,
        "invalid UTF-8",
    ),
    Bad(
        "lone-surrogate-escape",
        CREATED,
        created(customerId="x").replace(b'"x"', b'"\\ud800"'),
        UNDECODABLE,
        "$.customerId: string holds a lone UTF-16 surrogate \\ud800",
    ),
    Bad(
        "lone-low-surrogate",
        CREATED,
        created(section="x").replace(b'"x"', b'"a\\udc00b"'),
        UNDECODABLE,
        "$.section: string holds a lone UTF-16 surrogate \\udc00",
    ),
    Bad(
        "nan",
        CREATED,
        PRODUCER_CREATED.replace(b'"basePrice":0', b'"basePrice":NaN'),
        UNDECODABLE,
        "NaN is not a JSON number",
    ),
    Bad(
        "infinity",
        CREATED,
        PRODUCER_CREATED.replace(b'"basePrice":0', b'"basePrice":Infinity'),
        UNDECODABLE,
        "Infinity is not a JSON number",
    ),
    Bad(
        "minus-infinity",
        CREATED,
        PRODUCER_CREATED.replace(b'"basePrice":0', b'"basePrice":-Infinity'),
        UNDECODABLE,
        "-Infinity is not a JSON number",
    ),
    Bad(
        "integer-of-5000-digits",
        CREATED,
        PRODUCER_CREATED.replace(b'"basePrice":0', b'"basePrice":' + b"9" * 5000),
        UNDECODABLE,
        "number out of range",
    ),
    Bad("nesting-10000-deep", CREATED, DEEP, UNDECODABLE, "10001 levels deep, more than 64"),
    Bad("utf8-bom", CREATED, b"\xef\xbb\xbf" + PRODUCER_CREATED, UNDECODABLE, "BOM"),
    Bad("trailing-garbage", CREATED, PRODUCER_CREATED + b"x", UNDECODABLE, "Extra data"),
    Bad(
        "raw-control-character",
        CREATED,
        created(customerId="x").replace(b'"x"', b'"a\x01b"'),
        UNDECODABLE,
        "Invalid control character",
    ),
    # --- schema violations ---------------------------------------------------------------
    Bad(
        "missing-required-field",
        CREATED,
        created(seatId=...),
        SCHEMA,
        "$: missing required field 'seatId'",
        schema_version="reservation-created/v1",
    ),
    Bad(
        "v1-expired-missing-three-fields",
        EXPIRED,
        changed("reservation-expired.v1.contract", expiredAt=..., reason=..., status=...),
        SCHEMA,
        "$: missing required fields 'expiredAt', 'reason', 'status'",
        schema_version="reservation-expired/v1",
    ),
    Bad(
        "v3-missing-customer",
        EXPIRED,
        changed("reservation-expired.v3.producer", customerId=...),
        SCHEMA,
        "missing required field 'customerId'",
        schema_version="reservation-expired/v3",
    ),
    Bad(
        "docs-seats-generated-variant",
        SEATS,
        encode(
            {
                "eventId": "3d6f4e2a-8b1c-4a5d-9e7f-6a2b1c0d9e8f",
                "totalSeatsGenerated": 1100,
                "sections": [{"name": "VIP", "seats": 100}],
                "createdAt": "2026-04-06T10:00:00Z",
            }
        ),
        SCHEMA,
        "missing required fields 'seats', 'totalSeats', 'generatedAt'",
    ),
    Bad(
        "wrong-type-number-as-string",
        SEATS,
        seats_with(number="3"),
        SCHEMA,
        "$.seats[0].number: must be an integer, got string '3'",
    ),
    Bad(
        "wrong-type-price-as-string",
        CREATED,
        created(basePrice="150.00"),
        SCHEMA,
        "$.basePrice: must be a number, got string '150.00'",
    ),
    Bad(
        "wrong-type-boolean-count",
        SEATS,
        changed("seats-generated.v1.producer", totalSeats=True),
        SCHEMA,
        "$.totalSeats: must be an integer, got boolean true",
    ),
    Bad(
        "wrong-type-seats-object",
        SEATS,
        changed("seats-generated.v1.producer", seats={}),
        SCHEMA,
        "$.seats: must be an array",
    ),
    Bad(
        "fractional-seat-number",
        SEATS,
        seats_with(number=2.5),
        SCHEMA,
        "$.seats[0].number: must be an integer, got number 2.5",
    ),
    Bad(
        "invalid-uuid",
        CREATED,
        created(seatId="not-a-uuid"),
        SCHEMA,
        "$.seatId: must be a UUID (8-4-4-4-12 or 32 hex digits), got 'not-a-uuid'",
    ),
    Bad(
        "uuid-mixed-forms",
        CREATED,
        created(reservationId="0b8c5e2a3f4d-4e1a-9b6c-2d7e8f9a0b1c"),
        SCHEMA,
        "$.reservationId: must be a UUID",
    ),
    Bad(
        "uuid-with-trailing-newline",
        CREATED,
        created(seatId="5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f\n"),
        SCHEMA,
        "$.seatId: must be a UUID",
    ),
    Bad(
        "uuid-non-hex",
        SEATS,
        seats_with(seatId="zf0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f"),
        SCHEMA,
        "$.seats[0].seatId: must be a UUID",
    ),
    Bad(
        "date-time-with-space",
        CREATED,
        created(createdAt="2026-04-06 13:00:00Z"),
        SCHEMA,
        "$.createdAt: must be a date-time like",
    ),
    Bad(
        "date-time-8-fraction-digits",
        CREATED,
        created(expiresAt="2026-04-06T13:15:00.12345678Z"),
        SCHEMA,
        "$.expiresAt: must be a date-time",
    ),
    Bad(
        "date-only",
        EXPIRED,
        changed("reservation-expired.v1.contract", expiredAt="2026-04-06"),
        SCHEMA,
        "$.expiredAt: must be a date-time",
    ),
    Bad(
        "negative-price",
        ORDER,
        order_with_items([item(-5)], totalAmount=0),
        SCHEMA,
        "$.items[0].price: must be >= 0, got -5",
    ),
    Bad(
        "negative-base-price",
        CREATED,
        created(basePrice=-0.01),
        SCHEMA,
        "$.basePrice: must be >= 0, got -0.01",
    ),
    Bad(
        "amount-too-large",
        CREATED,
        created(basePrice=10**15),
        SCHEMA,
        "$.basePrice: must be < 1000000000000000",
    ),
    Bad(
        "no-items",
        ORDER,
        order_with_items([], totalAmount=0),
        SCHEMA,
        "$.items: must have at least 1 item(s), got 0",
    ),
    Bad(
        "lower-case-currency",
        ORDER,
        changed("order-placed.v1", currency="usd"),
        SCHEMA,
        "$.currency: must be an ISO 4217 currency code",
    ),
    Bad(
        "order-version-as-text",
        ORDER,
        changed("order-placed.v1", version="1"),
        SCHEMA,
        "$.version: must be 1, got '1'",
    ),
    Bad(
        "order-without-version",
        ORDER,
        changed("order-placed.v1", version=...),
        SCHEMA,
        "missing required field 'version'",
        schema_version="order-placed/v1",
    ),
    Bad(
        "empty-customer-id",
        CREATED,
        created(customerId=""),
        SCHEMA,
        "$.customerId: must not be empty",
    ),
    Bad(
        "customer-id-too-long",
        CREATED,
        created(customerId="c" * 300),
        SCHEMA,
        "$.customerId: must have at most 256 characters, got 300",
    ),
    Bad(
        "unknown-status",
        CREATED,
        created(status="pending"),
        SCHEMA,
        "$.status: must be one of 'active', 'expired', 'confirmed', got 'pending'",
    ),
    Bad(
        "docs-status-in-other-case",
        CREATED,
        created(status="ACTIVE"),
        SCHEMA,
        "$.status: must be one of 'Active', got 'ACTIVE'",
        schema_version="reservation-created/v2",
    ),
    Bad(
        "nul-in-customer-id",
        CREATED,
        created(customerId="a\u0000b"),
        SCHEMA,
        "$.customerId: must not contain NUL characters",
    ),
    Bad(
        "nul-in-seat-section",
        SEATS,
        seats_with(section="V\u0000IP"),
        SCHEMA,
        "$.seats[0].section: must not contain NUL characters",
    ),
    # --- unknown versions ----------------------------------------------------------------
    Bad(
        "unknown-payload-version",
        ORDER,
        changed("order-placed.v1", version=9),
        VERSION,
        "order-placed/v9 is not a version this decoder knows (known: v1)",
        schema_version="order-placed/v9",
    ),
    Bad(
        "unknown-header-version",
        EXPIRED,
        raw("reservation-expired.v3.producer"),
        VERSION,
        "reservation-expired/v7 is not a version",
        headers=[("schema-version", b"7")],
        schema_version="reservation-expired/v7",
    ),
    Bad(
        "header-version-not-a-number",
        CREATED,
        PRODUCER_CREATED,
        VERSION,
        "header 'version' is b'latest', not a version",
        headers=[("version", b"latest")],
    ),
    Bad(
        "header-version-of-another-topic",
        CREATED,
        PRODUCER_CREATED,
        VERSION,
        "not a version of reservation-created",
        headers=[("schema-version", b"order-placed/v1")],
    ),
    Bad(
        "conflicting-versions",
        EXPIRED,
        changed("reservation-expired.v3.producer", version=3),
        VERSION,
        "conflicting versions: header 'schema-version' says v1, $.version says v3",
        headers=[("schema-version", b"1")],
    ),
    Bad(
        "boolean-version",
        CREATED,
        created(schemaVersion=True),
        VERSION,
        "$.schemaVersion is True, not a version",
    ),
    # --- schema-valid but impossible values ----------------------------------------------
    Bad(
        "impossible-date",
        CREATED,
        created(createdAt="2026-02-30T13:00:00.1234567Z"),
        INVALID,
        "$.createdAt: '2026-02-30T13:00:00.1234567Z' is not a real date-time: day is out of range",
    ),
    Bad(
        "hour-24",
        EXPIRED,
        changed("reservation-expired.v1.contract", expiredAt="2026-04-06T24:00:00Z"),
        INVALID,
        "$.expiredAt: '2026-04-06T24:00:00Z' is not a real date-time",
    ),
    Bad(
        "leap-second",
        CREATED,
        created(expiresAt="2026-06-30T23:59:60Z"),
        INVALID,
        "$.expiresAt: '2026-06-30T23:59:60Z' is not a real date-time",
    ),
    Bad(
        "offset-out-of-range",
        CREATED,
        created(createdAt="2026-04-06T13:00:00+25:00"),
        INVALID,
        "$.createdAt: '2026-04-06T13:00:00+25:00' is not a real date-time",
    ),
    Bad(
        "before-year-one-in-utc",
        CREATED,
        created(createdAt="0001-01-01T00:30:00+01:00"),
        INVALID,
        "out of range once converted to UTC",
    ),
    Bad(
        "docs-expires-at-impossible",
        EXPIRED,
        changed("reservation-expired.v2.docs", expiresAt="2026-13-01T00:00:00Z"),
        INVALID,
        "$.expiresAt: '2026-13-01T00:00:00Z' is not a real date-time",
    ),
    Bad(
        "nil-uuid-seat",
        CREATED,
        created(seatId="00000000-0000-0000-0000-000000000000"),
        INVALID,
        "$.seatId: the nil UUID '00000000-0000-0000-0000-000000000000' is not an id",
    ),
    Bad(
        "too-many-decimal-places",
        ORDER,
        order_with_items([item(0.12345678901)], totalAmount=0.12345678901),
        INVALID,
        "$.items[0].price: 0.12345678901 has more than 10 decimal places",
    ),
    Bad(
        "tiny-exponent-underflow",
        CREATED,
        PRODUCER_CREATED.replace(b'"basePrice":0', b'"basePrice":1e-400'),
        INVALID,
        "$.basePrice: 1E-400 has more than 10 decimal places",
    ),
    Bad(
        "total-is-not-the-sum",
        ORDER,
        order_with_items([item(10), item(5.5, OTHER_SEAT, OTHER_RESERVATION)], totalAmount=15),
        INVALID,
        "$.totalAmount: 15.00 is not the sum of the item prices, 15.50",
    ),
    Bad(
        "seat-twice-in-order",
        ORDER,
        order_with_items([item(10), item(10, reservation=OTHER_RESERVATION)], totalAmount=20),
        INVALID,
        "$.items[1].seatId: '5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f' repeats $.items[0].seatId",
    ),
    Bad(
        "seat-twice-in-seat-map",
        SEATS,
        seats_with(seatId="6A1D9C3F2E4B4D7C9F0A1B2C3D4E5F60"),
        INVALID,
        "$.seats[1].seatId: '6a1d9c3f-2e4b-4d7c-9f0a-1b2c3d4e5f60' repeats $.seats[0].seatId",
    ),
    Bad(
        "fewer-total-seats-than-listed",
        SEATS,
        changed("seats-generated.v1.producer", totalSeats=2),
        INVALID,
        "$.totalSeats: 2 is less than the 3 seats listed",
    ),
    Bad(
        "reservation-twice-in-order",
        ORDER,
        order_with_items([item(10), item(10, seat=OTHER_SEAT)], totalAmount=20),
        INVALID,
        "$.items[1].reservationId: '0b8c5e2a-3f4d-4e1a-9b6c-2d7e8f9a0b1c' repeats "
        "$.items[0].reservationId",
    ),
    Bad(
        "v3-without-record-timestamp",
        EXPIRED,
        raw("reservation-expired.v3.producer"),
        INVALID,
        "record timestamp -1 is missing",
        timestamp_ms=-1,
        schema_version="reservation-expired/v3",
    ),
    Bad(
        "key-mismatch-n-form",
        CREATED,
        PRODUCER_CREATED,
        INVALID,
        "key '1b7e2a9c4d3f4e5a8b6c0d1e2f3a4b5c' does not match $.seatId "
        "'5f0c8b2e-1d3a-4c6b-8e9f-0a1b2c3d4e5f'",
        key=b"1b7e2a9c4d3f4e5a8b6c0d1e2f3a4b5c",
    ),
    Bad(
        "key-mismatch-d-form",
        SEATS,
        raw("seats-generated.v1.producer"),
        INVALID,
        "does not match $.eventId",
        key=b"5F0C8B2E-1D3A-4C6B-8E9F-0A1B2C3D4E5F",
    ),
    Bad(
        "key-mismatch-order",
        ORDER,
        raw("order-placed.v1"),
        INVALID,
        "does not match $.orderId",
        key=b"c56a4180-65aa-42ec-a945-5fd21dec0538",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_record_fails_with_kind_and_reason(case: Bad) -> None:
    with pytest.raises(DecodeError) as caught:
        decode(case.event_type, case.value, case.key, case.headers, case.timestamp_ms)

    error = caught.value
    assert error.kind is case.kind, error.reason
    assert case.reason in error.reason
    if case.schema_version is not None:
        assert error.schema_version == case.schema_version


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_both_parse_paths_reject_alike(case: Bad, parse_path: str) -> None:
    """Forcing either parser changes nothing: same kind, same reason.

    (Except where the exact path is the point: a float cannot tell 1e-400 from 0.)
    """
    if case.id == "tiny-exponent-underflow" and parse_path == "fast":
        # A float reads 1e-400 as 0 and cannot tell: this is why the router must send such a
        # literal to the exact path (test_malformed_record_fails_with_kind_and_reason).
        event = decode(case.event_type, case.value, case.key, case.headers, case.timestamp_ms)
        assert event is not None
        return
    with pytest.raises(DecodeError) as caught:
        decode(case.event_type, case.value, case.key, case.headers, case.timestamp_ms)

    assert caught.value.kind is case.kind
    assert case.reason in caught.value.reason


def test_there_are_at_least_25_distinct_malformed_inputs() -> None:
    assert len({case.value for case in CASES}) >= 25


def test_the_error_is_one_picklable_type_with_a_readable_str() -> None:
    with pytest.raises(DecodeError) as caught:
        decode(CREATED, created(seatId="nope"), None, [], RECORD_TS_MS)

    error = pickle.loads(pickle.dumps(caught.value))
    assert (error.kind, error.schema_version) == (SCHEMA, "reservation-created/v1")
    assert str(error).startswith("schema_violation [reservation-created/v1]: $.seatId: ")


def test_an_unknown_event_type_is_a_caller_bug_not_a_decode_error() -> None:
    with pytest.raises(ValueError, match="payment-failed"):
        decode("payment-failed", PRODUCER_CREATED, None, [], RECORD_TS_MS)  # type: ignore[arg-type]
