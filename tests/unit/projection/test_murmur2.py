"""Our murmur2 must partition exactly as Kafka's clients do (aiokafka's reference)."""

from __future__ import annotations

import random

from aiokafka.partitioner import murmur2 as reference
from hypothesis import given
from hypothesis import strategies as st

from workers.projection.murmur2 import murmur2


@given(st.binary(max_size=80))
def test_equals_aiokafka_on_any_bytes(data: bytes) -> None:
    assert murmur2(data) == reference(data)


def test_equals_aiokafka_on_every_tail_length_and_high_bytes() -> None:
    rng = random.Random(5)
    for length in range(0, 70):
        for _ in range(20):
            data = bytes(
                rng.choice((0, 0x7F, 0x80, 0xFF, rng.randrange(256))) for _ in range(length)
            )
            assert murmur2(data) == reference(data), data


def test_known_kafka_values() -> None:
    """Values of Kafka's Java `Utils.murmur2` (its test suite), as unsigned ints."""
    assert murmur2(b"21") & 0xFFFFFFFF == (-973932308) & 0xFFFFFFFF
    assert murmur2(b"foobar") & 0xFFFFFFFF == (-790332482) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-long-string") & 0xFFFFFFFF == (-985981536) & 0xFFFFFFFF
    assert murmur2(b"a-little-bit-longer-string") & 0xFFFFFFFF == (-1486304829) & 0xFFFFFFFF
    assert murmur2(b"abc") & 0xFFFFFFFF == 479470107
