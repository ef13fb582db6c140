"""Repeated log lines of the Kafka client held back: one line per kind, then one per window.

Why: while a broker is unreachable, aiokafka logs every failed attempt of each of its
clients (connect, metadata, fetch, coordinator lookup) about ten times a second: 2,500
ERROR lines for a 20-second outage in tests/integration/test_outages.py, which bury
everything else the worker says. The worker itself waits and retries (the outage is not
an error of ours to report line by line); an operator needs to see that Kafka is
unreachable, and for how long, not every attempt.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

_NUMBERS = re.compile(r"[0-9]+")
MAX_KINDS = 1000
"""Kinds remembered at most (a message with an unusual text each time is not a kind)."""


class RepeatedLogThrottle(logging.Filter):
    """Lets through the first WARNING-or-above record of each kind (logger and message,
    numbers blanked), then at most one per `window_s`, which says how many it held back."""

    def __init__(self, window_s: float = 30.0, clock: Callable[[], float] = time.monotonic):
        super().__init__()
        self.window_s = window_s
        self.clock = clock
        self._kinds: dict[tuple[str, str], tuple[float, int]] = {}
        """kind -> (when one was last let through, how many were held back since)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        message = record.getMessage()
        kind = (record.name, _NUMBERS.sub("N", message))
        now = self.clock()
        last = self._kinds.get(kind)
        if last is not None and now - last[0] < self.window_s:
            self._kinds[kind] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{message} (and {last[1]} more like it in the last {now - last[0]:.0f}s)"
            record.args = ()
        if last is None and len(self._kinds) >= MAX_KINDS:
            self._kinds.clear()
        self._kinds[kind] = (now, 0)
        return True


def throttle_logs(prefix: str = "aiokafka", window_s: float = 30.0) -> RepeatedLogThrottle:
    """Install one throttle on every logger named `prefix` or under it that exists now
    (filters of a parent logger do not see its children's records); call it after the
    client library is imported."""
    throttle = RepeatedLogThrottle(window_s)
    for name in [prefix, *logging.Logger.manager.loggerDict]:
        if name == prefix or name.startswith(prefix + "."):
            logging.getLogger(name).addFilter(throttle)
    return throttle
