"""The Kafka key, checked against the payload id it should carry.

The read models never need the key, but a key naming another entity than the payload means a
producer bug or a mixed-up record, and on a keyed topic it also means the record may sit on
the wrong partition, out of order with the entity's other events. So: a null or empty key is
accepted, a key that does not look like a UUID is ignored (nothing to compare), and a UUID
key (any form, any case) that differs from the payload's id is refused.
"""

from __future__ import annotations

from typing import Any

from workers.decoding.errors import DecodeError, DecodeErrorKind
from workers.decoding.ids import key_spells, uuid_in_key
from workers.events import Event, EventType

KEYED_BY: dict[EventType, tuple[str, str]] = {
    EventType.SEATS_GENERATED: ("eventId", "concert_event_id"),
    EventType.RESERVATION_CREATED: ("seatId", "seat_id"),
    EventType.RESERVATION_EXPIRED: ("seatId", "seat_id"),
    EventType.ORDER_PLACED: ("orderId", "order_id"),
}
"""Per topic: the payload field the key should equal, and the event attribute holding it."""


def check_key(event_type: EventType, key: object, payload: dict[str, Any], event: Event) -> None:
    """Raise `DecodeError(INVALID_VALUE)` if a UUID-looking key disagrees with the payload."""
    if not key:
        return
    if not isinstance(key, bytes):
        if not isinstance(key, bytearray | memoryview):
            return
        key = bytes(key)
    field, attribute = KEYED_BY[event_type]
    expected: str = getattr(event, attribute)
    if key_spells(key, expected) or uuid_in_key(key) is None:
        return
    raise DecodeError(
        DecodeErrorKind.INVALID_VALUE,
        f"key {key.decode('ascii')!r} does not match $.{field} {payload[field]!r}",
    )
