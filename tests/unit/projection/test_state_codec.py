"""The seat state codec: what the table stores must decode to the same state, every time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson

from workers.projection.batches import STATE_FORMAT, decode_state, encode_state, state_json
from workers.projection.facts import CatalogFact, CreatedFact, ExpiredFact, fact_to_wire
from workers.projection.seat import SeatState, apply

SEAT = "5ea70000-0000-4000-8000-000000000001"
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def created(n: int) -> CreatedFact:
    return CreatedFact(
        fact_id=f"reservation-created/0/{n}/0", seat_id=SEAT,
        reservation_id=f"7e500000-0000-4000-8000-00000000000{n}",
        message_id=f"aaaa0000-0000-4000-8000-00000000000{n}", customer_id="c'; --",
        seat_number="VIP-1-1", section="VIP", base_price=Decimal("12.50"),
        created_at=T0 + timedelta(minutes=n), expires_at=T0 + timedelta(minutes=n + 15),
    )  # fmt: skip


def test_encode_decode_round_trip_and_reencoding_after_new_facts() -> None:
    state = SeatState(SEAT)
    catalog = CatalogFact(
        fact_id="seats-generated/0/0/0", seat_id=SEAT,
        concert_event_id="00000000-0000-4000-8000-000000000001", section="VIP",
        seat_number="VIP-1-1", generated_at=T0,
    )  # fmt: skip
    apply(state, catalog, (0, 0))
    apply(state, created(1), (1, 0))
    first = encode_state(state)
    assert encode_state(state) == first  # the cached fragments give the same bytes

    expiry = ExpiredFact(
        fact_id="reservation-expired/0/5/0", seat_id=SEAT, reservation_id=created(1).reservation_id,
        message_id=None, customer_id=None, concert_event_id=None,
        expired_at=T0 + timedelta(hours=1),
    )  # fmt: skip
    apply(state, expiry, (2, 0))
    second = encode_state(state)
    assert second != first

    decoded = decode_state(SEAT, second)
    assert decoded.facts == state.facts
    assert encode_state(decoded) == second  # a decoded state encodes to the same bytes
    # and it projects like the original: the same fact again at its position replays the same
    assert apply(decoded, created(2), (3, 0)) == apply(state, created(2), (3, 0))


def test_a_state_is_what_orjson_writes_for_its_document() -> None:
    """`state_json` formats the document itself; the bytes must be orjson's, so that states
    written before and after it (and by either codec path) compare equal."""
    state = SeatState(SEAT)
    for n in range(1, 4):
        apply(state, created(n), (n, 0))
    document = {"v": STATE_FORMAT, "facts": [[p[0], p[1], fact_to_wire(f)] for p, f in state.facts]}
    assert encode_state(state) == orjson.dumps(document)
    assert state_json([]) == orjson.dumps({"v": STATE_FORMAT, "facts": []})
