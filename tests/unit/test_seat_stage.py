"""The seat stage's batch hygiene (workers/seat_stage.py), without I/O."""

from __future__ import annotations

from workers.records import RawRecord
from workers.seat_stage import once_in_offset_order


def _records(offsets: list[int]) -> list[RawRecord]:
    return [RawRecord("seat-facts", 0, o, 0, None, f"v{o}".encode()) for o in offsets]


def test_a_batch_in_offset_order_is_taken_as_it_is() -> None:
    records = _records([7, 8, 9])
    assert once_in_offset_order(records) is records


def test_records_read_again_after_a_seek_back_are_projected_once_in_order() -> None:
    # 50..53 read, then a seek back to 45 re-reads 45..51 while they sat in the buffer
    read = _records([50, 51, 52, 53, 45, 46, 47, 48, 49, 50, 51])
    once = once_in_offset_order(read)
    assert [r.offset for r in once] == list(range(45, 54))
    assert [r.value for r in once] == [f"v{o}".encode() for o in range(45, 54)]
    # the copy read first is the one kept (the same record, by the same position)
    assert once[5] is read[0]
