"""Validated payloads -> canonical events, one constructor per (topic, version).

Each constructor runs after the schema accepted the payload, so it only canonicalises (ids,
times, money) and checks what a schema cannot express: real calendar dates, the nil UUID,
duplicates, totals. Field paths in reasons are the producer's (camelCase) names. Integer
fields go through `int()`: a schema "integer" also admits 3.0 (JSON Schema counts it as one).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal, localcontext
from typing import Any

from workers.decoding.errors import DecodeError, DecodeErrorKind
from workers.decoding.ids import NIL_UUID, canonical_uuid, canonical_uuid_or_nil, optional_uuid
from workers.decoding.money import ZERO, to_money
from workers.decoding.timestamps import from_record_timestamp, parse_timestamp
from workers.events import (
    Event,
    EventType,
    GeneratedSeat,
    OrderItem,
    OrderPlaced,
    ReservationCreated,
    ReservationExpired,
    SeatsGenerated,
    canonical_money,
)

Payload = dict[str, Any]
Builder = Callable[[Payload, int, int], Event]
"""(validated payload, version, Kafka record timestamp in ms) -> event."""


_EXACT_SUM_ITEMS = 1000
"""Amounts are < 10^15 with at most 10 decimals, so a sum of up to 1000 of them has at most
28 significant digits: exact in the default decimal context, no local context needed."""


def _invalid(reason: str) -> DecodeError:
    return DecodeError(DecodeErrorKind.INVALID_VALUE, reason)


def seats_generated(payload: Payload, version: int, timestamp_ms: int) -> SeatsGenerated:
    seats: list[GeneratedSeat] = []
    first_index: dict[str, int] = {}
    for index, seat in enumerate(payload["seats"]):
        seat_id = canonical_uuid_or_nil(seat["seatId"])
        if seat_id == NIL_UUID:  # the error path is built only when needed: 1000s of seats
            canonical_uuid(seat["seatId"], f"$.seats[{index}].seatId")
        if seat_id in first_index:
            raise _invalid(
                f"$.seats[{index}].seatId: {seat['seatId']!r} repeats "
                f"$.seats[{first_index[seat_id]}].seatId"
            )
        first_index[seat_id] = index
        row = seat["row"]
        seats.append(
            GeneratedSeat(
                seat_id=seat_id,
                section=seat["section"],
                # An integer row is written the way .NET formats it in seatNumber.
                row=row if type(row) is str else str(int(row)),
                number=int(seat["number"]),
            )
        )
    total = int(payload["totalSeats"])
    if total < len(seats):
        raise _invalid(f"$.totalSeats: {total} is less than the {len(seats)} seats listed")
    return SeatsGenerated(
        concert_event_id=canonical_uuid(payload["eventId"], "$.eventId"),
        seats=tuple(seats),
        total_seats=total,
        generated_at=parse_timestamp(payload["generatedAt"], "$.generatedAt"),
        schema_version=version,
    )


def reservation_created(payload: Payload, version: int, timestamp_ms: int) -> ReservationCreated:
    base_price = payload.get("basePrice")
    return ReservationCreated(
        message_id=canonical_uuid(payload["eventId"], "$.eventId"),
        reservation_id=canonical_uuid(payload["reservationId"], "$.reservationId"),
        customer_id=payload["customerId"],
        seat_id=canonical_uuid(payload["seatId"], "$.seatId"),
        seat_number=payload["seatNumber"],
        section=payload.get("section"),
        base_price=ZERO if base_price is None else to_money(base_price, "$.basePrice"),
        created_at=parse_timestamp(payload["createdAt"], "$.createdAt"),
        expires_at=parse_timestamp(payload["expiresAt"], "$.expiresAt"),
        status=payload["status"].lower(),
        schema_version=version,
    )


def reservation_expired_v1(payload: Payload, version: int, timestamp_ms: int) -> ReservationExpired:
    """The contract file: eventId is the message id (the producer's use of eventId)."""
    return ReservationExpired(
        message_id=canonical_uuid(payload["eventId"], "$.eventId"),
        reservation_id=canonical_uuid(payload["reservationId"], "$.reservationId"),
        seat_id=canonical_uuid(payload["seatId"], "$.seatId"),
        customer_id=payload.get("customerId"),
        concert_event_id=None,
        expired_at=parse_timestamp(payload["expiredAt"], "$.expiredAt"),
        reason=payload["reason"],
        schema_version=version,
    )


def reservation_expired_v2(payload: Payload, version: int, timestamp_ms: int) -> ReservationExpired:
    """The documentation variant: expiresAt must be a real time but is not kept."""
    parse_timestamp(payload["expiresAt"], "$.expiresAt")
    return ReservationExpired(
        message_id=canonical_uuid(payload["eventId"], "$.eventId"),
        reservation_id=canonical_uuid(payload["reservationId"], "$.reservationId"),
        seat_id=canonical_uuid(payload["seatId"], "$.seatId"),
        customer_id=payload["customerId"],
        concert_event_id=None,
        expired_at=parse_timestamp(payload["expiredAt"], "$.expiredAt"),
        reason=None,
        schema_version=version,
    )


def reservation_expired_v3(payload: Payload, version: int, timestamp_ms: int) -> ReservationExpired:
    """What the producer sends: no time of its own, so the record timestamp is the expiry."""
    return ReservationExpired(
        message_id=canonical_uuid(payload["messageId"], "$.messageId"),
        reservation_id=canonical_uuid(payload["reservationId"], "$.reservationId"),
        seat_id=canonical_uuid(payload["seatId"], "$.seatId"),
        customer_id=payload["customerId"],
        concert_event_id=optional_uuid(payload.get("concertEventId")),
        expired_at=from_record_timestamp(timestamp_ms),
        reason=None,
        schema_version=version,
    )


def order_placed(payload: Payload, version: int, timestamp_ms: int) -> OrderPlaced:
    items: list[OrderItem] = []
    seat_index: dict[str, int] = {}
    reservation_index: dict[str, int] = {}
    for index, item in enumerate(payload["items"]):
        where = f"$.items[{index}]"
        reservation_id = canonical_uuid(item["reservationId"], f"{where}.reservationId")
        seat_id = canonical_uuid(item["seatId"], f"{where}.seatId")
        for field, canonical, seen in (
            ("seatId", seat_id, seat_index),
            ("reservationId", reservation_id, reservation_index),
        ):
            if canonical in seen:
                raise _invalid(
                    f"{where}.{field}: {item[field]!r} repeats $.items[{seen[canonical]}].{field}"
                )
            seen[canonical] = index
        items.append(
            OrderItem(
                reservation_id=reservation_id,
                seat_id=seat_id,
                price=to_money(item["price"], f"{where}.price"),
            )
        )
    total = to_money(payload["totalAmount"], "$.totalAmount")
    if len(items) <= _EXACT_SUM_ITEMS:
        sum_of_prices = sum((item.price for item in items), Decimal(0))
    else:
        with localcontext() as context:
            context.prec = 60  # far above any sum of amounts the schema admits
            sum_of_prices = sum((item.price for item in items), Decimal(0))
    if sum_of_prices != total:
        raise _invalid(
            f"$.totalAmount: {total} is not the sum of the item prices, "
            f"{canonical_money(sum_of_prices)}"
        )
    return OrderPlaced(
        message_id=canonical_uuid(payload["messageId"], "$.messageId"),
        order_id=canonical_uuid(payload["orderId"], "$.orderId"),
        customer_id=payload["customerId"],
        items=tuple(items),
        total_amount=total,
        currency=payload["currency"],
        placed_at=parse_timestamp(payload["placedAt"], "$.placedAt"),
        schema_version=version,
    )


BUILDERS: dict[tuple[EventType, int], Builder] = {
    (EventType.SEATS_GENERATED, 1): seats_generated,
    (EventType.RESERVATION_CREATED, 1): reservation_created,
    (EventType.RESERVATION_CREATED, 2): reservation_created,
    (EventType.RESERVATION_EXPIRED, 1): reservation_expired_v1,
    (EventType.RESERVATION_EXPIRED, 2): reservation_expired_v2,
    (EventType.RESERVATION_EXPIRED, 3): reservation_expired_v3,
    (EventType.ORDER_PLACED, 1): order_placed,
}
