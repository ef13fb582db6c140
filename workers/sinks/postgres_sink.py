"""The PostgreSQL sink: reservations, orders, customer activity and daily sales.

`apply` is one transaction that reads and locks the batch's checkpoints, drops what was
already applied (`pending`), folds the rest (`merged`) and writes it set-based: one
statement per table, its rows passed as parallel arrays and expanded with `unnest`, so a
batch of thousands of mutations costs about ten round trips, not thousands. The new
checkpoints are written in the same transaction, which makes a batch exactly-once: a crash
before COMMIT leaves nothing, a re-delivered batch after COMMIT is skipped.

A sink for a single writer with very large batches (the replay's shadow copy) may send
the rows by binary COPY into temporary staging tables instead (`staged`): the same
statements, reading their rows from there.

The content written must equal `MemorySink`'s for the same batches (tests/integration/
sinks), so each statement mirrors one loop of `MemorySink.write`:

- reservations, order_items: absolute rows, upserted whole;
- orders: the header of the smallest (placed_at, message_id) wins (`WHERE` on conflict);
  `expired_items` is changed by deltas only, and `state` is a generated column;
- customer_activity: counters add up, last_activity_at only moves forward (GREATEST,
  which ignores NULLs); a row exists once any delta or activity touched the customer;
- event_sales_daily: counters add up, and a row whose counters are all back to zero is
  deleted, so that which rows exist does not depend on event order or batching.

Lock order: workers on different partitions share order, customer and daily rows, and
often create the same new row at the same time (every seat of an order writes its header,
from its own partition). Tables are written in a fixed order, and:

- customer_activity and event_sales_daily are each ONE upsert with its rows sorted by key:
  an upsert locks (or inserts) rows in input order whether they exist or not, so two
  batches meet in the same order and one simply waits for the other;
- orders take three statements (headers, then expiry counts, on different key sets), so
  they are serialised first by transaction-scoped advisory locks on the order ids, taken
  in sorted order. Row locks cannot do that: `SELECT ... FOR UPDATE` skips rows that a
  concurrent batch is inserting, which let two batches lock orders in opposite orders
  and deadlock (tests/integration/sinks/test_postgres.py reproduced it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from workers.db.migrate import quote_ident
from workers.generation import check_postgres_generation
from workers.projection.model import Mutations, Number
from workers.settings import Settings
from workers.sinks.base import PROJECTION, ApplyResult, PositionedMutations, merged, pending
from workers.verify.snapshot import PG_TABLES, Snapshot, norm

# Column order of the customer and daily statements below (money columns come last);
# tests/unit/sinks checks that they cover model.py's counters.
_CUSTOMER_INT_COUNTERS = ("reservations", "active_holds", "expirations", "orders")
_DAILY_INT_COUNTERS = ("reservations", "expirations", "seats_ordered")

Rows = list[tuple[Any, ...]]
"""A statement's rows, in its columns' order (`ROW_TYPES`)."""
Columns = list[list[Any]]
"""Parallel arrays, one per column, as `unnest($1::t1[], $2::t2[], ...)` takes them."""


# ---------------------------------------------------------------- pure parameter building


@dataclass(slots=True)
class WritePlan:
    """The rows of every statement of one flush, keys sorted (stable lock order)."""

    reservations: Rows = field(default_factory=list)
    order_items: Rows = field(default_factory=list)
    order_headers: Rows = field(default_factory=list)
    order_expired: Rows = field(default_factory=list)
    order_lock: list[int] = field(default_factory=list)
    """Advisory lock keys of every order the flush touches, sorted: taken before any
    write to orders."""
    customers: Rows = field(default_factory=list)
    daily: Rows = field(default_factory=list)

    def rows(self) -> int:
        """Rows the plan writes (a row written by two statements counts twice)."""
        return sum(
            len(rows)
            for rows in (
                self.reservations, self.order_items, self.order_headers, self.order_expired,
                self.customers, self.daily,
            )
        )  # fmt: skip


def columns(rows: Rows) -> Columns:
    """Rows to parallel column arrays (`unnest_source`)."""
    return [list(column) for column in zip(*rows, strict=True)]


def _same(value: Decimal) -> Decimal:
    return value


ORDER_LOCK_CLASS = 0x5EA7F11
"""First key of the orders' advisory locks (the second is `order_lock_key`), apart from
the migration lock's class and from anyone's single-bigint advisory locks."""


def order_lock_key(order_id: str) -> int:
    """A signed 32-bit advisory lock key for an order id (a UUID): its last 32 bits.

    Two orders sharing a key merely serialise; keys are sorted, so never a deadlock.
    """
    return (int(order_id[-8:], 16) ^ 0x80000000) - 0x80000000


def plan_writes(m: Mutations, money: Callable[[Decimal], Any] = _same) -> WritePlan:
    """Turn merged mutations into the statements' rows (pure: unit-tested).

    `money`: how amounts travel (`Decimal` as they are, or `str` for the staged form's
    text columns: `staged_source`). Rows are taken in the order of their sorted keys
    (sorting the keys alone costs half of sorting (key, row) pairs)."""
    plan = WritePlan()
    reservations, items, headers = m.reservations, m.order_items, m.order_headers
    plan.reservations = [
        (
            r.reservation_id, r.seat_id, r.concert_event_id, r.customer_id, r.section,
            r.seat_number, money(r.base_price), r.status, r.created_at, r.expires_at,
            r.expired_at, r.order_id,
        )
        for r in map(reservations.__getitem__, sorted(reservations))
    ]  # fmt: skip
    plan.order_items = [
        (i.order_id, i.seat_id, i.reservation_id, money(i.price), i.status)
        for i in map(items.__getitem__, sorted(items))
    ]
    plan.order_headers = [
        (
            h.order_id, h.message_id, h.customer_id, h.item_count, money(h.total_amount),
            h.currency, h.placed_at,
        )
        for h in map(headers.__getitem__, sorted(headers))
    ]  # fmt: skip
    plan.order_expired = sorted(m.order_expired_items.items())
    plan.order_lock = sorted(
        {order_lock_key(o) for o in (*m.order_headers, *m.order_expired_items)}
    )

    # One row per customer: the union of counter deltas and activity times (MemorySink
    # creates the row on either).
    counters: dict[str, dict[str, Number]] = {}
    for (customer_id, counter), delta in m.customer.items():
        counters.setdefault(customer_id, {})[counter] = delta
    plan.customers = [
        (
            customer_id,
            *(deltas.get(c, 0) for c in _CUSTOMER_INT_COUNTERS),
            money(Decimal(deltas.get("total_spent", 0))),
            m.customer_seen.get(customer_id),
        )
        for customer_id in sorted(set(counters) | set(m.customer_seen))
        for deltas in (counters.get(customer_id, {}),)
    ]

    daily: dict[tuple[str, str, date], dict[str, Number]] = {}
    for (event, section, day, counter), delta in m.daily.items():
        daily.setdefault((event, section, day), {})[counter] = delta
    plan.daily = [
        (
            *key,
            *(deltas.get(c, 0) for c in _DAILY_INT_COUNTERS),
            money(Decimal(deltas.get("revenue", 0))),
        )
        for key, deltas in sorted(daily.items())
    ]
    return plan


# ---------------------------------------------------------------- SQL

ROW_TYPES: dict[str, tuple[str, ...]] = {
    "reservations": (
        "uuid", "uuid", "uuid", "text", "text", "text", "numeric", "text", "timestamptz",
        "timestamptz", "timestamptz", "uuid",
    ),
    "order_items": ("uuid", "uuid", "uuid", "numeric", "text"),
    "order_headers": ("uuid", "uuid", "text", "int", "numeric", "text", "timestamptz"),
    "order_expired": ("uuid", "int"),
    "customers": ("text", "bigint", "bigint", "bigint", "bigint", "numeric", "timestamptz"),
    "daily": ("uuid", "text", "date", "bigint", "bigint", "bigint", "numeric"),
}  # fmt: skip
"""The columns of each statement's rows, in `plan_writes` order: the arrays' types of the
`unnest` form, the staging tables' columns of the staged form."""

