"""The validators' quick check (jsonschema-rs) never accepts what fastjsonschema refuses.

`validators.validate` returns at once when the quick check says "valid", so a payload it
accepted wrongly would be an event where the schema says dead letter; what it refuses,
fastjsonschema judges again. Held here on every upstream fixture, mutated at any path into
values chosen near the schemas' edges: bounds, patterns with a final newline, booleans for
numbers, wrong types, missing and unknown fields.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from fastjsonschema import JsonSchemaValueException
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tests.unit.decoding.upstream import FIXTURES, payload
from workers.decoding import validators
from workers.decoding.errors import DecodeError
from workers.decoding.versions import detect_version
from workers.events import EventType

NAMES = sorted(p.stem for p in FIXTURES.glob("*.json"))
UUID = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
EDGE_INTS = [0, 1, -1, 2147483647, 2147483648, -2147483648, 10**15 - 1, 10**15, 2**63 - 1]
EDGE_FLOATS = [0.0, -0.0, 1.0, 3.0, 0.5, 1e15, 1e15 - 0.5, 999999999999999.9, -1e-300, 1e300]
EDGE_TEXTS = [
    "", " ", "EUR", "EUR\n", "eur", "EURO", "\n", "a\nb",
    UUID, UUID + "\n", UUID.upper(), UUID.replace("-", ""), UUID[:-1], "{" + UUID + "}",
    "2026-04-06T13:00:00.1234567Z", "2026-04-06T13:00:00Z\n", "2026-04-06T13:00:00.12345678Z",
    "2026-04-06t13:00:00+02:00", "2026-04-06 13:00:00", "٢٠٢٦-04-06T13:00:00Z",
    "a\x1cb", "\x1f", "\u00a0", "\u2028", "a\tb", "٣",
    "x" * 64, "x" * 65, "x" * 128, "x" * 129, "x" * 256, "x" * 257, "é" * 256, "𝄞" * 129,
]  # fmt: skip

scalars = (
    st.none()
    | st.booleans()
    | st.sampled_from(EDGE_INTS)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from(EDGE_FLOATS)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(EDGE_TEXTS)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node[:3]):  # a seat map's first seats are enough
            out += _paths(value, (*path, index))
    return out


def _mutated(data: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> Any:
    if not path:
        return value if how == "replace" else data
    *parents, last = path
    node: Any = data
    for step in parents:
        node = node[step]
    if how == "replace":
        node[last] = value
    elif how == "delete" and isinstance(node, dict):
        del node[last]
    elif how == "add" and isinstance(node, dict):
        node[f"{last}Extra"] = value
    return data


def _schema_of(name: str) -> tuple[EventType, int]:
    event_type = EventType(name.split(".")[0])
    return event_type, detect_version(event_type, payload(name), {})


def _full_accepts(event_type: EventType, version: int, data: Any) -> bool:
    try:
        validators.load_validators()[event_type, version][1](data)
    except JsonSchemaValueException:
        return False
    return True


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_quick_check_accepts_nothing_fastjsonschema_refuses(
    name: str, data: st.DataObject
) -> None:
    event_type, version = _schema_of(name)
    quick = validators.load_validators()[event_type, version][2]
    original = payload(name)
    mutations = data.draw(st.integers(1, 3), label="mutations")
    for _ in range(mutations):
        path = data.draw(st.sampled_from(_paths(original)), label="path")
        how = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]), label="how")
        original = _mutated(original, path, how, data.draw(json_values, label="value"))
    raw = orjson.dumps(original)
    assume(b"\\u0000" not in raw)  # the quick check is only asked about NUL-free bytes
    plain = orjson.loads(raw)  # as orjson parses it: what the quick check is asked about
    accepted = quick(plain)
    event("quick check: valid" if accepted else "quick check: not valid")
    if accepted:
        assert _full_accepts(event_type, version, plain), plain


@pytest.mark.parametrize("name", NAMES)
def test_the_quick_check_accepts_every_upstream_fixture(name: str) -> None:
    """It applies to every schema here (else it would silently be `_never`), and accepts
    the fixtures as they are and with a field the schemas do not know."""
    event_type, version = _schema_of(name)
    quick = validators.load_validators()[event_type, version][2]
    data = payload(name)
    assert quick(data)
    data["fieldFromANewerProducer"] = {"any": ["thing", 1, None]}
    assert quick(data)


@pytest.mark.parametrize(
    ("schema", "applies"),
    [
        ({"type": "string", "pattern": "^(?:[0-9a-f]{8}|[A-Z]{3})\\.[0-9]$"}, True),
        ({"type": "string", "pattern": "^\\S+$"}, False),
        ({"properties": {"a": {"items": [{"pattern": "^\\d{4}$"}]}}}, False),
        ({"properties": {"a": {"pattern": "(?i)^eur$"}}}, False),
        ({"patternProperties": {"^\\w+$": {"type": "string"}}}, False),
        ({"properties": {"price": {"type": "number", "multipleOf": 0.01}}}, False),
    ],
)
def test_schemas_the_two_engines_could_read_differently_get_no_quick_check(
    schema: dict[str, Any], applies: bool
) -> None:
    """Python's `\\s` takes \\x1c-\\x1f and Rust's does not, `\\w`, `\\b` and inline flags differ
    too, float remainders differ: a schema of `$SEATFLOW_SCHEMAS_DIR` that uses them is
    validated by fastjsonschema alone."""
    assert validators.quick_check_applies(schema) is applies
    quick = validators.quick_check({"$schema": "http://json-schema.org/draft-07/schema#", **schema})
    assert (quick is validators._never) is not applies


def test_what_the_quick_check_refuses_fastjsonschema_judges_and_explains() -> None:
    event_type, version = _schema_of("order-placed.v1")
    data = payload("order-placed.v1")
    data["currency"] = "EUR\n"
    assert not validators.load_validators()[event_type, version][2](data)
    with pytest.raises(DecodeError, match=r": \$\.currency: must be an ISO 4217 currency code"):
        validators.validate(event_type, version, data, nul_possible=False, plain=True)
    data["currency"] = "EUR"
    validators.validate(event_type, version, data, nul_possible=False, plain=True)
