"""Selecting and summarising dead letters (pure; the `seatflow dlq` commands do the I/O).

Filters are what an operator knows after an incident: which topic, which kind of reason,
since when. Reasons name JSON paths and quote values, so `summarise` groups them by
pattern (quoted values and numbers blanked out) unless asked for exact reasons.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from workers.deadletter import StoredDeadLetter

_DURATION = re.compile(r"(?P<n>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>s|m|min|h|d|w)")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


class BadTimeError(ValueError):
    """A --since/--until value that is neither a duration nor an ISO 8601 time."""


def parse_when(text: str, now: datetime) -> datetime:
    """A duration back from `now` ("90s", "15m", "2h", "3d", "1w") or an ISO 8601 date or
    date-time ("2026-04-06", "2026-04-06T13:00:00+02:00"; no offset means UTC)."""
    stripped = text.strip()
    match = _DURATION.fullmatch(stripped)
    if match:
        return now - timedelta(seconds=float(match["n"]) * _UNITS[match["unit"]])
    try:
        when = datetime.fromisoformat(stripped)
    except ValueError:
        raise BadTimeError(
            f"{text!r} is neither a duration (e.g. 30m, 2h, 7d) nor an ISO 8601 time "
            "(e.g. 2026-04-06 or 2026-04-06T13:00:00Z)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Selection:
    """Which dead letters a command acts on; an unset filter matches everything."""

    topics: frozenset[str] | None = None
    """Physical dead-letter topic names."""
    reason: str | None = None
    """Case-insensitive substring of the reason or the error class (e.g. a kind)."""
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: StoredDeadLetter) -> bool:
        if self.topics is not None and letter.dlq_topic not in self.topics:
            return False
        if self.reason is not None:
            needle = self.reason.casefold()
            if needle not in letter.reason.casefold() and needle not in (
                letter.error_class.casefold()
            ):
                return False
        if self.since is not None or self.until is not None:
            failed = letter.failed_at
            if self.since is not None and failed < self.since:
                return False
            if self.until is not None and failed >= self.until:
                return False
        return True

    def select(self, letters: Iterable[StoredDeadLetter]) -> list[StoredDeadLetter]:
        return [letter for letter in letters if self.matches(letter)]


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NUMBER = re.compile(r"(?<![\w-])-?[0-9]+(?:\.[0-9]+)?(?![\w-])")
"""A number standing alone: not part of a word, a version or a pattern (UTF-8, 8-4-4-4-12)."""
_TAIL = re.compile(r", got .*$")


def reason_pattern(reason: str) -> str:
    """The reason with its particulars blanked: quoted values -> '…', numbers -> N, and a
    trailing ", got <value>" dropped, so the same fault in many records is one group."""
    text = _TAIL.sub("", reason)
    text = _QUOTED.sub("'…'", text)
    return _NUMBER.sub("N", text)


@dataclass(slots=True)
class Group:
    """Dead letters of one topic with one error class and reason (pattern)."""

    topic: str
    error_class: str
    reason: str
    count: int = 0
    first: datetime | None = None
    last: datetime | None = None
    positions: list[str] = field(default_factory=list)

    def add(self, letter: StoredDeadLetter) -> None:
        self.count += 1
        failed = letter.failed_at
        self.first = failed if self.first is None else min(self.first, failed)
        self.last = failed if self.last is None else max(self.last, failed)
        self.positions.append(letter.position)


class Summary:
    """Groups by (topic, error class, reason pattern), fed one dead letter at a time: a
    `dlq list` over millions of dead letters holds the groups, not the letters."""

    def __init__(self, *, exact: bool = False) -> None:
        self.exact = exact
        self._groups: dict[tuple[str, str, str], Group] = {}

    def add(self, letter: StoredDeadLetter) -> None:
        reason = letter.reason if self.exact else reason_pattern(letter.reason)
        key = (letter.dlq_topic, letter.error_class, reason)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = Group(*key)
        group.add(letter)

    def groups(self) -> list[Group]:
        """Largest first within each topic."""
        return sorted(
            self._groups.values(), key=lambda g: (g.topic, -g.count, g.error_class, g.reason)
        )


def summarise(letters: Iterable[StoredDeadLetter], *, exact: bool = False) -> list[Group]:
    """Groups by (topic, error class, reason pattern), largest first."""
    summary = Summary(exact=exact)
    for letter in letters:
        summary.add(letter)
    return summary.groups()


def position_key(letter: StoredDeadLetter) -> tuple[str, int, int]:
    """(topic, partition, offset): the order in which the commands print dead letters."""
    return (letter.dlq_topic, letter.dlq_partition, letter.dlq_offset)


class Newest:
    """The `limit` last dead letters in (topic, partition, offset) order, fed in any order:
    `dlq show --limit N` holds N letters, whatever the topics hold."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._heap: list[tuple[tuple[str, int, int], StoredDeadLetter]] = []

    def add(self, letter: StoredDeadLetter) -> None:
        if self.limit <= 0:
            return
        item = (position_key(letter), letter)
        if len(self._heap) < self.limit:
            heapq.heappush(self._heap, item)
        elif item[0] > self._heap[0][0]:
            heapq.heapreplace(self._heap, item)

    def letters(self) -> list[StoredDeadLetter]:
        return [letter for _, letter in sorted(self._heap, key=lambda item: item[0])]
