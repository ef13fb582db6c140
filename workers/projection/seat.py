"""The seat state machine: every rule of the read side, for one seat, in one place.

A seat's state is the set of facts known about it (its catalog entry, the reservations
that held it, the orders and expiries that name those reservations), each with the
position at which the seat projection read it. Everything the read models show about the
seat is *derived* from that set by `derive`, a pure function, so:

- any cross-topic interleaving converges: the result depends on the set, not on the
  order in which its facts arrived;
- a duplicate (the same fact at another position) adds nothing;
- the mutations of a fact are `diff(derive(facts before it), derive(facts up to it))`,
  so reading a fact again at the position where it was first read (after a crash, when
  the table was saved ahead of the sinks) yields exactly the mutations it yielded then,
  and the sinks' checkpoints decide whether to apply them.

The rules (see ../shared/read-models.md and README.md "Projection rules"):

1. A reservation exists once its creation is known. If several creations name it, the one
   with the smallest (created_at, message_id) counts.
2. A reservation is `expired` once an expiry names it (whatever else happened), else
   `ordered` once an order item names it, else `active`.
3. The seat's holder is its newest (created_at, reservation_id) reservation that is not
   expired. An expiry therefore frees the seat only if it names the holder; an expiry of
   an older reservation never frees a seat that a newer one holds.
4. Seat status: `available` without a holder, `ordered` if the holder is ordered, else
   `reserved`.
5. The seat's concert event, section and number come from its catalog entry
   (seats-generated; latest generation wins). Before it is known, the concert event comes
   from an expiry that names it, section and number from the newest creation. Seat maps
   and availability count only seats whose catalog entry is known; an availability hash
   has total, available, reserved, ordered and `{section}:available` for every section
   its catalog names, "0" included.
6. Orders: each order item is counted on the seat it names; item 0 of an order carries
   the order's count and amount for its customer. An order is `reservation_expired` when
   any of its items' reservations expired.
7. Counters of a reservation (customer reservations, holds, expirations; daily
   reservations and expirations) and of an order item (daily seats_ordered, revenue) count
   on the UTC day of the event's own time, under the seat's section (its catalog entry's,
   else the reservation's). A customer's last activity is the latest time
   of any of its events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from workers.projection.facts import CatalogFact, CreatedFact, ExpiredFact, OrderedFact, SeatFact
from workers.projection.model import (
    AVAILABLE,
    ITEM_ACTIVE,
    ITEM_RESERVATION_EXPIRED,
    ORDERED,
    RES_ACTIVE,
    RES_EXPIRED,
    RES_ORDERED,
    RESERVED,
    TOTAL,
    Mutations,
    OrderHeader,
    OrderItemRow,
    ReservationRow,
    SeatRecord,
)

Position = tuple[int, int]
"""Where the seat projection read a fact: (offset in the seat-facts partition, item index)."""

_BY_POSITION = itemgetter(0)


@dataclass(slots=True)
class SeatState:
    """The facts of one seat, in the order of their positions."""

    seat_id: str
    facts: list[tuple[Position, SeatFact]] = field(default_factory=list)
    _view: Mutations | None = field(default=None, repr=False, compare=False)
    encoded: dict[str, bytes] = field(default_factory=dict, repr=False, compare=False)
    """Each fact's encoded form by fact id, kept by the state codec (`batches.encode_state`):
    a fact and its position never change once in the state, so it is encoded once."""

    def position_of(self, fact_id: str) -> Position | None:
        for position, fact in self.facts:
            if fact.fact_id == fact_id:
                return position
        return None

    def view(self) -> Mutations:
        """All read-model content this seat contributes (cached: it is read on every fact)."""
        if self._view is None:
            self._view = derive(self.seat_id, (fact for _, fact in self.facts))
        return self._view


def apply(state: SeatState, fact: SeatFact, position: Position) -> Mutations:
    """Add `fact`, read at `position`, to `state` (in place) and return its mutations."""
    known_at = state.position_of(fact.fact_id)
    if known_at is not None and known_at != position:
        return Mutations()  # the same fact produced twice upstream of us: a duplicate
    last = state.facts[-1][0] if state.facts else None
    if known_at is None and (last is None or position > last):
        before = state.view()
        state.facts.append((position, fact))
        state._view = after = derive(state.seat_id, (f for _, f in state.facts))
        return diff(before, after)
    if known_at is None:
        state.facts.append((position, fact))
        state.facts.sort(key=lambda item: item[0])
        state._view = None
    # Read again where it was first read (the table was saved ahead of the sinks): replay
    # exactly the mutations it produced then.
    before = derive(state.seat_id, (f for p, f in state.facts if p < position))
    after = derive(state.seat_id, (f for p, f in state.facts if p <= position))
    return diff(before, after)


def apply_range(
    state: SeatState,
    items: Sequence[tuple[Position, SeatFact]],
    low: Position,
    high: Position,
    into: Mutations,
) -> bool:
    """Add one seat's facts read in the position range [low, high) to `state` (in place)
    and their mutations, all together, to `into`: one derivation instead of one per fact.

    `apply` gives a fact the mutations `diff(derive(facts before it), derive(facts up to
    it))`; over a range of positions those telescope to `diff(derive(facts before low),
    derive(facts before high))`, the same content once merged. Duplicates follow `apply`:
    a fact known at another position adds nothing; one known at its own position (read
    again after a crash, its state saved ahead of the sinks) counts again, so the range
    yields exactly the mutations it yielded the first time.

    `into` collects a whole batch, seat after seat: what `Mutations.merge` of each seat's
    mutations would give, except that counters that sum to zero stay as zeros until the
    batch's owner calls `into.drop_zero_counts()` once. Why: most seats of a replay batch
    are new, and `diff(nothing, after)` is `after` itself, so a new seat is derived
    straight into the batch (`derive(..., into=)`) instead of into a view of its own that
    is then merged (a fifth of the projecting process's time), and no view is kept for
    it (`SeatState.view` derives one if the seat comes back).

    Returns whether the state changed and must be saved.
    """
    facts = state.facts
    last = facts[-1][0] if facts else None
    fresh = last is None or last < low  # nothing of this batch or later is known yet
    new_seat = not facts  # diff(nothing, after) is `after` itself: derive into `into`
    before = state.view() if fresh and not new_seat else None
    known = {fact.fact_id: position for position, fact in facts} if facts else {}
    added = counted = False
    for position, fact in items:
        at = known.get(fact.fact_id)
        if at is None:
            facts.append((position, fact))
            known[fact.fact_id] = position
            added = counted = True
        elif at == position:
            counted = True  # processed again after a crash: count it again
        # else: a duplicate of a fact known at another position: nothing
    if not counted:
        return False
    if new_seat:  # read only from here on: every fact is in the range
        derive(state.seat_id, (f for _, f in facts), into)
        state._view = None
        return added
    if added and not fresh:
        facts.sort(key=_BY_POSITION)
    if facts[-1][0] < high:
        after = derive(state.seat_id, (f for _, f in facts))
        state._view = after
    else:  # facts of later batches are known (a resumed run): stop at this batch
        after = derive(state.seat_id, (f for p, f in facts if p < high))
        state._view = None
    if before is None:
        before = derive(state.seat_id, (f for p, f in facts if p < low))
    into.merge(diff(before, after))
    return added


# ---------------------------------------------------------------- derivation


def derive(seat_id: str, facts: Iterable[SeatFact], into: Mutations | None = None) -> Mutations:
    """The read-model content of one seat, as a function of its set of facts.

    `into`: add the content to these mutations (of other seats) instead of a new, empty
    one, as `into.merge(derive(seat_id, facts))` would, but for counters that sum to
    zero (see `apply_range`): counters and seat-map fields are added, rows set, an
    order's header kept if it ranks first.

    Written for speed (it runs once per seat and replay batch, the largest cost of a
    replay's projecting process): counters are updated inline, and the ranks are
    compared only when two facts compete for one slot.
    """
    catalog: CatalogFact | None = None
    created: dict[str, CreatedFact] = {}
    expired: dict[str, ExpiredFact] = {}
    orders: dict[str, OrderedFact] = {}  # one item per order on this seat
    view = Mutations() if into is None else into
    seen = view.customer_seen
    fields = view.availability_fields

    for fact in facts:
        kind = type(fact)
        if kind is CreatedFact:
            who, at = fact.customer_id, fact.created_at
            mine = created.get(fact.reservation_id)
            if mine is None or (at, fact.message_id) < (mine.created_at, mine.message_id):
                created[fact.reservation_id] = fact
        elif kind is ExpiredFact:
            who, at = fact.customer_id, fact.expired_at
            mine_x = expired.get(fact.reservation_id)
            if mine_x is None or _expiry_rank(fact) < _expiry_rank(mine_x):
                expired[fact.reservation_id] = fact
        elif kind is OrderedFact:
            who, at = fact.customer_id, fact.placed_at
            mine_o = orders.get(fact.order_id)
            if mine_o is None or _order_rank(fact) < _order_rank(mine_o):
                orders[fact.order_id] = fact
        else:
            event = fact.concert_event_id
            fields.update(
                ((event, TOTAL), (event, AVAILABLE), (event, RESERVED), (event, ORDERED),
                 (event, f"{fact.section}:available"))
            )  # fmt: skip
            if catalog is None or _catalog_rank(fact) > _catalog_rank(catalog):
                catalog = fact
            continue
        if who is not None:  # the customer's last activity
            current = seen.get(who)
            if current is None or at > current:
                seen[who] = at

    catalog_section = catalog.section if catalog is not None else None
    concert_event_id = (
        catalog.concert_event_id if catalog is not None else _expiry_concert_event(expired)
    )
    if len(orders) > 1:
        ordered_by: dict[str, str] = {}
        for order in sorted(orders.values(), key=_order_rank, reverse=True):
            ordered_by[order.reservation_id] = order.order_id  # the smallest rank wins
    else:
        ordered_by = {o.reservation_id: o.order_id for o in orders.values()}

    # Reservations and the holder (rules 1-3).
    holder: CreatedFact | None = None
    newest: CreatedFact | None = None
    holder_status = AVAILABLE
    customer, daily, reservations = view.customer, view.daily, view.reservations
    for reservation_id, creation in created.items():
        expiry = expired.get(reservation_id)
        order_id = ordered_by.get(reservation_id)
        status = RES_EXPIRED if expiry else RES_ORDERED if order_id else RES_ACTIVE
        section = creation.section if creation.section is not None else catalog_section
        reservations[reservation_id] = ReservationRow(
            reservation_id=reservation_id,
            seat_id=seat_id,
            concert_event_id=concert_event_id,
            customer_id=creation.customer_id,
            section=section,
            seat_number=creation.seat_number,
            base_price=creation.base_price,
            status=status,
            created_at=creation.created_at,
            expires_at=creation.expires_at,
            expired_at=expiry.expired_at if expiry else None,
            order_id=order_id,
        )
        who = creation.customer_id
        key = (who, "reservations")
        customer[key] = customer.get(key, 0) + 1
        if status == RES_ACTIVE:
            key = (who, "active_holds")
            customer[key] = customer.get(key, 0) + 1
        if expiry:
            key = (who, "expirations")
            customer[key] = customer.get(key, 0) + 1
        seat_section = catalog_section or section
        if concert_event_id is not None and seat_section is not None:
            key = (concert_event_id, seat_section, creation.created_at.date(), "reservations")
            daily[key] = daily.get(key, 0) + 1
            if expiry:
                key = (concert_event_id, seat_section, expiry.expired_at.date(), "expirations")
                daily[key] = daily.get(key, 0) + 1
        if newest is None or _newer(creation, newest):
            newest = creation
        if status != RES_EXPIRED and (holder is None or _newer(creation, holder)):
            holder = creation
            holder_status = ORDERED if status == RES_ORDERED else RESERVED

    # Orders (rule 6).
    headers, expired_items = view.order_headers, view.order_expired_items
    for order in orders.values():
        order_id = order.order_id
        item_expired = order.reservation_id in expired
        view.order_items[(order_id, seat_id)] = OrderItemRow(
            order_id=order_id,
            seat_id=seat_id,
            reservation_id=order.reservation_id,
            price=order.price,
            status=ITEM_RESERVATION_EXPIRED if item_expired else ITEM_ACTIVE,
        )
        header = headers.get(order_id)
        if header is None or (order.placed_at, order.message_id) < header.rank():
            headers[order_id] = OrderHeader(
                order_id=order_id,
                message_id=order.message_id,
                customer_id=order.customer_id,
                item_count=order.item_count,
                total_amount=order.total_amount,
                currency=order.currency,
                placed_at=order.placed_at,
            )
        if item_expired:
            expired_items[order_id] = expired_items.get(order_id, 0) + 1
        if order.item_index == 0:
            _add(customer, (order.customer_id, "orders"), 1)
            _add(customer, (order.customer_id, "total_spent"), order.total_amount)
        reserved_here = created.get(order.reservation_id)
        section = catalog_section or (reserved_here.section if reserved_here else None)
        if concert_event_id is not None and section is not None:
            day = order.placed_at.date()
            _add(daily, (concert_event_id, section, day, "seats_ordered"), 1)
            _add(daily, (concert_event_id, section, day, "revenue"), order.price)

    # The seat itself (rules 4-5).
    if catalog is not None or created:
        view.seats[seat_id] = SeatRecord(
            seat_id=seat_id,
            status=holder_status,
            reservation_id=holder.reservation_id if holder else None,
            customer_id=holder.customer_id if holder else None,
            concert_event_id=concert_event_id,
            section=catalog.section if catalog else newest.section if newest else None,
            seat_number=catalog.seat_number if catalog else newest.seat_number if newest else None,
            expires_at=holder.expires_at if holder else None,
        )
    if catalog is not None:
        event = catalog.concert_event_id
        view.seatmap_set[(event, seat_id)] = holder_status
        if view.seatmap_del:
            view.seatmap_del.discard((event, seat_id))
        availability = view.availability
        for key in (
            ((event, TOTAL), (event, holder_status), (event, f"{catalog.section}:available"))
            if holder_status == AVAILABLE
            else ((event, TOTAL), (event, holder_status))
        ):
            availability[key] = availability.get(key, 0) + 1
    return view


def diff(before: Mutations, after: Mutations) -> Mutations:
    """The mutations that turn the read-model content `before` into `after`.

    Runs for every fact: most parts of a seat's content are empty or unchanged, so each
    part is compared only when one side has it.
    """
    out = Mutations()
    seats = before.seats
    for seat_id, record in after.seats.items():
        if seats.get(seat_id) != record:
            out.seats[seat_id] = record
    if before.seatmap_set:
        seatmap = before.seatmap_set
        out.seatmap_del = seatmap.keys() - after.seatmap_set.keys()
        for key, status in after.seatmap_set.items():
            if seatmap.get(key) != status:
                out.seatmap_set[key] = status
    elif after.seatmap_set:
        out.seatmap_set.update(after.seatmap_set)
    if after.reservations:
        _diff_rows(before.reservations, after.reservations, out.reservations)
    if after.order_items:
        _diff_rows(before.order_items, after.order_items, out.order_items)
        _diff_rows(before.order_headers, after.order_headers, out.order_headers)
    if before.availability or after.availability:
        out.availability = _deltas(before.availability, after.availability)
    if before.order_expired_items or after.order_expired_items:
        out.order_expired_items = _deltas(before.order_expired_items, after.order_expired_items)
    if before.customer or after.customer:
        out.customer = _deltas(before.customer, after.customer)
    if before.daily or after.daily:
        out.daily = _deltas(before.daily, after.daily)
    if after.availability_fields:
        out.availability_fields = after.availability_fields - before.availability_fields
    seen = before.customer_seen
    for customer_id, at in after.customer_seen.items():
        earlier = seen.get(customer_id)
        if earlier is None or at > earlier:
            out.customer_seen[customer_id] = at
    return out


def _deltas(before: dict, after: dict) -> dict:  # type: ignore[type-arg]
    """after - before, key by key, without the zeros."""
    out = {}
    for key, value in after.items():
        delta = value - before.get(key, 0)
        if delta:
            out[key] = delta
    for key, value in before.items():
        if key not in after and value:
            out[key] = -value
    return out


def _diff_rows(before: dict, after: dict, out: dict) -> None:  # type: ignore[type-arg]
    for key, row in after.items():
        if before.get(key) != row:
            out[key] = row


def _add(counters: dict, key: object, value: object) -> None:  # type: ignore[type-arg]
    counters[key] = counters.get(key, 0) + value


def _newer(a: CreatedFact, b: CreatedFact) -> bool:
    return (a.created_at, a.reservation_id) > (b.created_at, b.reservation_id)


def _section(catalog: CatalogFact | None) -> str | None:
    return catalog.section if catalog else None


def _catalog_rank(fact: CatalogFact) -> tuple:  # type: ignore[type-arg]
    return (fact.generated_at, fact.concert_event_id, fact.section, fact.seat_number)


def _expiry_rank(fact: ExpiredFact) -> tuple:  # type: ignore[type-arg]
    return (fact.expired_at, fact.message_id or "", fact.fact_id)


def _order_rank(fact: OrderedFact) -> tuple:  # type: ignore[type-arg]
    return (fact.placed_at, fact.message_id, fact.reservation_id, fact.item_index)


def _expiry_concert_event(expired: dict[str, ExpiredFact]) -> str | None:
    events = [x.concert_event_id for x in expired.values() if x.concert_event_id is not None]
    return min(events) if events else None
