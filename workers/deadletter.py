"""Dead-letter records: the original record, untouched, plus why and where it failed.

The original key, value and headers are kept byte for byte (a redrive re-sends exactly
what the producer sent); seatflow's own headers, all prefixed `seatflow.dlq.`, say where
the record came from and why it could not be processed.
"""

from __future__ import annotations

import os
import socket
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime

from workers.records import RawRecord

HEADER_PREFIX = "seatflow.dlq."
MAX_STACK_BYTES = 4096


@dataclass(frozen=True, slots=True)
class DeadLetter:
    record: RawRecord
    error_class: str
    reason: str
    schema_version: str | None = None
    stack: str | None = None

    @classmethod
    def from_exception(
        cls, record: RawRecord, exc: BaseException, reason: str, schema_version: str | None
    ) -> DeadLetter:
        kind = getattr(exc, "kind", None)
        error_class = f"{type(exc).__name__}:{kind}" if kind else type(exc).__name__
        stack = "".join(traceback.format_exception(exc))
        return cls(record, error_class, reason, schema_version, stack)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def dead_letter_headers(
    letter: DeadLetter, *, group: str, failed_at: datetime | None = None
) -> list[tuple[str, bytes]]:
    r = letter.record
    when = (failed_at or datetime.now(UTC)).isoformat()
    ours = {
        "origin.topic": r.topic,
        "origin.partition": str(r.partition),
        "origin.offset": str(r.offset),
        "origin.timestamp": str(r.timestamp_ms),
        "group": group,
        "error.class": letter.error_class,
        "reason": letter.reason,
        "schema.version": letter.schema_version or "",
        "worker": worker_id(),
        "failed.at": when,
    }
    if letter.stack:
        ours["stack"] = letter.stack.encode()[-MAX_STACK_BYTES:].decode(errors="replace")
    return [*r.headers, *((HEADER_PREFIX + k, v.encode()) for k, v in ours.items())]
