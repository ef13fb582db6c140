"""Which schema version a record follows: explicit when it says so, else by its shape.

Upstream payloads carry no version field, and the three shapes of reservation-expired and the
two of reservation-created differ in marker fields and casing, so the shape decides. A record
may still say its version: a payload field `version` or `schemaVersion`, or a Kafka header
`schema-version` or `version` (names matched case-insensitively), as a number (3) or text
("3", "v3", "reservation-expired/v3"). An explicit version wins over the shape, must be one we
know, and must agree with any other explicit version of the same record: a record that
claims something we cannot honour is refused rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from workers.decoding.errors import DecodeError, DecodeErrorKind
from workers.events import EventType

KNOWN_VERSIONS: dict[EventType, tuple[int, ...]] = {
    EventType.SEATS_GENERATED: (1,),
    EventType.RESERVATION_CREATED: (1, 2),
    EventType.RESERVATION_EXPIRED: (1, 2, 3),
    EventType.ORDER_PLACED: (1,),
}

VERSION_HEADERS = frozenset({"schema-version", "version"})
VERSION_FIELDS = ("version", "schemaVersion")

_VERSION_TEXT = re.compile(r"(?:(?P<topic>[a-z0-9-]+)/)?[vV]?(?P<number>[0-9]{1,9})")

Headers = Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None]


def label(event_type: EventType, version: int) -> str:
    """The name of a version in errors and docs, e.g. "reservation-expired/v3"."""
    return f"{event_type.value}/v{version}"


def detect_version(event_type: EventType, payload: dict[str, Any], headers: Headers) -> int:
    """Return the version of `payload`; raise `DecodeError(UNKNOWN_VERSION)` if unusable."""
    explicit = _explicit_version(event_type, payload, headers)
    if explicit is None:
        return _BY_SHAPE[event_type](payload)
    if explicit not in KNOWN_VERSIONS[event_type]:
        known = ", ".join(f"v{v}" for v in KNOWN_VERSIONS[event_type])
        raise DecodeError(
            DecodeErrorKind.UNKNOWN_VERSION,
            f"{label(event_type, explicit)} is not a version this decoder knows (known: {known})",
            label(event_type, explicit),
        )
    return explicit


def _explicit_version(
    event_type: EventType, payload: dict[str, Any], headers: Headers
) -> int | None:
    claims: list[tuple[str, object]] = []
    if headers:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in pairs:
            if name.lower() in VERSION_HEADERS:
                claims.append((f"header {name!r}", value))
    for field in VERSION_FIELDS:
        if field in payload:
            claims.append((f"$.{field}", payload[field]))
    if not claims:
        return None
    versions: dict[int, str] = {}
    for source, raw in claims:
        number = _parse_version(event_type, raw)
        if number is None:
            raise DecodeError(
                DecodeErrorKind.UNKNOWN_VERSION,
                f"{source} is {_show(raw)}, not a version of {event_type.value} "
                '(expected e.g. 1, "1", "v1")',
            )
        versions.setdefault(number, source)
    if len(versions) > 1:
        said = ", ".join(f"{source} says v{number}" for number, source in versions.items())
        raise DecodeError(DecodeErrorKind.UNKNOWN_VERSION, f"conflicting versions: {said}")
    return next(iter(versions))


def _parse_version(event_type: EventType, raw: object) -> int | None:
    if type(raw) is int:
        return raw if raw >= 1 else None
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError:
            return None
    if not isinstance(raw, str):
        return None
    match = _VERSION_TEXT.fullmatch(raw.strip())
    if match is None or match["topic"] not in (None, event_type.value):
        return None
    number = int(match["number"])
    return number if number >= 1 else None


def _show(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def _reservation_created_shape(payload: dict[str, Any]) -> int:
    # The documentation variant writes the status capitalised ("Active"); the contract file
    # and the producer write it in lower case.
    status = payload.get("status")
    return 2 if isinstance(status, str) and status[:1].isupper() else 1


def _reservation_expired_shape(payload: dict[str, Any]) -> int:
    # v3 (the producer) alone has messageId/concertEventId; v2 (the docs) alone has expiresAt;
    # what has neither is checked against the contract file (v1), whose schema then names
    # exactly which of its fields are missing.
    if "messageId" in payload or "concertEventId" in payload:
        return 3
    if "expiresAt" in payload:
        return 2
    return 1


def _only_version(payload: dict[str, Any]) -> int:
    return 1


_BY_SHAPE: dict[EventType, Callable[[dict[str, Any]], int]] = {
    EventType.SEATS_GENERATED: _only_version,
    EventType.RESERVATION_CREATED: _reservation_created_shape,
    EventType.RESERVATION_EXPIRED: _reservation_expired_shape,
    EventType.ORDER_PLACED: _only_version,
}
