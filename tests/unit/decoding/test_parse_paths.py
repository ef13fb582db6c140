"""The fast (orjson) and exact (stdlib, Decimal) JSON paths accept and refuse alike."""

from __future__ import annotations

from decimal import Decimal

import pytest

from workers.decoding import DecodeError, DecodeErrorKind
from workers.decoding.json_bytes import (
    MAX_DEPTH,
    loads_exact,
    loads_fast,
    needs_exact,
    parse_object,
)

BAD = {
    "nan": b'{"a":NaN}',
    "infinity": b'{"a":Infinity}',
    "minus-infinity": b'{"a":-Infinity}',
    "lone-surrogate": b'{"a":"\\ud800"}',
    "lone-surrogate-in-name": b'{"\\udfff":1}',
    "reversed-surrogate-pair": b'{"a":"\\ude00\\ud83d"}',
    "invalid-utf8": b'{"a":"\xc3\x28"}',
    "overlong-utf8": b'{"a":"\xc0\xaf"}',
    "encoded-surrogate": b'{"a":"\xed\xbf\xbf"}',
    "5000-digit-integer": b'{"a":' + b"1" * 5000 + b"}",
    "truncated": b'{"a":[1,2',
    "single-quotes": b"{'a':1}",
    "trailing-comma": b'{"a":1,}',
    "leading-zero": b'{"a":01}',
    "bare-word": b'{"a":undefined}',
    "control-character": b'{"a":"\x00"}',
    "comment": b'{"a":1 /* no */}',
    "bom": b'\xef\xbb\xbf{"a":1}',
    "utf16": '{"a":1}'.encode("utf-16"),
}


@pytest.mark.parametrize("data", BAD.values(), ids=BAD.keys())
def test_both_paths_refuse_with_the_same_reason(data: bytes) -> None:
    with pytest.raises(DecodeError) as fast:
        loads_fast(data)
    with pytest.raises(DecodeError) as exact:
        loads_exact(data)

    assert fast.value.kind is exact.value.kind is DecodeErrorKind.UNDECODABLE
    assert fast.value.reason == exact.value.reason


GOOD = {
    "ints": b'{"a":0,"b":-7,"c":18446744073709551615}',
    "decimals": b'{"a":150.5,"b":0.1,"c":99.995,"d":-0.0}',
    "exponents": b'{"a":1.5e2,"b":1E-7,"c":2.5E+3}',
    "integral-decimals": b'{"a":3.0,"b":1e2}',
    "unicode": '{"a":"Zona Ñ ✓ 😀","b":"\\ud83d\\ude00"}'.encode(),
    "nested": b'{"a":[{"b":[1,{"c":null}]}],"d":true,"e":false}',
    "duplicate-names": b'{"a":1,"a":2}',
    "whitespace": b' \n\t{ "a" : [ 1 , 2 ] }\r\n',
}


def as_comparable(value: object) -> object:
    """Floats as their exact decimal reading, the way amounts are converted."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: as_comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_comparable(v) for v in value]
    return value


@pytest.mark.parametrize("data", GOOD.values(), ids=GOOD.keys())
def test_both_paths_read_the_same_values(data: bytes) -> None:
    assert as_comparable(loads_fast(data)) == as_comparable(loads_exact(data))


def test_integral_non_integer_literals_are_ints_on_both_paths() -> None:
    fast, exact = loads_fast(b'{"a":3.0,"b":1e2}'), loads_exact(b'{"a":3.0,"b":1e2}')

    assert type(exact["a"]) is int and type(exact["b"]) is int
    assert fast["a"].is_integer() and fast["b"].is_integer()


@pytest.mark.parametrize(
    ("data", "exact"),
    [
        (b'{"a":150.5}', False),
        (b'{"a":"3f2b8c1e-5d4a-4e6b-9c7d-1a2b3c4d5e6f"}', False),  # "e-" + digits in a GUID
        (b'{"a":"1234e-1234"}', False),
        (b'{"t":"2026-04-06T13:00:00.1234567Z"}', False),
        (b'{"a":123456789012345}', False),  # 15 digits: a float holds it
        (b'{"a":1234567890123456}', True),  # 16
        (b'{"a":0.1234567890123456}', True),
        (b'{"a":12345678901234567890123}', True),
        (b'{"a":1e-400}', True),
        (b'{"a": -2.5E-0330}', True),
        (b'{"a":1e-30}', False),
    ],
    ids=repr,
)
def test_the_exact_path_is_chosen_only_when_a_float_could_be_inexact(
    data: bytes, exact: bool
) -> None:
    assert needs_exact(data) is exact


def test_a_float_would_have_rounded_what_the_exact_path_keeps() -> None:
    assert parse_object(b'{"a":0.1000000000000000055511151231257827}')["a"] == Decimal(
        "0.1000000000000000055511151231257827"
    )


@pytest.mark.parametrize("depth", [MAX_DEPTH, MAX_DEPTH + 1, 1000, 1025])
def test_nesting_limit_is_the_same_on_both_paths(depth: int) -> None:
    data = b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    if depth <= MAX_DEPTH:
        assert parse_object(data)
        return
    with pytest.raises(DecodeError) as caught:
        parse_object(data)
    assert f"{depth} levels deep, more than {MAX_DEPTH}" in caught.value.reason


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    data = b'{"a":"' + b"[{" * 200 + b'","b":"\\"[[["}'

    assert parse_object(data)["b"] == '"[[['
