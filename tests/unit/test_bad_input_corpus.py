"""The bad-input corpus itself: big enough, covering the issue's list, each item rejected
for the stated reason, and the metacharacter items valid and kept verbatim by the decoder."""

from __future__ import annotations

from tests.bad_input import load_corpus
from workers.decoding import DecodeError, decode
from workers.events import EventType

corpus = load_corpus()
TS = 1775481301500

REQUIRED = {
    "malformed JSON": "malformed-json",
    "truncated JSON": "truncated-json",
    "empty value": "empty-value",
    "null (tombstone) value": "tombstone-null-value",
    "null key": "null-key-and-null-value",
    "invalid UTF-8": "invalid-utf8",
    "lone surrogate": "lone-surrogate-escape",
    "NaN": "nan",
    "Infinity": "infinity",
    "integer of more than 4300 digits": "integer-of-5000-digits",
    "deep nesting": "nesting-10000-deep",
    "near the broker's maximum message size": "near-max-message-size",
    "wrong types": "wrong-type-base-price",
    "missing required fields": "missing-reservation-id",
    "invalid UUIDs": "invalid-uuid",
    "impossible dates": "impossible-date",
    "negative prices": "negative-item-price",
    "unknown versions": "unknown-version-header",
    "NUL characters": "nul-in-customer-id",
    "SQL metacharacters in ids": "sql-metacharacters-in-uuid",
    "Redis metacharacters in ids": "redis-metacharacters-in-uuid",
}


def test_at_least_40_distinct_bad_messages_covering_the_list() -> None:
    ids = [b.id for b in corpus.BAD]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    messages = {(b.topic, b.key, b.value, b.headers) for b in corpus.BAD}
    assert len(messages) == len(corpus.BAD)
    missing = {what: i for what, i in REQUIRED.items() if i not in ids}
    assert not missing
    assert {b.topic for b in corpus.BAD} == {t.value for t in EventType}
    assert {b.kind for b in corpus.BAD} == {
        "undecodable", "schema_violation", "unknown_version", "invalid_value",
    }  # fmt: skip


def test_every_bad_message_is_rejected_for_its_reason() -> None:
    for item in corpus.BAD:
        try:
            decode(EventType(item.topic), item.value, item.key, list(item.headers), TS)
        except DecodeError as exc:
            assert exc.kind.value == item.kind, (item.id, str(exc))
            assert item.reason in exc.reason, (item.id, exc.reason)
        else:
            raise AssertionError(f"{item.id} was accepted")


def test_the_near_maximum_item_is_near_the_maximum() -> None:
    [item] = [b for b in corpus.BAD if b.id == "near-max-message-size"]
    assert (
        corpus.BROKER_MAX_MESSAGE_BYTES - 1024 < len(item.value) < corpus.BROKER_MAX_MESSAGE_BYTES
    )


def test_metacharacter_items_decode_with_their_strings_untouched() -> None:
    strings = {corpus.SQL_CUSTOMER, corpus.RESP_CUSTOMER, corpus.GLOB_CUSTOMER}
    strings |= set(corpus.META_SECTIONS) | {corpus.ODD_ROW}
    seen: set[str] = set()
    for item in corpus.VALID:
        event = decode(EventType(item.topic), item.value, item.key, list(item.headers), TS)
        text = repr(event)
        seen |= {s for s in strings if repr(s)[1:-1] in text}
    assert seen == strings
    assert any(item.key is None for item in corpus.VALID)
