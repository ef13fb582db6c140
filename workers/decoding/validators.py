"""The JSON Schemas of `schemas/`, compiled once, and their failures in plain words.

fastjsonschema turns each schema into straight-line Python once (about 10-50x faster than an
interpreting validator on the per-event path). All schemas are compiled together on first use
(or by `load_validators()` at start-up), so a missing or broken schema file stops the process
at once instead of failing one topic's records later.

Schemas are found in `$SEATFLOW_SCHEMAS_DIR`, else in the package (`workers.contracts`, a
link to the repository's `schemas/` that a built wheel turns into a copy).

Three speed-ups that change nothing a schema accepts:
- local `$ref`s are inlined before compiling (fastjsonschema makes each `$ref` a function
  call that also builds the error path string, on every value);
- each schema is also compiled without its "no NUL" patterns, and that variant is used when
  the raw bytes hold no `\u0000` escape. A JSON string can only contain NUL through that
  escape (a raw control character is malformed JSON), so the pattern could not fail anyway;
  on a seat map it saves two regular-expression searches per seat;
- a quick check first: the same schema (without NUL patterns, formats not checked, as
  here) compiled by jsonschema-rs, whose `is_valid` is 4-10x faster than fastjsonschema's
  code (1.7 against 6.5 us for a reservation-created, 16 against 154 us for a seat map of
  50 seats; bench/decode.py measures the whole decoder). Its "valid" ends validation, so
  it must never accept what fastjsonschema refuses: it is asked only about payloads orjson
  parsed (no `Decimal`, no unbounded int, whose conversion to Rust numbers could blur a
  bound), and tests/unit/decoding/test_quick_check.py holds it to that on every upstream
  fixture mutated into values at the schemas' edges (no difference is known). Whatever it
  refuses, fastjsonschema judges again, as before, and gives the reasons.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema_rs
from fastjsonschema import JsonSchemaException, JsonSchemaValueException

from workers.contracts import SCHEMAS_DIR
from workers.decoding.errors import DecodeError, DecodeErrorKind, SchemasNotFoundError
from workers.decoding.json_bytes import json_type
from workers.decoding.versions import KNOWN_VERSIONS, label
from workers.events import EventType

SCHEMAS_DIR_ENV = "SEATFLOW_SCHEMAS_DIR"

Validator = Callable[[Any], Any]
QuickCheck = Callable[[Any], bool]
Compiled = tuple[Validator, Validator, QuickCheck]

_validators: dict[tuple[EventType, int], Compiled] | None = None
"""Per (topic, version): (the full validator, the variant without NUL patterns, the quick
check of that variant)."""

_NO_NUL = "^[^\u0000]*$"

# What the schemas' patterns mean, for reasons a person can act on.
_PATTERN_MEANINGS = {
    "^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    "|[0-9a-fA-F]{32})$": "a UUID (8-4-4-4-12 or 32 hex digits)",
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\\.[0-9]{1,7})?"
    "(?:[Zz]|[+-][0-9]{2}:[0-9]{2})?$": "a date-time like 2026-04-06T13:00:00.1234567Z "
    "(at most 7 fractional digits, offset optional)",
    _NO_NUL: "text without NUL characters",
    "^[A-Z]{3}$": "an ISO 4217 currency code (three upper-case letters)",
}


def schemas_dir() -> Path:
    """Where the schema files are: `$SEATFLOW_SCHEMAS_DIR`, else the package's
    (`workers.contracts`: the repository's `schemas/`, or its copy in an installed wheel)."""
    configured = os.environ.get(SCHEMAS_DIR_ENV)
    directory = Path(configured) if configured else SCHEMAS_DIR
    if not directory.is_dir():
        how = f"${SCHEMAS_DIR_ENV}" if configured else f"the default (set ${SCHEMAS_DIR_ENV})"
        raise SchemasNotFoundError(f"schema directory {directory} does not exist ({how})")
    return directory


def load_validators() -> dict[tuple[EventType, int], Compiled]:
    """Compile every known (topic, version) schema once; raise `SchemasNotFoundError`."""
    global _validators
    if _validators is None:
        directory = schemas_dir()
        compiled: dict[tuple[EventType, int], Compiled] = {}
        for event_type, versions in KNOWN_VERSIONS.items():
            for version in versions:
                compiled[event_type, version] = _compile(
                    directory / event_type.value / f"v{version}.json"
                )
        _validators = compiled
    return _validators


def _compile(path: Path) -> Compiled:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
        inlined = _inline_refs(schema, schema.get("definitions", {}))
        no_nul = _without_nul_patterns(inlined)
        return (
            fastjsonschema.compile(inlined, use_formats=False),
            fastjsonschema.compile(no_nul, use_formats=False),
            quick_check(no_nul),
        )
    except FileNotFoundError:
        raise SchemasNotFoundError(f"schema file {path} is missing") from None
    except (OSError, ValueError, KeyError, JsonSchemaException) as exc:
        raise SchemasNotFoundError(f"schema file {path} is unusable: {exc!r}") from exc


_ENGINE_DEPENDENT = re.compile(r"\\[a-zA-Z]|\(\?[a-zA-Z]")
"""In a pattern: a shorthand class or escape (`\\s`, `\\w`, `\\b`, `\\d`, ...) or inline flags
(`(?i)`), whose meaning differs between Python's `re` and Rust's `regex` (Python's `\\s`
takes \\x1c-\\x1f, Rust's does not). The schemas here use literal classes only."""


def quick_check(schema: dict[str, Any]) -> QuickCheck:
    """jsonschema-rs's `is_valid` for `schema`, formats not checked (fastjsonschema runs
    with `use_formats=False`); a payload it cannot take says "not valid" (the full
    validator then decides). A schema the two engines might read differently (see
    `quick_check_applies`), or one jsonschema-rs cannot compile, gets no quick check."""
    if not quick_check_applies(schema):
        return _never
    try:
        is_valid = jsonschema_rs.validator_for(schema, validate_formats=False).is_valid
    except Exception:  # a schema fastjsonschema takes but jsonschema-rs does not
        return _never

    def check(payload: Any) -> bool:
        try:
            return bool(is_valid(payload))
        except Exception:  # a value it cannot convert: not its call
            return False

    return check


def quick_check_applies(schema: Any) -> bool:
    """No `multipleOf` (float remainders), and every regular expression (`pattern`, the
    keys of `patternProperties`) free of what `_ENGINE_DEPENDENT` finds."""
    if isinstance(schema, list):
        return all(quick_check_applies(item) for item in schema)
    if not isinstance(schema, dict):
        return True
    if "multipleOf" in schema:
        return False
    patterns = list(schema.get("patternProperties") or ())
    if isinstance(schema.get("pattern"), str):
        patterns.append(schema["pattern"])
    if any(_ENGINE_DEPENDENT.search(pattern) for pattern in patterns):
        return False
    return all(quick_check_applies(value) for value in schema.values())


def _never(payload: Any) -> bool:
    return False


def _inline_refs(node: Any, definitions: dict[str, Any]) -> Any:
    """Replace each {"$ref": "#/definitions/x"} by x (draft-07 ignores a $ref's siblings)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/definitions/"):
            return _inline_refs(definitions[ref.removeprefix("#/definitions/")], definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item, definitions) for item in node]
    return node


def _without_nul_patterns(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _without_nul_patterns(value)
            for key, value in node.items()
            if not (key == "pattern" and value == _NO_NUL)
        }
    if isinstance(node, list):
        return [_without_nul_patterns(item) for item in node]
    return node


def validate(
    event_type: EventType,
    version: int,
    payload: dict[str, Any],
    nul_possible: bool = True,
    plain: bool = False,
) -> None:
    """Check `payload` against its version's schema; raise `DecodeError(SCHEMA_VIOLATION)`.

    `nul_possible` is False when the raw bytes hold no `\\u0000` escape, `plain` True when
    orjson parsed them (`json_bytes.parse_payload`): both let the quick check answer first
    (see the module doc).
    """
    validators = _validators if _validators is not None else load_validators()
    full, no_nul, quick = validators[event_type, version]
    if plain and not nul_possible and quick(payload):
        return
    try:
        (full if nul_possible else no_nul)(payload)
    except JsonSchemaValueException as exc:
        raise DecodeError(
            DecodeErrorKind.SCHEMA_VIOLATION, describe(exc), label(event_type, version)
        ) from None


def describe(exc: JsonSchemaValueException) -> str:
    """A reason naming the JSON path and the broken rule, e.g. "$.price: must be >= 0, got -5"."""
    name = exc.name or "data"
    path = "$" + name[4:] if name.startswith("data") else name
    rule, expected, value = exc.rule, exc.rule_definition, exc.value
    if rule == "required":
        present = value if isinstance(value, dict) else {}
        missing = [field for field in expected if field not in present]
        fields = ", ".join(repr(field) for field in missing)
        return f"{path}: missing required field{'s' if len(missing) > 1 else ''} {fields}"
    if rule == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{path}: must be {_article(wanted)}, got {json_type(value)} {_show(value)}"
    if rule == "minimum":
        return f"{path}: must be >= {expected}, got {_show(value)}"
    if rule == "maximum":
        return f"{path}: must be <= {expected}, got {_show(value)}"
    if rule == "exclusiveMaximum":
        return f"{path}: must be < {expected}, got {_show(value)}"
    if rule == "enum":
        allowed = ", ".join(repr(option) for option in expected)
        return f"{path}: must be one of {allowed}, got {_show(value)}"
    if rule == "const":
        return f"{path}: must be {expected!r}, got {_show(value)}"
    if rule == "minLength":
        if expected == 1:
            return f"{path}: must not be empty"
        return f"{path}: must have at least {expected} characters, got {len(value)}"
    if rule == "maxLength":
        return f"{path}: must have at most {expected} characters, got {len(value)}"
    if rule == "minItems":
        return f"{path}: must have at least {expected} item(s), got {len(value)}"
    if rule == "pattern":
        meaning = _PATTERN_MEANINGS.get(expected, f"text matching {expected!r}")
        if expected == _NO_NUL:
            return f"{path}: must not contain NUL characters (\\u0000), got {_show(value)}"
        return f"{path}: must be {meaning}, got {_show(value)}"
    message = exc.message
    return "$" + message[4:] if message.startswith("data") else message


def _article(noun: str) -> str:
    return f"an {noun}" if noun[:1] in "aeiou" else f"a {noun}"


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"[...] ({len(value)} items)"
    if isinstance(value, dict):
        return "{...}"
    text = str(value) if isinstance(value, int | float | Decimal) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