STAGE_PREFIX = "seatflow_stage_"


def unnest_source(name: str) -> str:
    """The rows of statement `name` as parallel array parameters $1, $2, ..."""
    types = ROW_TYPES[name]
    return "unnest(" + ", ".join(f"${i}::{t}[]" for i, t in enumerate(types, 1)) + ")"


def staged_source(name: str) -> str:
    """The rows of statement `name` in its staging table (`PostgresSink(staged=True)`),
    amounts cast from the text they are staged as (`staging_ddl`)."""
    selected = ", ".join(
        f"c{i}::numeric" if t == "numeric" else f"c{i}" for i, t in enumerate(ROW_TYPES[name], 1)
    )
    return f"(SELECT {selected} FROM pg_temp.{STAGE_PREFIX}{name})"


def staging_ddl() -> str:
    """The session's staging tables, emptied at every commit.

    Amounts are staged as text (`str(Decimal)`, which PostgreSQL reads back exactly):
    asyncpg's binary numeric encoder takes 1.7 us a value, `str` 0.1, and a replay
    batch holds a quarter of a million amounts."""
    return "".join(
        f"CREATE TEMP TABLE IF NOT EXISTS {STAGE_PREFIX}{name} ("
        + ", ".join(f"c{i} {'text' if t == 'numeric' else t}" for i, t in enumerate(types, 1))
        + ") ON COMMIT DELETE ROWS;\n"
        for name, types in ROW_TYPES.items()
    )


