"""The one exception `decode` raises for a bad record, and the kinds of badness.

A consumer routes on `kind` (retry never helps: the bytes will not change), logs `reason`
(written for a human, naming the JSON path), and groups by `schema_version` (which upstream
shape the producer thought it was sending). A missing schema directory is a deployment fault,
not a bad record, so it has its own type and must not be parked with poison messages.
"""

from __future__ import annotations

from enum import StrEnum


class DecodeErrorKind(StrEnum):
    """Why a record could not become a canonical event."""

    UNDECODABLE = "undecodable"
    """The bytes are not one JSON object: invalid UTF-8, malformed or truncated JSON, an empty
    or null value (a tombstone), NaN/Infinity, a lone UTF-16 surrogate, nesting deeper than
    the limit, a number beyond any representable range, or a top-level value that is not an
    object."""

    SCHEMA_VIOLATION = "schema_violation"
    """Valid JSON that breaks the JSON Schema of its detected version: a missing required field,
    a wrong type, a malformed UUID or date-time, a negative amount, a NUL character..."""

    UNKNOWN_VERSION = "unknown_version"
    """An explicit version (payload `version`/`schemaVersion`, header `schema-version`/`version`)
    that this decoder does not know, that is not a version number, or explicit versions that
    disagree with each other."""

    INVALID_VALUE = "invalid_value"
    """Passes the schema, but a value is impossible: a calendar date that does not exist
    (2026-02-30), the nil UUID as an id, too many decimal places, a total that is not the sum
    of its items, a duplicated seat, a Kafka key that names another entity than the payload,
    or a missing record timestamp where the payload has no time of its own."""

    INTERNAL = "internal"
    """A defect of the decoder itself: some input made it fail in an unforeseen way. The record
    may well be valid; park it and report the reason (it carries the original exception)."""


class DecodeError(Exception):
    """A record that cannot be decoded; the only exception `decode` raises for any input."""

    kind: DecodeErrorKind
    reason: str
    schema_version: str | None

    def __init__(
        self, kind: DecodeErrorKind, reason: str, schema_version: str | None = None
    ) -> None:
        super().__init__(kind, reason, schema_version)
        self.kind = kind
        self.reason = reason
        self.schema_version = schema_version

    def __reduce__(self) -> tuple[type[DecodeError], tuple[DecodeErrorKind, str, str | None]]:
        # Picklable with its current attributes (decode fills `schema_version` in late).
        return (type(self), (self.kind, self.reason, self.schema_version))

    def __str__(self) -> str:
        where = f" [{self.schema_version}]" if self.schema_version else ""
        return f"{self.kind.value}{where}: {self.reason}"

    def __repr__(self) -> str:
        return (
            f"DecodeError(kind={self.kind!s}, reason={self.reason!r}, "
            f"schema_version={self.schema_version!r})"
        )


class SchemasNotFoundError(RuntimeError):
    """The JSON Schema files cannot be found or compiled: the deployment is broken.

    Raised instead of `DecodeError` because every record would fail the same way; a consumer
    must stop, not dead-letter the whole topic.
    """
