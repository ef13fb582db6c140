"""The pure parts of the sinks: statement parameters, key helpers, DSN messages."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pytest

from workers.commands.db import describe_dsn, scrub
from workers.db.migrate import load_migrations, quote_ident
from workers.projection.model import (
    CUSTOMER_COUNTERS,
    DAILY_COUNTERS,
    Mutations,
    OrderHeader,
    ReservationRow,
    SeatRecord,
)
from workers.sinks import postgres_sink
from workers.sinks.postgres_sink import columns, order_lock_key, plan_writes
from workers.sinks.redis_sink import _by_event, _glob_escape, write_payload

T = datetime(2030, 1, 1, tzinfo=UTC)
A, B, C = (f"0000000{n}-0000-4000-8000-000000000000" for n in (1, 2, 3))


def reservation(rid: str) -> ReservationRow:
    return ReservationRow(
        reservation_id=rid, seat_id=A, concert_event_id=None, customer_id="c",
        section=None, seat_number="A-1-1", base_price=Decimal("1.10"), status="active",
        created_at=T, expires_at=T, expired_at=None, order_id=None,
    )  # fmt: skip


def header(oid: str) -> OrderHeader:
    return OrderHeader(
        order_id=oid, message_id=A, customer_id="c", item_count=1,
        total_amount=Decimal("2.00"), currency="EUR", placed_at=T,
    )  # fmt: skip


def test_empty_mutations_plan_no_statement() -> None:
    plan = plan_writes(Mutations())
    assert plan.rows() == 0
    assert not (plan.reservations or plan.order_headers or plan.customers or plan.daily)


def test_rows_are_sorted_by_key_for_a_stable_lock_order() -> None:
    m = Mutations(reservations={C: reservation(C), A: reservation(A), B: reservation(B)})
    plan = plan_writes(m)
    arrays = columns(plan.reservations)
    assert arrays[0] == [A, B, C]
    assert len(arrays) == 12  # one array per column of the statement
    assert arrays[6] == [Decimal("1.10")] * 3  # money stays Decimal
    staged = plan_writes(m, money=str)  # the staged form's text amounts
    assert columns(staged.reservations)[6] == ["1.10"] * 3
    assert [row[:6] + row[7:] for row in staged.reservations] == [
        row[:6] + row[7:] for row in plan.reservations
    ]


def test_orders_lock_covers_headers_and_expiry_counts() -> None:
    m = Mutations(order_headers={C: header(C), A: header(A)}, order_expired_items={B: 1, A: 2})
    plan = plan_writes(m)
    assert plan.order_lock == sorted({order_lock_key(A), order_lock_key(B), order_lock_key(C)})
    assert columns(plan.order_headers)[0] == [A, C]
    assert columns(plan.order_expired) == [[A, B], [2, 1]]


def test_order_lock_keys_are_signed_32_bit() -> None:
    """pg_advisory_xact_lock(int, int) takes signed ints: the whole uint32 range maps."""
    assert order_lock_key("00000000-0000-4000-8000-000000000000") == 0
    assert order_lock_key("00000000-0000-4000-8000-00007fffffff") == 2**31 - 1
    assert order_lock_key("00000000-0000-4000-8000-000080000000") == -(2**31)
    assert order_lock_key("00000000-0000-4000-8000-0000ffffffff") == -1


def test_customer_rows_union_deltas_and_activity() -> None:
    """A customer with only an activity time still gets a row (MemorySink creates one),
    with zero deltas; a customer with deltas only gets a NULL time (GREATEST skips it)."""
    m = Mutations(
        customer={("bob", "orders"): 1, ("bob", "total_spent"): Decimal("9.99")},
        customer_seen={"amy": T},
    )
    plan = plan_writes(m)
    ids, reservations, holds, expirations, orders, spent, seen = columns(plan.customers)
    assert ids == ["amy", "bob"]
    assert (reservations, holds, expirations, orders) == ([0, 0], [0, 0], [0, 0], [0, 1])
    assert spent == [Decimal(0), Decimal("9.99")]
    assert seen == [T, None]


def test_daily_deltas_are_pivoted_per_row() -> None:
    day = date(2030, 1, 1)
    m = Mutations(
        daily={
            (B, "S", day, "revenue"): Decimal("-0.10"),
            (A, "S", day, "reservations"): 1,
            (B, "S", day, "seats_ordered"): -1,
        }
    )
    plan = plan_writes(m)
    assert columns(plan.daily) == [
        [A, B],
        ["S", "S"],
        [day, day],
        [1, 0],
        [0, 0],
        [0, -1],
        [Decimal(0), Decimal("-0.10")],
    ]


def test_statement_columns_cover_the_model_counters() -> None:
    """A counter added to model.py needs a migration and SQL here: fail loudly."""
    assert (*postgres_sink._CUSTOMER_INT_COUNTERS, "total_spent") == CUSTOMER_COUNTERS
    assert (*postgres_sink._DAILY_INT_COUNTERS, "revenue") == DAILY_COUNTERS


def test_seatmap_changes_grouped_by_event() -> None:
    grouped = _by_event([(B, "s2", "reserved"), (A, "s1", "available"), (B, "s1", "ordered")])
    assert grouped == [(A, [("s1", "available")]), (B, [("s1", "ordered"), ("s2", "reserved")])]


def test_redis_payload_mirrors_memory_write_order() -> None:
    """Seats whole, then seat-map sets and deletes, then availability: "0" for required
    fields before the deltas; deltas as strings (Lua numbers are doubles)."""
    m = Mutations(
        seats={
            B: SeatRecord(
                seat_id=B, status="reserved", reservation_id=C, customer_id="c",
                concert_event_id=A, section="S", seat_number="S-1-1", expires_at=T,
            )
        },
        seatmap_set={(A, B): "reserved"},
        seatmap_del={(A, C)},
        availability={(A, "reserved"): 1, (A, "available"): -1},
        availability_fields={(A, "total"), (A, "S:available")},
    )  # fmt: skip
    payload = orjson.loads(write_payload("p:", m))
    assert payload["seats"] == [
        [
            f"p:seat:{B}",
            ["status", "reserved", "reservation_id", C, "customer_id", "c",
             "concert_event_id", A, "section", "S", "seat_number", "S-1-1",
             "expires_at", "2030-01-01T00:00:00.000000Z"],
        ]
    ]  # fmt: skip
    assert payload["hset"] == [[f"p:seatmap:{A}", [B, "reserved"]]]
    assert payload["hdel"] == [[f"p:seatmap:{A}", [C]]]
    key = f"p:availability:{A}"
    assert payload["incr"] == [
        [key, "S:available", "0"], [key, "total", "0"],
        [key, "available", "-1"], [key, "reserved", "1"],
    ]  # fmt: skip
    empty = orjson.loads(write_payload("p:", Mutations()))
    assert empty == {"seats": [], "hset": [], "hdel": [], "incr": []}


def test_glob_escape() -> None:
    assert _glob_escape("t1:sf:") == "t1:sf:"
    assert _glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"


def test_quote_ident() -> None:
    assert quote_ident("read_model") == '"read_model"'
    assert quote_ident('x"; DROP') == '"x""; DROP"'


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "0001_read_model"
    assert "CREATE TABLE IF NOT EXISTS reservations" in migrations[0].sql
    assert "read_model." not in migrations[0].sql  # unqualified: the runner picks the schema


def test_dsn_messages_never_show_the_password() -> None:
    dsn = "postgresql://seatflow:p%40ss@db.example:6543/rm"
    assert describe_dsn(dsn) == "db.example:6543/rm"
    assert describe_dsn("postgresql://u@h/d") == "h:5432/d"
    assert scrub("auth failed for p@ss\nand p%40ss", dsn) == "auth failed for *** and ***"


@pytest.mark.parametrize("held", [True, False])
def test_seat_hash_items_are_its_fields_in_turn(held: bool) -> None:
    """What the Redis sink sends (`hash_items`) is the hash MemorySink defines
    (`hash_fields`): None fields absent, the expiry in UTC with microseconds."""
    record = SeatRecord(
        seat_id=A, status="reserved" if held else "available",
        reservation_id=B if held else None, customer_id="c-1" if held else None,
        concert_event_id=C, section="VIP", seat_number="VIP-1-1",
        expires_at=datetime(2026, 12, 6, 11, 0, tzinfo=UTC) if held else None,
    )  # fmt: skip
    items = record.hash_items()
    assert list(zip(items[::2], items[1::2], strict=True)) == list(record.hash_fields().items())
    expected = {"status": record.status, "concert_event_id": C, "section": "VIP"}
    expected["seat_number"] = "VIP-1-1"
    if held:
        expected |= {"reservation_id": B, "customer_id": "c-1"}
        expected["expires_at"] = "2026-12-06T11:00:00.000000Z"
    assert record.hash_fields() == expected