def _statements(s: str, source: Callable[[str], str] = unnest_source) -> dict[str, str]:
    """Every statement, with tables qualified by the quoted schema `s`, each table's rows
    read from `source(statement name)` (`unnest_source` or `staged_source`).

    Qualified names (rather than a search_path) because the pool may be shared with code
    that expects another search_path.
    """
    return {
        "ensure_checkpoints": f"""
            INSERT INTO {s}.projection_checkpoints (projection, topic, partition, next_offset)
            SELECT $1, $2, p, 0 FROM unnest($3::int[]) AS u(p)
            ON CONFLICT (projection, topic, partition) DO NOTHING""",
        "lock_checkpoints": f"""
            SELECT partition, next_offset FROM {s}.projection_checkpoints
            WHERE projection = $1 AND topic = $2 AND partition = ANY($3::int[])
            ORDER BY partition
            FOR UPDATE""",
        "positions": f"""
            SELECT partition, next_offset FROM {s}.projection_checkpoints
            WHERE projection = $1 AND topic = $2""",
        "reservations": f"""
            INSERT INTO {s}.reservations (
                reservation_id, seat_id, concert_event_id, customer_id, section, seat_number,
                base_price, status, created_at, expires_at, expired_at, order_id, projected_at)
            SELECT u.*, now() FROM {source("reservations")} AS u
            ON CONFLICT (reservation_id) DO UPDATE SET
                seat_id = excluded.seat_id,
                concert_event_id = excluded.concert_event_id,
                customer_id = excluded.customer_id,
                section = excluded.section,
                seat_number = excluded.seat_number,
                base_price = excluded.base_price,
                status = excluded.status,
                created_at = excluded.created_at,
                expires_at = excluded.expires_at,
                expired_at = excluded.expired_at,
                order_id = excluded.order_id,
                projected_at = excluded.projected_at""",
        "order_items": f"""
            INSERT INTO {s}.order_items (
                order_id, seat_id, reservation_id, price, status, projected_at)
            SELECT u.*, now() FROM {source("order_items")} AS u
            ON CONFLICT (order_id, seat_id) DO UPDATE SET
                reservation_id = excluded.reservation_id,
                price = excluded.price,
                status = excluded.status,
                projected_at = excluded.projected_at""",
        # unnest yields the (sorted) keys in array order, so the locks are taken in order.
        "lock_orders": f"""
            SELECT pg_advisory_xact_lock({ORDER_LOCK_CLASS}, k) FROM unnest($1::int[]) AS u(k)""",
        "order_headers": f"""
            INSERT INTO {s}.orders AS o (
                order_id, message_id, customer_id, item_count, total_amount, currency,
                placed_at, projected_at)
            SELECT u.*, now() FROM {source("order_headers")} AS u
            ON CONFLICT (order_id) DO UPDATE SET
                message_id = excluded.message_id,
                customer_id = excluded.customer_id,
                item_count = excluded.item_count,
                total_amount = excluded.total_amount,
                currency = excluded.currency,
                placed_at = excluded.placed_at,
                projected_at = excluded.projected_at
            WHERE (excluded.placed_at, excluded.message_id) < (o.placed_at, o.message_id)""",
        "order_expired": f"""
            UPDATE {s}.orders AS o
            SET expired_items = o.expired_items + u.d, projected_at = now()
            FROM {source("order_expired")} AS u(id, d)
            WHERE o.order_id = u.id
            RETURNING o.order_id""",
        "customers": f"""
            INSERT INTO {s}.customer_activity AS c (
                customer_id, reservations, active_holds, expirations, orders, total_spent,
                last_activity_at, projected_at)
            SELECT u.*, now() FROM {source("customers")} AS u
            ON CONFLICT (customer_id) DO UPDATE SET
                reservations = c.reservations + excluded.reservations,
                active_holds = c.active_holds + excluded.active_holds,
                expirations = c.expirations + excluded.expirations,
                orders = c.orders + excluded.orders,
                total_spent = c.total_spent + excluded.total_spent,
                last_activity_at = GREATEST(c.last_activity_at, excluded.last_activity_at),
                projected_at = excluded.projected_at""",
        # Returns only the rows that came back to all-zero (usually none), so the DELETE
        # below costs a round trip only when there is something to delete. A DELETE in the
        # same statement could not see the rows this INSERT changes.
        "daily": f"""
            WITH up AS (
                INSERT INTO {s}.event_sales_daily AS d (
                    concert_event_id, section, day, reservations, expirations, seats_ordered,
                    revenue, projected_at)
                SELECT u.*, now() FROM {source("daily")} AS u
                ON CONFLICT (concert_event_id, section, day) DO UPDATE SET
                    reservations = d.reservations + excluded.reservations,
                    expirations = d.expirations + excluded.expirations,
                    seats_ordered = d.seats_ordered + excluded.seats_ordered,
                    revenue = d.revenue + excluded.revenue,
                    projected_at = excluded.projected_at
                RETURNING concert_event_id, section, day, reservations, expirations,
                    seats_ordered, revenue)
            SELECT concert_event_id, section, day FROM up
            WHERE reservations = 0 AND expirations = 0 AND seats_ordered = 0 AND revenue = 0""",
        "daily_delete": f"""
            DELETE FROM {s}.event_sales_daily AS d
            USING unnest($1::uuid[], $2::text[], $3::date[]) AS u(e, s, day)
            WHERE d.concert_event_id = u.e AND d.section = u.s AND d.day = u.day
              AND d.reservations = 0 AND d.expirations = 0 AND d.seats_ordered = 0
              AND d.revenue = 0""",
        "set_checkpoints": f"""
            UPDATE {s}.projection_checkpoints AS c
            SET next_offset = u.o, projected_at = now()
            FROM unnest($3::int[], $4::bigint[]) AS u(p, o)
            WHERE c.projection = $1 AND c.topic = $2 AND c.partition = u.p""",
    }


