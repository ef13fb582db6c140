"""Whatever the bytes, decode returns an event or raises DecodeError, never anything else."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.decoding.upstream import RECORD_TS_MS, payload, raw
from workers.decoding import DecodeError, DecodeErrorKind, decode
from workers.events import EventType

FIXTURES = {
    EventType.RESERVATION_CREATED: "reservation-created.v1.producer",
    EventType.RESERVATION_EXPIRED: "reservation-expired.v3.producer",
    EventType.SEATS_GENERATED: "seats-generated.v1.producer",
    EventType.ORDER_PLACED: "order-placed.v1",
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
event_types = st.sampled_from(list(EventType))
headers = st.lists(
    st.tuples(
        st.sampled_from(["version", "schema-version", "x"]), st.none() | st.binary(max_size=8)
    ),
    max_size=2,
)


def attempt(event_type: EventType, value: bytes | None, key: bytes | None, hdrs: Any) -> None:
    try:
        decode(event_type, value, key, hdrs, RECORD_TS_MS)
    except DecodeError as error:
        assert error.kind is not DecodeErrorKind.INTERNAL, error.reason
        assert error.reason


quick = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@quick
@given(event_types, st.binary(max_size=300), st.none() | st.binary(max_size=40), headers)
def test_arbitrary_bytes(event_type: EventType, value: bytes, key: bytes | None, hdrs: Any) -> None:
    attempt(event_type, value, key, hdrs)


@quick
@given(event_types, st.data())
def test_fixtures_with_one_field_replaced_by_any_json(
    event_type: EventType, data: st.DataObject
) -> None:
    record = payload(FIXTURES[event_type])
    field = data.draw(st.sampled_from(sorted(record)))
    record[field] = data.draw(json_values)
    attempt(event_type, json.dumps(record).encode(), None, [])


@quick
@given(event_types, st.data())
def test_fixtures_with_bytes_flipped_or_cut(event_type: EventType, data: st.DataObject) -> None:
    value = bytearray(raw(FIXTURES[event_type]))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(value) - 1))
        value[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(value)))
    attempt(event_type, bytes(value[:cut]), None, [])
