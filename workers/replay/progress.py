"""Progress of a replay: a live block on a terminal, plain lines in logs, JSON for tools.

- terminal (stdout is a tty): a bar with events/s and ETA, and one line per source
  partition (position / end), redrawn in place at most 10 times a second;
- not a terminal: one plain line every `interval` seconds, and one per notable step;
- `--json`: one JSON object per line: `plan`, `progress` (every batch), `event` (notable
  steps) and a final `summary`.

A small renderer rather than a library: it needs no more than ANSI cursor movement, and
the worker image then carries no terminal-UI dependency.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, TextIO

import orjson

BAR_WIDTH = 30


@dataclass(slots=True)
class Tick:
    """Where a replay is; the runner fills it after every batch."""

    phase: str
    batch_no: int
    events: int
    """Source records read by this run."""
    total: int
    """`events` plus what is known to remain (grows while catching up)."""
    partitions: list[tuple[str, int, int]] = field(default_factory=list)
    """(source partition label, next offset, end offset)."""
    elapsed_s: float = 0.0
    rate: float = 0.0
    """Events per second over the last few batches."""
    eta_s: float | None = None


class Rate:
    """Events per second over a sliding window of recent samples.

    `start`: (time, events) when the run began, so the first sample already has a rate
    (progress comes a batch at a time, and a first line without rate or ETA after a whole
    batch helps nobody)."""

    def __init__(self, window_s: float = 30.0, start: tuple[float, int] | None = None) -> None:
        self.window_s = window_s
        self._samples: deque[tuple[float, int]] = deque([start] if start else [])

    def add(self, now: float, events: int) -> float:
        self._samples.append((now, events))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window_s:
            self._samples.popleft()
        first_t, first_n = self._samples[0]
        return (events - first_n) / (now - first_t) if now > first_t else 0.0


class Reporter(Protocol):
    def plan(self, doc: dict[str, Any], lines: list[str]) -> None: ...

    def tick(self, tick: Tick) -> None: ...

    def event(self, message: str, **fields: Any) -> None: ...

    def summary(self, doc: dict[str, Any], lines: list[str]) -> None: ...


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def describe(tick: Tick) -> str:
    share = tick.events / tick.total if tick.total else 1.0
    return (
        f"{tick.phase}: {share:6.1%} {tick.events:,}/{tick.total:,} events, "
        f"{tick.rate:,.0f} events/s, ETA {_eta(tick.eta_s)}, batch {tick.batch_no}"
    )


def by_topic(tick: Tick) -> str:
    """Positions summed per topic: a log line stays readable with many partitions."""
    totals: dict[str, list[int]] = {}
    for label, pos, end in tick.partitions:
        topic = label.rsplit("/", 1)[0]
        sums = totals.setdefault(topic, [0, 0])
        sums[0] += pos
        sums[1] += end
    return ", ".join(f"{topic} {pos:,}/{end:,}" for topic, (pos, end) in totals.items())


class TtyReporter:
    """Redraws a block of lines in place (ANSI: cursor up, clear to end of screen)."""

    def __init__(self, out: TextIO, min_interval_s: float = 0.1) -> None:
        self.out = out
        self.min_interval_s = min_interval_s
        self._drawn = 0
        self._last = 0.0
        self._pending: Tick | None = None

    def _clear(self) -> None:
        if self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0

    def _draw(self, tick: Tick) -> None:
        share = tick.events / tick.total if tick.total else 1.0
        done = int(share * BAR_WIDTH)
        lines = [
            f"[{'#' * done}{'.' * (BAR_WIDTH - done)}] {describe(tick)}",
            *(f"  {label:<28} {pos:>12,} / {end:>12,}" for label, pos, end in tick.partitions),
        ]
        self._clear()
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self._drawn = len(lines)

    def plan(self, doc: dict[str, Any], lines: list[str]) -> None:
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def tick(self, tick: Tick) -> None:
        now = time.monotonic()
        self._pending = tick
        if now - self._last >= self.min_interval_s:
            self._last = now
            self._draw(tick)

    def event(self, message: str, **fields: Any) -> None:
        self._clear()
        self.out.write(message + "\n")
        if self._pending is not None:
            self._draw(self._pending)
        else:
            self.out.flush()

    def summary(self, doc: dict[str, Any], lines: list[str]) -> None:
        if self._pending is not None:
            self._draw(self._pending)
        self._drawn = 0
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()


class LineReporter:
    """A plain line every `interval_s` seconds (and the first one at once)."""

    def __init__(self, out: TextIO, interval_s: float = 5.0) -> None:
        self.out = out
        self.interval_s = interval_s
        self._last: float | None = None

    def _print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def plan(self, doc: dict[str, Any], lines: list[str]) -> None:
        self._print("\n".join(lines))

    def tick(self, tick: Tick) -> None:
        now = time.monotonic()
        if self._last is None or now - self._last >= self.interval_s:
            self._last = now
            self._print(f"replay {describe(tick)} [{by_topic(tick)}]")

    def event(self, message: str, **fields: Any) -> None:
        self._print(f"replay: {message}")

    def summary(self, doc: dict[str, Any], lines: list[str]) -> None:
        self._print("\n".join(lines))


class JsonReporter:
    """One JSON object per line, flushed at once (a tool reads them as they come)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def _emit(self, doc: dict[str, Any]) -> None:
        self.out.write(orjson.dumps(doc, default=str).decode() + "\n")
        self.out.flush()

    def plan(self, doc: dict[str, Any], lines: list[str]) -> None:
        self._emit({"type": "plan", **doc})

    def tick(self, tick: Tick) -> None:
        doc = asdict(tick)
        doc["partitions"] = [
            {"partition": label, "position": pos, "end": end} for label, pos, end in tick.partitions
        ]
        self._emit({"type": "progress", **doc})

    def event(self, message: str, **fields: Any) -> None:
        self._emit({"type": "event", "message": message, **fields})

    def summary(self, doc: dict[str, Any], lines: list[str]) -> None:
        self._emit({"type": "summary", **doc})


def reporter_for(*, json: bool, interval_s: float, out: TextIO | None = None) -> Reporter:
    stream = out or sys.stdout
    if json:
        return JsonReporter(stream)
    if stream.isatty():
        return TtyReporter(stream)
    return LineReporter(stream, interval_s)