class UnknownOrderError(LookupError):
    """Expired-item deltas named orders that have no row: the projection broke its promise
    that an order's header is always written before (or with) its expiry counts.

    `MemorySink` fails the same way (KeyError); failing keeps the checkpoint where it was
    instead of silently losing the count.
    """


# ---------------------------------------------------------------- the sink


class PostgresSink:
    """Applies batches to the read-model tables of one schema (see the module docstring)."""

    name = "postgres"

    def __init__(
        self,
        pool: asyncpg.Pool,
        schema: str = "read_model",
        *,
        generation: int | None = None,
        lock_orders: bool = True,
        staged: bool = False,
    ) -> None:
        self.pool = pool
        self.schema = schema
        self.generation = generation
        """When set, each batch first checks that this generation still owns `schema`
        (workers/generation.py); None: no fence (tests, the replay's shadow copy)."""
        self.lock_orders = lock_orders
        """Take the orders' advisory locks ("Lock order"). Only a schema with a single
        writer may do without: the replay's shadow copy, whose batches name tens of
        thousands of orders, more locks than PostgreSQL's lock table holds."""
        self.staged = staged
        """Send each table's rows by binary COPY into a temporary staging table, read by
        the statements from there, instead of as array parameters. For batches of hundreds
        of thousands of rows (the replay): asyncpg checks every element of an array
        parameter against three abstract base classes, in Python (about a tenth of a
        replay's CPU), which COPY does not; the server's work is about the same. Only for
        a schema with one writer: the statements then read their rows in the staging
        table's order, which "Lock order" does not rely on for a single writer."""
        self._sql = _statements(quote_ident(schema), staged_source if staged else unnest_source)
        self._owns_pool = False

    @classmethod
    async def connect(
        cls,
        settings: Settings,
        *,
        max_size: int = 4,
        generation: int | None = None,
        staged: bool = False,
    ) -> PostgresSink:
        """A sink with its own pool; the schema must exist (`seatflow db migrate`)."""
        # One connection at start (fail fast), but no floor to maintain: asyncpg restores a
        # floor in the background and logs a traceback per failed attempt during an outage,
        # while the worker's own retry already waits for PostgreSQL (logging twice in all).
        pool = await asyncpg.create_pool(
            settings.postgres_dsn.get_secret_value(), init_size=1, min_size=0, max_size=max_size
        )
        sink = cls(pool, settings.pg_schema, generation=generation, staged=staged)
        sink._owns_pool = True
        return sink

    async def close(self) -> None:
        """Close the pool if `connect` made it; a pool passed in belongs to the caller."""
        if self._owns_pool:
            await self.pool.close()

    async def positions(self, topic: str) -> dict[int, int]:
        rows = await self.pool.fetch(self._sql["positions"], PROJECTION, topic)
        return {row["partition"]: row["next_offset"] for row in rows}

    async def apply(self, topic: str, batch: Sequence[PositionedMutations]) -> ApplyResult:
        if not batch:
            return ApplyResult(applied=0, skipped=0)
        partitions = sorted({entry.partition for entry in batch})
        sql = self._sql
        async with self.pool.acquire() as conn, conn.transaction():
            if self.generation is not None:
                await check_postgres_generation(conn, self.schema, self.generation)
            if self.staged:
                await conn.execute(staging_ddl())
            # Create missing checkpoint rows so that they can be locked: the lock is what
            # makes two sinks racing for one partition (a rebalance) apply it only once.
            await conn.execute(sql["ensure_checkpoints"], PROJECTION, topic, partitions)
            rows = await conn.fetch(sql["lock_checkpoints"], PROJECTION, topic, partitions)
            todo, advanced = pending(batch, {r["partition"]: r["next_offset"] for r in rows})
            if todo:
                plan = plan_writes(merged(todo), str if self.staged else _same)
                await self._write(conn, plan)
                moved = sorted(advanced.items())
                await conn.execute(
                    sql["set_checkpoints"],
                    PROJECTION,
                    topic,
                    [p for p, _ in moved],
                    [o for _, o in moved],
                )
        return ApplyResult(applied=len(todo), skipped=len(batch) - len(todo))

    async def _write(self, conn: asyncpg.Connection, plan: WritePlan) -> None:
        """Run the plan's statements, tables in a fixed order (see "Lock order")."""
        sql = self._sql
        if plan.reservations:
            await self._run(conn, "reservations", plan.reservations)
        if plan.order_items:
            await self._run(conn, "order_items", plan.order_items)
        if plan.order_lock and self.lock_orders:
            await conn.execute(sql["lock_orders"], plan.order_lock)
        if plan.order_headers:
            await self._run(conn, "order_headers", plan.order_headers)
        if plan.order_expired:
            updated = await self._run(conn, "order_expired", plan.order_expired, fetch=True)
            if len(updated) != len(plan.order_expired):
                found = {str(r["order_id"]) for r in updated}
                missing = sorted({order_id for order_id, _ in plan.order_expired} - found)
                raise UnknownOrderError(
                    f"expired-item deltas for {len(missing)} order(s) without a row, "
                    f"e.g. {missing[:3]}"
                )
        if plan.customers:
            await self._run(conn, "customers", plan.customers)
        if plan.daily:
            zeros = await self._run(conn, "daily", plan.daily, fetch=True)
            if zeros:
                await conn.execute(
                    sql["daily_delete"],
                    [r["concert_event_id"] for r in zeros],
                    [r["section"] for r in zeros],
                    [r["day"] for r in zeros],
                )

    async def _run(
        self, conn: asyncpg.Connection, name: str, rows: Rows, *, fetch: bool = False
    ) -> list[asyncpg.Record]:
        """Statement `name` on `rows`: as array parameters, or COPYed to its staging
        table first (`staged`)."""
        if self.staged:
            await conn.copy_records_to_table(
                STAGE_PREFIX + name, records=rows, schema_name="pg_temp"
            )
            args: tuple[Any, ...] = ()
        else:
            args = tuple(columns(rows))
        if fetch:
            return await conn.fetch(self._sql[name], *args)
        await conn.execute(self._sql[name], *args)
        return []

    async def snapshot(self) -> Snapshot:
        """The tables' content in the Snapshot format (`projected_at` left out)."""
        snap = Snapshot()
        s = quote_ident(self.schema)
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            # One snapshot of all tables, even while a sink is writing.
            for table, (keys, values) in PG_TABLES.items():
                columns = ", ".join((*keys, *values))
                rows = await conn.fetch(f"SELECT {columns} FROM {s}.{table}")
                snap.tables[table] = {
                    tuple(norm(row[k]) for k in keys): tuple(norm(row[v]) for v in values)
                    for row in rows
                }
        return snap
