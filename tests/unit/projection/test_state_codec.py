"""The seat state codec: what the table stores must decode to the same state, every time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from workers.projection.batches import decode_state, encode_state
from workers.projection.facts import CatalogFact, CreatedFact, ExpiredFact
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
