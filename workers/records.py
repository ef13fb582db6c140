"""A Kafka record as the workers see it before decoding: raw bytes and where they came from."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class RawRecord:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_message(cls, message: Any) -> RawRecord:
        """From a Faust `Message` (raw serializers: key and value are the bytes on the wire)."""
        headers: Any = message.headers or ()
        if isinstance(headers, dict):
            headers = headers.items()
        return cls(
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            timestamp_ms=round(message.timestamp * 1000),
            key=message.key,
            value=message.value,
            headers=tuple((str(k), bytes(v or b"")) for k, v in headers),
        )


def header(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None
