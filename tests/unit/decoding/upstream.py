"""Real-shaped upstream payloads (tests/fixtures/upstream) and helpers to vary them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "upstream"

RECORD_TS_MS = 1775481301500
"""2026-04-06T13:15:01.5Z: the Kafka timestamp the tests give every record."""


def raw(name: str) -> bytes:
    """The fixture's bytes exactly as stored (compact, as System.Text.Json writes them)."""
    return (FIXTURES / f"{name}.json").read_bytes()


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(raw(name))
    return data


def encode(data: object) -> bytes:
    """JSON bytes of `data`, non-ASCII kept as UTF-8 (NUL and surrogates get escaped)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "surrogatepass"
    )


def changed(name: str, **changes: Any) -> bytes:
    """The fixture with fields replaced; a value of `...` removes the field."""
    data = payload(name)
    for field, value in changes.items():
        if value is ...:
            data.pop(field, None)
        else:
            data[field] = value
    return encode(data)
