"""Which partitions the consumer rewinds after Faust's seek to committed offsets."""

from __future__ import annotations

from intervaltree import IntervalTree

from workers.consumer import gap_between, last_read, never_committed, next_commit


def test_partitions_without_a_commit_or_at_zero_are_rewound() -> None:
    committed = {"src/0": None, "src/1": 0, "src/2": 17, "changelog/0": None}
    assert never_committed(committed, lambda tp: tp.startswith("changelog")) == [
        "src/0",
        "src/1",
    ]


def test_nothing_when_every_partition_has_a_commit() -> None:
    assert never_committed({"src/0": 3}, lambda tp: False) == []


def test_a_one_record_hole_at_the_head_holds_the_commit_back() -> None:
    acked = [123, 124, 125]
    assert next_commit(acked, 122, IntervalTree()) is None  # Faust would commit 126
    assert acked == [123, 124, 125]


def test_the_run_from_the_committed_offset_is_committed() -> None:
    acked = [125, 122, 123, 124, 130]
    assert next_commit(acked, 122, IntervalTree()) == 126
    assert acked == [130]


def test_offsets_the_log_skips_count_as_acknowledged() -> None:
    gaps = IntervalTree()
    gaps.addi(124, 127)  # e.g. transaction markers at 124..126
    acked = [122, 123, 127]
    assert next_commit(acked, 122, gaps) == 128
    assert acked == []


def test_nothing_acked_nothing_to_commit() -> None:
    assert next_commit([], 5, IntervalTree()) is None


def test_after_a_seek_the_last_offset_read_is_the_one_before() -> None:
    assert last_read(10) == 9
    assert last_read(0) is None
    assert last_read(None) is None


def test_a_marker_right_at_the_committed_offset_is_a_gap() -> None:
    # sought to the committed offset 10; the first record read is 11 (10 is a marker)
    gap = gap_between(last_read(10) or 0, 11, committed=10)
    assert gap == (10, 11)
    gaps = IntervalTree()
    gaps.addi(*gap)
    assert next_commit([11, 12], 10, gaps) == 13


def test_the_record_just_read_is_no_gap() -> None:
    assert gap_between(9, 12, committed=5) == (10, 12)  # 10 and 11; not 12
    assert gap_between(9, 10, committed=5) is None  # consecutive
    assert gap_between(3, 8, committed=6) == (6, 8)  # never below the committed offset


def test_offsets_acknowledged_twice_or_already_committed_do_not_slow_the_commit() -> None:
    acked = [1871, 1872, 1872, 1873, 1873, 1874, 1869, 1875]
    assert next_commit(acked, 1871, IntervalTree()) == 1876  # Faust's run stops at 1873
    assert acked == []
