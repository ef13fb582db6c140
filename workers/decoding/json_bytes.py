"""Raw record bytes -> one JSON object: fast, exact for money, and strict in one way only.

Two parsers, one behaviour:

- the fast path, `orjson.loads`, reads non-integers as binary floats. A float is exact for
  our purposes when the literal had at most 15 significant digits (then `Decimal(repr(f))`
  gives back the literal's value) and a normal exponent;
- the exact path, the standard library's parser with `parse_float=Decimal`, keeps every
  digit but is several times slower.

`parse_object` takes the exact path only when the bytes could hold a number the fast path
would not represent exactly (`needs_exact`). Whichever path runs, the same bytes are accepted
or rejected alike and with the same reason: the fast path hands every input it rejects to the
exact path, which then raises its own (more explicit) error, and both refuse NaN/Infinity,
lone surrogates, invalid UTF-8 and nesting deeper than `MAX_DEPTH` (checked before either
parser runs, so neither parser's own recursion limit is ever what decides).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from itertools import accumulate
from typing import Any

import orjson

from workers.decoding.errors import DecodeError, DecodeErrorKind

MAX_DEPTH = 64
"""Deepest nesting accepted. Our events nest three levels; 64 leaves room for unknown fields
while staying far below orjson's (1024) and the standard library's (~1000) recursion limits."""

_UNDECODABLE = DecodeErrorKind.UNDECODABLE

# Digits and dots become "0", "E" becomes "e" (and "[" becomes "{", so that one count
# bounds the nesting depth); then plain substring searches (several times faster than a
# regular expression over the bytes) find:
# - a run of 16 digits/dots: only a number with more than 15 significant digits has one (a
#   string may too, which merely costs a slower parse);
# - "e-" and three digits: the only exponents a float cannot hold exactly are below -307,
#   which underflow (1e-400 reads as 0.0). Larger exponents either round-trip exactly or make
#   orjson fail, and `loads_fast` then defers to the exact parser. GUIDs in "D" form contain
#   "e-000" often (a group ending in "e", the next starting with digits), so a hit is
#   confirmed by a regular expression that wants the number in a member value, after ":".
#   Numbers inside arrays are never read (no schema has an array of numbers).
_NUMBER_SHAPES = bytes.maketrans(b"0123456789.E[", b"0" * 11 + b"e{")
_LONG_DIGIT_RUN = b"0" * 16
_TINY_EXPONENT = b"e-000"
_TINY_EXPONENT_NUMBER = re.compile(rb":\s*-?0+e-000")

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_STRING_LITERAL = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_BRACKET_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class _NonFiniteConstant(ValueError):
    """Raised by the exact parser on NaN, Infinity or -Infinity, which JSON does not have."""


def _reject_constant(name: str) -> Any:
    raise _NonFiniteConstant(name)


def _exact_number(literal: str) -> Decimal | int:
    """A non-integer literal, exactly; integral ones ("3.0", "1e2") as `int`.

    JSON Schema (draft-06 on) counts 3.0 as an integer and fastjsonschema accepts the float
    3.0 as one, but not `Decimal("3.0")`; returning an int keeps both parse paths alike.
    Amounts are unaffected: `canonical_money` depends on the value only. The exponent bound
    keeps "1e999999999" from becoming an integer of a billion digits.
    """
    number = Decimal(literal)
    if number.adjusted() < 20 and number == number.to_integral_value():
        return int(number)
    return number


def _undecodable(reason: str) -> DecodeError:
    return DecodeError(_UNDECODABLE, reason)


def parse_object(data: bytes) -> dict[str, Any]:
    """Return the JSON object in `data` (see `as_bytes`), or raise `DecodeError(UNDECODABLE)`."""
    return parse_payload(data)[0]


def parse_payload(data: bytes) -> tuple[dict[str, Any], bool]:
    """`parse_object`, and whether orjson parsed it: then its numbers are ints of at most
    64 bits and binary floats, no `Decimal` and no unbounded int (which only the exact
    parser makes), so the validators' quick check may judge it (`validators.validate`)."""
    shapes = data.translate(_NUMBER_SHAPES)
    if shapes.count(b"{") > MAX_DEPTH:  # else it cannot nest deeper than MAX_DEPTH
        check_depth(data)
    parsed, plain = (loads_exact(data), False) if _needs_exact(shapes) else _loads_fast(data)
    if type(parsed) is not dict:
        raise _undecodable(f"the value is a JSON {json_type(parsed)}, not an object")
    return parsed, plain


