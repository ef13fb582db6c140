"""The Kafka client's repeated log lines: the first of each kind, then one per window."""

from __future__ import annotations

import logging

import pytest

from workers.observability.log_throttle import RepeatedLogThrottle, throttle_logs


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(
    message: str, *args: object, level: int = logging.ERROR, name: str = "x"
) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_first_of_a_kind_then_one_per_window_with_the_count_held_back() -> None:
    clock = Clock()
    throttle = RepeatedLogThrottle(window_s=30, clock=clock)
    assert throttle.filter(record("Unable connect to node with id %d: port %d", 1, 9092))
    for second in range(1, 30):
        clock.now = second
        assert not throttle.filter(record("Unable connect to node with id %d: port %d", 1, 9093))
    assert throttle.filter(record("Unable to update metadata from [1]"))  # another kind
    clock.now = 30.0
    again = record("Unable connect to node with id %d: port %d", 1, 9092)
    assert throttle.filter(again)
    assert again.getMessage() == (
        "Unable connect to node with id 1: port 9092 (and 29 more like it in the last 30s)"
    )
    clock.now = 31.0
    assert not throttle.filter(record("Unable connect to node with id 2: port 9092"))


def test_info_and_other_loggers_kinds_pass() -> None:
    throttle = RepeatedLogThrottle(window_s=30, clock=Clock())
    for _ in range(3):
        assert throttle.filter(record("Heartbeat", level=logging.INFO))
    assert throttle.filter(record("same text", name="a"))
    assert throttle.filter(record("same text", name="b"))
    assert not throttle.filter(record("same text", name="a"))


def test_installed_on_the_library_loggers_and_their_children(
    caplog: pytest.LogCaptureFixture,
) -> None:
    child = logging.getLogger("seatflow-test-lib.conn")
    throttle = throttle_logs("seatflow-test-lib", window_s=60)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(50):
                child.error("Unable connect to node with id 1")
        assert [r.getMessage() for r in caplog.records] == ["Unable connect to node with id 1"]
    finally:
        child.removeFilter(throttle)
        logging.getLogger("seatflow-test-lib").removeFilter(throttle)
