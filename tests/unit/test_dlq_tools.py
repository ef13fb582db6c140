"""The pure parts of `seatflow dlq`: time filters, selection, grouping, safe rendering."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest

from workers.commands.dlq import letter_as_json, render_bytes, render_letter, safe
from workers.deadletter import StoredDeadLetter
from workers.dlq_query import (
    BadTimeError,
    Newest,
    Selection,
    Summary,
    parse_when,
    reason_pattern,
    summarise,
)

NOW = datetime(2026, 4, 6, 12, 0, tzinfo=UTC)


def letter(
    reason: str, *, topic: str = "a.dlq", offset: int = 0, failed: datetime = NOW,
    error: str = "DecodeError:schema_violation", value: bytes | None = b"{}",
) -> StoredDeadLetter:  # fmt: skip
    ours = [
        ("seatflow.dlq.reason", reason.encode()),
        ("seatflow.dlq.error.class", error.encode()),
        ("seatflow.dlq.failed.at", failed.isoformat().encode()),
    ]
    return StoredDeadLetter.parse(topic, 0, offset, 0, b"k", value, [("h", b"v"), *ours])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - timedelta(seconds=90)),
        ("15m", NOW - timedelta(minutes=15)),
        ("15min", NOW - timedelta(minutes=15)),
        ("2h", NOW - timedelta(hours=2)),
        ("1.5d", NOW - timedelta(hours=36)),
        ("1w", NOW - timedelta(days=7)),
        ("2026-04-01", datetime(2026, 4, 1, tzinfo=UTC)),
        ("2026-04-01T10:00:00+02:00", datetime(2026, 4, 1, 8, tzinfo=UTC)),
        ("2026-04-01T10:00:00Z", datetime(2026, 4, 1, 10, tzinfo=UTC)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "2h ago", "-2h", "2026-13-01"])
def test_parse_when_rejects_with_an_example(text: str) -> None:
    with pytest.raises(BadTimeError, match=r"e\.g\. 30m"):
        parse_when(text, NOW)


def test_selection_filters_topic_reason_class_and_time() -> None:
    letters = [
        letter("$.seatId: must be a UUID", topic="a.dlq", failed=NOW - timedelta(hours=3)),
        letter("malformed JSON", topic="b.dlq", error="DecodeError:undecodable"),
        letter("$.price: must be >= 0", topic="a.dlq", failed=NOW - timedelta(minutes=5)),
    ]
    assert len(Selection().select(letters)) == 3
    assert [d.reason for d in Selection(topics=frozenset({"b.dlq"})).select(letters)] == [
        "malformed JSON"
    ]
    assert len(Selection(reason="UUID").select(letters)) == 1
    assert len(Selection(reason="undecodable").select(letters)) == 1  # the error class
    assert len(Selection(since=NOW - timedelta(hours=1)).select(letters)) == 2
    assert len(Selection(until=NOW - timedelta(hours=1)).select(letters)) == 1


def test_reason_patterns_group_the_same_fault() -> None:
    a = reason_pattern("$.seatId: must be a UUID (8-4-4-4-12 or 32 hex digits), got 'x'")
    b = reason_pattern("$.seatId: must be a UUID (8-4-4-4-12 or 32 hex digits), got 'yy'")
    assert a == b
    assert reason_pattern("invalid UTF-8 at byte 57: invalid start byte") == reason_pattern(
        "invalid UTF-8 at byte 3: invalid start byte"
    )
    assert reason_pattern("$.items[0].price: x") == reason_pattern("$.items[12].price: x")


def test_summarise_counts_and_times() -> None:
    letters = [
        letter("bad 'x'", offset=0, failed=NOW - timedelta(hours=1)),
        letter("bad 'y'", offset=1, failed=NOW),
        letter("other", offset=2),
    ]
    groups = summarise(letters)
    assert [(g.count, g.reason) for g in groups] == [(2, "bad '…'"), (1, "other")]
    assert groups[0].first == NOW - timedelta(hours=1) and groups[0].last == NOW
    assert len(summarise(letters, exact=True)) == 3


def test_safe_escapes_what_could_drive_a_terminal() -> None:
    assert safe("plain text, ünïcode") == "plain text, ünïcode"
    assert safe("\x1b[2J\r\n\t\x00\u202e\x9b") == "\\x1b[2J\\r\\n\\t\\x00\\u202e\\x9b"


def test_render_bytes_forms() -> None:
    assert render_bytes(None, 100) == ("null", "")
    assert render_bytes(b"", 100) == ("empty (0 bytes)", "")
    kind, text = render_bytes(b'{"a":"x\\ny\\u001b"}', None)
    assert kind.endswith("bytes, JSON")
    assert text == '{\n  "a": "x\\ny\\u001b"\n}'  # the payload's newline stays escaped
    kind, text = render_bytes(b"\xff\xfe{", 100)
    assert "invalid UTF-8 at byte 0" in kind and text == "ff fe 7b"
    kind, text = render_bytes(b"NaN\r\n", 100)
    assert kind.endswith("text, not JSON") and text == "NaN\\r\\n"
    kind, text = render_bytes(b'{"s":"' + b"x" * 5000 + b'"}', 100)
    assert len(text) < 200 and text.endswith("(--full shows all of it)")


def test_render_letter_and_json() -> None:
    out = io.StringIO()
    render_letter(letter("why\x1b[31m"), out, limit=100, stack=False)
    text = out.getvalue()
    assert "reason" in text and "why\\x1b[31m" in text and "\x1b" not in text
    assert "h: b'v'" in text
    doc = letter_as_json(letter("r", value=b"\xff"), stack=False)
    assert doc["value"] == {"hex": "ff"} and doc["headers"] == [["h", "v"]]


def test_reason_patterns_keep_names_with_digits() -> None:
    assert reason_pattern("invalid UTF-8 at byte 57: x") == "invalid UTF-8 at byte N: x"
    assert "8-4-4-4-12" in reason_pattern("must be a UUID (8-4-4-4-12 or 32 hex digits)")
    assert "\\ud800" in reason_pattern("string holds a lone UTF-16 surrogate \\ud800")


def test_newest_keeps_the_last_letters_in_position_order_whatever_the_feed_order() -> None:
    feed = [("b.dlq", 0, 7), ("a.dlq", 1, 3), ("b.dlq", 1, 0), ("b.dlq", 0, 2), ("a.dlq", 0, 9)]
    headers = [("seatflow.dlq.reason", b"r"), ("seatflow.dlq.failed.at", NOW.isoformat().encode())]
    letters = [StoredDeadLetter.parse(t, p, o, 0, b"k", b"{}", headers) for t, p, o in feed]
    newest = Newest(3)
    for item in letters:
        newest.add(item)
    assert [(d.dlq_topic, d.dlq_partition, d.dlq_offset) for d in newest.letters()] == [
        ("b.dlq", 0, 2), ("b.dlq", 0, 7), ("b.dlq", 1, 0),
    ]  # fmt: skip
    assert Newest(0).letters() == []


def test_summary_fed_one_by_one_equals_summarise() -> None:
    letters = [letter("$.a: must be x, got 'q'"), letter("$.a: must be x, got 'r'"), letter("z")]
    summary = Summary()
    for item in letters:
        summary.add(item)
    assert summary.groups() == summarise(letters)
    assert [g.count for g in summary.groups()] == [2, 1]