def as_bytes(value: object) -> bytes:
    """The record value as `bytes`; a null or empty value is a tombstone, not an event."""
    if type(value) is bytes:
        if not value:
            raise _undecodable("the value is empty (0 bytes)")
        return value
    if value is None:
        raise _undecodable("the value is null (a tombstone), not an event")
    if isinstance(value, bytes | bytearray | memoryview):
        return as_bytes(bytes(value))
    raise _undecodable(f"the value must be bytes, got {type(value).__name__}")


def needs_exact(data: bytes) -> bool:
    """Whether `data` may hold a number that a binary float would not keep exactly."""
    return _needs_exact(data.translate(_NUMBER_SHAPES))


def _needs_exact(shapes: bytes) -> bool:
    return _LONG_DIGIT_RUN in shapes or (
        _TINY_EXPONENT in shapes and _TINY_EXPONENT_NUMBER.search(shapes) is not None
    )


def check_depth(data: bytes) -> None:
    """Reject nesting deeper than `MAX_DEPTH`, before any parser recurses into it."""
    brackets = _STRING_LITERAL.sub(b"", data).translate(None, _NOT_BRACKETS)
    deepest = max(accumulate(_BRACKET_STEP[b] for b in brackets), default=0)
    if deepest > MAX_DEPTH:
        raise _undecodable(f"JSON nesting is {deepest} levels deep, more than {MAX_DEPTH}")


def loads_fast(data: bytes) -> Any:
    """Parse with orjson; any input it rejects is re-parsed by `loads_exact`.

    orjson's messages are terse and differ from the standard library's, so a rejected input
    goes through the exact parser, which raises the reason both paths report. (For the rare
    input orjson rejects but the exact parser accepts, e.g. 1e400, its result is the exact
    reading and the schema decides.)
    """
    return _loads_fast(data)[0]


def _loads_fast(data: bytes) -> tuple[Any, bool]:
    """`loads_fast`, and whether orjson's reading stands (False: the exact parser's)."""
    try:
        return orjson.loads(data), True
    except orjson.JSONDecodeError:
        return loads_exact(data), False


def loads_exact(data: bytes) -> Any:
    """Parse with the standard library, non-integers as `Decimal`, as strictly as orjson."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _undecodable(f"invalid UTF-8 at byte {exc.start}: {exc.reason}") from None
    try:
        parsed = json.loads(text, parse_float=_exact_number, parse_constant=_reject_constant)
    except _NonFiniteConstant as exc:
        raise _undecodable(
            f"{exc.args[0]} is not a JSON number (JSON has no NaN or Infinity)"
        ) from None
    except json.JSONDecodeError as exc:
        raise _undecodable(
            f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}, char {exc.pos})"
        ) from None
    except ValueError as exc:  # the interpreter's limit on integer digits (4300)
        raise _undecodable(f"number out of range: {str(exc).partition(':')[0]}") from None
    except RecursionError:
        raise _undecodable("JSON nesting is too deep") from None
    if _SURROGATE_ESCAPE.search(text) is not None:  # the only way to write one in JSON
        _reject_lone_surrogates(parsed, "$")
    return parsed


def _reject_lone_surrogates(value: Any, path: str) -> None:
    """The standard library decodes "\\ud800" to an unpaired surrogate; orjson refuses it.

    Such a string cannot be encoded as UTF-8, so no store could keep it either.
    """
    if type(value) is str:
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                bad = value[exc.start]
                raise _undecodable(
                    f"{path}: string holds a lone UTF-16 surrogate \\u{ord(bad):04x}"
                ) from None
    elif type(value) is dict:
        for key, item in value.items():
            _reject_lone_surrogates(key, f"{path} (a member name)")
            _reject_lone_surrogates(item, f"{path}.{key}")
    elif type(value) is list:
        for index, item in enumerate(value):
            _reject_lone_surrogates(item, f"{path}[{index}]")


def json_type(value: object) -> str:
    """The JSON name of a parsed value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
