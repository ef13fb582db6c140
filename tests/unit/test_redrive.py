"""Dead letters read back, redrive planning, and the fact identity of redriven copies."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from tests.bad_input import load_corpus
from workers.deadletter import DeadLetter, StoredDeadLetter, dead_letter_headers
from workers.decoding import DecodeError
from workers.events import EventType
from workers.ingest import MAX_MESSAGE_BYTES, ingest
from workers.projection.batches import decode_facts
from workers.records import RawRecord
from workers.redrive import (
    REDRIVE_FROM,
    REDRIVE_ID,
    REDRIVE_ORIGIN,
    Origin,
    fact_position,
    plan_redrive,
)

corpus = load_corpus()
CREATED = EventType.RESERVATION_CREATED
TS = 1775481301500
VALUE = corpus.VALID[1].value  # a valid reservation-created


def record(
    offset: int, value: bytes | None = VALUE, headers: tuple[tuple[str, bytes], ...] = (),
    partition: int = 2, topic: str = "t.reservation-created",
) -> RawRecord:  # fmt: skip
    return RawRecord(topic, partition, offset, TS, b"key", value, headers)


def stored(letter_record: RawRecord, exc: DecodeError, offset: int = 7) -> StoredDeadLetter:
    """What `seatflow dlq` reads back after the worker dead-lettered `letter_record`."""
    letter = DeadLetter.from_exception(letter_record, exc, exc.reason, exc.schema_version)
    headers = dead_letter_headers(letter, group="g", failed_at=datetime(2026, 4, 6, tzinfo=UTC))
    return StoredDeadLetter.parse(
        "t.reservation-created.dlq", 0, offset, TS + 5, letter_record.key, letter_record.value,
        headers,
    )  # fmt: skip


def fact_ids(result_messages: list[tuple[int, bytes]]) -> list[str]:
    return [f.fact_id for _, value in result_messages for f in decode_facts(value)]


def test_origin_round_trip_and_garbage() -> None:
    origin = Origin("reservation-created", 3, 12345)
    assert Origin.parse(origin.format()) == origin
    for text in ("", "a/b/c", "t/1", "t/-1/2", "t/1/2/3", "t x/1/2", "t/1/2\n"):
        assert Origin.parse(text) is None


def test_fact_position_honours_only_an_earlier_offset_of_the_same_partition() -> None:
    def with_origin(text: str, offset: int = 50) -> RawRecord:
        return record(offset, headers=((REDRIVE_ORIGIN, text.encode()),))

    assert fact_position(with_origin("reservation-created/2/10"), "reservation-created") == (2, 10)
    # not honoured: another topic, another partition, a later offset, garbage
    for text in ("order-placed/2/10", "reservation-created/1/10", "reservation-created/2/50",
                 "reservation-created/2/60", "nonsense"):  # fmt: skip
        assert fact_position(with_origin(text), "reservation-created") == (2, 50)
    assert fact_position(record(50), "reservation-created") == (2, 50)
    # the last header wins (the redrive tool appends its own after the producer's)
    two = record(50, headers=((REDRIVE_ORIGIN, b"x"), (REDRIVE_ORIGIN, b"reservation-created/2/9")))
    assert fact_position(two, "reservation-created") == (2, 9)


def test_a_redriven_copy_has_the_fact_ids_the_original_would_have_had() -> None:
    original = ingest([record(10)], CREATED, 4)
    copy = ingest(
        [record(99, headers=((REDRIVE_ORIGIN, b"reservation-created/2/10"),))], CREATED, 4
    )
    assert fact_ids(copy.messages) == fact_ids(original.messages) == ["reservation-created/2/10/0"]


def test_every_bad_corpus_item_becomes_one_dead_letter_with_its_bytes() -> None:
    for offset, item in enumerate(corpus.BAD):
        raw = RawRecord(f"t.{item.topic}", 1, offset, TS, item.key, item.value, item.headers)
        result = ingest([raw], EventType(item.topic), 4)
        assert not result.messages and result.facts == 0, item.id
        [letter] = result.dead_letters
        assert letter.kind == item.kind and item.reason in letter.reason, item.id
        headers = dead_letter_headers(letter, group="g")
        back = StoredDeadLetter.parse("dlq", 0, 0, TS, item.key, item.value, headers)
        assert back.original_headers == tuple(item.headers), item.id
        assert back.ours["error.kind"] == item.kind and back.reason == letter.reason
        assert back.origin_offset == offset and back.origin_partition == 1
        assert back.ours["origin.topic"] == f"t.{item.topic}" and back.ours["group"] == "g"
        assert back.ours["stack"] and len(back.ours["stack"].encode()) <= 4096
        assert back.ours["worker"] and back.ours["failed.at"]


def test_the_near_maximum_item_makes_a_dead_letter_above_kafkas_default_limit() -> None:
    """Why the .dlq topics allow 8 MiB (topics/catalog.toml)."""
    [item] = [b for b in corpus.BAD if b.id == "near-max-message-size"]
    raw = RawRecord("t.reservation-created", 0, 0, TS, item.key, item.value, ())
    [letter] = ingest([raw], CREATED, 4).dead_letters
    size = (
        len(item.value)
        + len(item.key)
        + sum(len(k) + len(v) for k, v in dead_letter_headers(letter, group="seatflow"))
    )
    assert size > corpus.BROKER_MAX_MESSAGE_BYTES
    assert size < 8 * 1024 * 1024 - 64 * 1024


def test_stored_dead_letter_keeps_a_producers_own_seatflow_headers_as_original() -> None:
    forged = (("seatflow.dlq.reason", b"forged"), ("trace", b"1"))
    letter = stored(record(5, value=b"{", headers=forged), DecodeError("undecodable", "bad"))  # type: ignore[arg-type]
    assert letter.original_headers == forged
    assert letter.reason == "bad" and letter.origin_offset == 5
    assert letter.failed_at == datetime(2026, 4, 6, tzinfo=UTC)


def test_plan_sends_the_original_record_with_redrive_headers() -> None:
    original_headers = (("trace", b"abc"), ("schema-version", b"1"))
    letter = stored(record(10, headers=original_headers), DecodeError("schema_violation", "x"))  # type: ignore[arg-type]
    plan = plan_redrive(
        letter, logical_topic="reservation-created", topic="u.reservation-created",
        partitions=4, run_id="run1",
    )  # fmt: skip
    assert plan.rejection is None  # the current decoder accepts it
    assert plan.topic == "u.reservation-created" and plan.partition == 2
    assert plan.timestamp_ms == TS
    assert plan.origin == Origin("reservation-created", 2, 10)
    assert plan.headers == (
        *original_headers,
        (REDRIVE_ORIGIN, b"reservation-created/2/10"),
        (REDRIVE_ID, b"run1"),
        (REDRIVE_FROM, b"t.reservation-created.dlq/0/7"),
    )


def test_a_copy_that_failed_again_keeps_the_original_origin() -> None:
    """Redriven with --force, rejected again (at offset 80): the next redrive still names
    the record at offset 10, so its facts keep one identity however often it goes round."""
    first = stored(record(10, value=b"{"), DecodeError("undecodable", "x"))  # type: ignore[arg-type]
    plan = plan_redrive(first, logical_topic="reservation-created", topic="t.reservation-created",
                        partitions=4, run_id="r1")  # fmt: skip
    assert plan.rejection is not None and "malformed JSON" in plan.rejection
    again = stored(record(80, value=b"{", headers=plan.headers), DecodeError("undecodable", "x"))  # type: ignore[arg-type]
    second = plan_redrive(again, logical_topic="reservation-created",
                          topic="t.reservation-created", partitions=4, run_id="r2")  # fmt: skip
    assert second.origin == Origin("reservation-created", 2, 10)
    assert [v for k, v in second.headers if k == REDRIVE_ORIGIN] == [b"reservation-created/2/10"]
    assert [v for k, v in second.headers if k == REDRIVE_ID] == [b"r2"]


def test_seat_facts_dead_letters_are_checked_with_the_facts_decoder() -> None:
    letter = StoredDeadLetter.parse("t.seatflow.seat-facts.dlq", 0, 0, TS, None, b"{", [])
    plan = plan_redrive(letter, logical_topic="seatflow.seat-facts",
                        topic="t.seatflow.seat-facts", partitions=4, run_id="r")  # fmt: skip
    assert plan.rejection is not None and "malformed seat-facts" in plan.rejection
    assert plan.origin is None and plan.partition is None


def test_seat_facts_messages_stay_below_the_byte_limit_in_order() -> None:
    """Valid but long sections and rows make facts of ~1.5 kB: 2000 of them would exceed
    Kafka's 1 MB default, so messages are split by size as well as by count."""
    listed = [
        {"seatId": corpus.uid("big", f"seat-{n}"), "section": "é" * 128, "row": "ü" * 64,
         "number": n + 1}
        for n in range(1500)
    ]  # fmt: skip
    doc = {"eventId": corpus.uid("big", "event"), "seats": listed, "totalSeats": 1500,
           "generatedAt": "2026-04-01T09:30:15Z"}  # fmt: skip
    value = orjson.dumps(doc)
    assert len(value) < corpus.BROKER_MAX_MESSAGE_BYTES
    raws = [RawRecord("t.seats-generated", 0, n, TS, None, value, ()) for n in range(2)]
    result = ingest(raws, EventType.SEATS_GENERATED, 1)
    assert result.facts == 3000 and len(result.messages) > 2
    assert all(len(v) <= MAX_MESSAGE_BYTES for _, v in result.messages)
    ids = fact_ids(result.messages)
    assert ids == [f"seats-generated/0/{o}/{i}" for o in range(2) for i in range(1500)]
