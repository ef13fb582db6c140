"""`decode`: one Kafka record of a consumed topic -> exactly one canonical event.

The steps, each in its own module and each with its own error kind:
bytes -> JSON object (`json_bytes`, UNDECODABLE) -> version (`versions`, UNKNOWN_VERSION)
-> schema (`validators`, SCHEMA_VIOLATION) -> event (`build`, INVALID_VALUE) -> key check
(`keys`, INVALID_VALUE).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from workers.decoding.build import BUILDERS
from workers.decoding.errors import DecodeError, DecodeErrorKind, SchemasNotFoundError
from workers.decoding.json_bytes import as_bytes, parse_payload
from workers.decoding.keys import check_key
from workers.decoding.validators import validate
from workers.decoding.versions import KNOWN_VERSIONS, detect_version, label
from workers.events import Event, EventType

_NUL_ESCAPE = b"\\u0000"
"""The only way a JSON string can hold NUL; see `validators`."""

_LABELS = {
    (event_type, version): label(event_type, version)
    for event_type, versions in KNOWN_VERSIONS.items()
    for version in versions
}


def decode(
    event_type: EventType,
    value: bytes | None,
    key: bytes | None,
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None],
    timestamp_ms: int,
) -> Event:
    """Decode one record of `event_type`'s topic into its canonical event.

    Raises `DecodeError` for every bad record, whatever its bytes, key or headers: even a
    defect of the decoder surfaces as `DecodeError(INTERNAL)`, so one poison record can never
    crash a consumer. Two things are not record faults and raise otherwise: an `event_type`
    that is not an `EventType` (ValueError: a caller bug) and unusable schema files
    (`SchemasNotFoundError`: a deployment fault every record would hit).
    """
    if type(event_type) is not EventType:
        event_type = EventType(event_type)
    version_label: str | None = None
    try:
        data = value if type(value) is bytes and value else as_bytes(value)
        payload, plain = parse_payload(data)
        version = detect_version(event_type, payload, headers)
        version_label = _LABELS[event_type, version]
        validate(event_type, version, payload, _NUL_ESCAPE in data, plain)
        event = BUILDERS[event_type, version](payload, version, timestamp_ms)
        check_key(event_type, key, payload, event)
        return event
    except DecodeError as exc:
        if exc.schema_version is None:
            exc.schema_version = version_label
        raise
    except (SchemasNotFoundError, MemoryError):
        raise
    except Exception as exc:
        raise DecodeError(
            DecodeErrorKind.INTERNAL,
            f"decoder defect on this record: {type(exc).__name__}: {exc}",
            version_label,
        ) from exc
