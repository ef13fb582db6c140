"""Dead-letter records: the original record, untouched, plus why and where it failed.

The original key, value and headers are kept byte for byte (a redrive re-sends exactly
what the producer sent); seatflow's own headers, all prefixed `seatflow.dlq.`, are
appended after them and say where the record came from and why it could not be processed.

Write side: `DeadLetter` + `dead_letter_headers` (the workers). Read side: `StoredDeadLetter`
(the `seatflow dlq` commands) splits a consumed dead letter back into the original record
and seatflow's headers.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from workers.records import RawRecord

HEADER_PREFIX = "seatflow.dlq."
MAX_STACK_BYTES = 4096
MAX_REASON_CHARS = 2000
"""Reasons name a JSON path and show short values; this bound only guards against an
exception message that quotes a whole payload (the dead letter must stay small)."""

# The names after the prefix, in the order they are written.
ORIGIN_TOPIC = "origin.topic"
ORIGIN_PARTITION = "origin.partition"
ORIGIN_OFFSET = "origin.offset"
ORIGIN_TIMESTAMP = "origin.timestamp"
GROUP = "group"
ERROR_CLASS = "error.class"
ERROR_KIND = "error.kind"
REASON = "reason"
SCHEMA_VERSION = "schema.version"
WORKER = "worker"
FAILED_AT = "failed.at"
STACK = "stack"
KEY_NULL = "key.null"
"""Present ("true") when the original record had neither key nor value: aiokafka refuses to
produce such a record (librdkafka producers can), so the dead letter carries an empty key
instead, and this header says that the original key was null."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: RawRecord
    error_class: str
    reason: str
    schema_version: str | None = None
    stack: str | None = None
    kind: str | None = None
    """The DecodeErrorKind value when the error has one (e.g. "schema_violation")."""

    @classmethod
    def from_exception(
        cls, record: RawRecord, exc: BaseException, reason: str, schema_version: str | None
    ) -> DeadLetter:
        kind = getattr(exc, "kind", None)
        error_class = f"{type(exc).__name__}:{kind}" if kind else type(exc).__name__
        stack = "".join(traceback.format_exception(exc))
        return cls(record, error_class, reason, schema_version, stack, str(kind) if kind else None)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def dead_letter_record(
    letter: DeadLetter, *, group: str, failed_at: datetime | None = None
) -> tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]:
    """(key, value, headers) of the dead letter: the original key and value, untouched,
    except that a record with neither gets an empty key (see `KEY_NULL`)."""
    r = letter.record
    headers = dead_letter_headers(letter, group=group, failed_at=failed_at)
    if r.key is None and r.value is None:
        return b"", None, [*headers, (HEADER_PREFIX + KEY_NULL, b"true")]
    return r.key, r.value, headers


def dead_letter_headers(
    letter: DeadLetter, *, group: str, failed_at: datetime | None = None
) -> list[tuple[str, bytes]]:
    r = letter.record
    when = (failed_at or datetime.now(UTC)).isoformat()
    ours = {
        ORIGIN_TOPIC: r.topic,
        ORIGIN_PARTITION: str(r.partition),
        ORIGIN_OFFSET: str(r.offset),
        ORIGIN_TIMESTAMP: str(r.timestamp_ms),
        GROUP: group,
        ERROR_CLASS: letter.error_class,
        ERROR_KIND: letter.kind or "",
        REASON: _bounded(letter.reason, MAX_REASON_CHARS),
        SCHEMA_VERSION: letter.schema_version or "",
        WORKER: worker_id(),
        FAILED_AT: when,
    }
    if letter.stack:
        ours[STACK] = letter.stack.encode()[-MAX_STACK_BYTES:].decode(errors="replace")
    return [*r.headers, *((HEADER_PREFIX + k, v.encode()) for k, v in ours.items())]


# ---------------------------------------------------------------- read side


@dataclass(frozen=True, slots=True)
class StoredDeadLetter:
    """A record read back from a dead-letter topic, split into original and ours."""

    dlq_topic: str
    dlq_partition: int
    dlq_offset: int
    dlq_timestamp_ms: int
    key: bytes | None
    value: bytes | None
    original_headers: tuple[tuple[str, bytes], ...]
    """The headers the producer sent, in order, untouched."""
    ours: dict[str, str]
    """seatflow's headers, without the prefix, decoded as UTF-8."""

    @classmethod
    def parse(
        cls,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> StoredDeadLetter:
        """Ours are the trailing run of `seatflow.dlq.*` headers (appended by the worker);
        a producer's own header of that name, earlier in the list, stays original."""
        pairs = [(name, value or b"") for name, value in headers]
        split = len(pairs)
        while split and pairs[split - 1][0].startswith(HEADER_PREFIX):
            split -= 1
        ours = {
            name.removeprefix(HEADER_PREFIX): raw.decode("utf-8", "replace")
            for name, raw in pairs[split:]
        }
        if ours.get(KEY_NULL) == "true" and not key:
            key = None
        return cls(topic, partition, offset, timestamp_ms, key, value, tuple(pairs[:split]), ours)

    @property
    def position(self) -> str:
        return f"{self.dlq_topic}/{self.dlq_partition}@{self.dlq_offset}"

    @property
    def reason(self) -> str:
        return self.ours.get(REASON, "")

    @property
    def error_class(self) -> str:
        return self.ours.get(ERROR_CLASS, "")

    @property
    def origin_partition(self) -> int | None:
        return _int(self.ours.get(ORIGIN_PARTITION))

    @property
    def origin_offset(self) -> int | None:
        return _int(self.ours.get(ORIGIN_OFFSET))

    @property
    def origin_timestamp_ms(self) -> int | None:
        return _int(self.ours.get(ORIGIN_TIMESTAMP))

    @property
    def failed_at(self) -> datetime:
        """When the worker rejected it; the dead letter's own timestamp if unreadable."""
        text = self.ours.get(FAILED_AT)
        if text:
            try:
                parsed = datetime.fromisoformat(text)
                return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
            except ValueError:
                pass
        return datetime.fromtimestamp(self.dlq_timestamp_ms / 1000, UTC)


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
