"""Holes in a partition's offsets: found, read again, never passed over."""

from __future__ import annotations

import pytest
from intervaltree import IntervalTree

from workers.continuity import (
    SeatFactsContinuity,
    SourceContinuity,
    StuckWatch,
    UnreadableHoleError,
    ack_hole,
    contiguous_run,
)


def test_records_past_what_the_sinks_need_are_a_hole() -> None:
    c = SeatFactsContinuity()
    assert c.needs_positions(epoch=1, partitions=[0, 1])
    c.learn([{0: 10, 1: 5}, {0: 12, 1: 5}], [0, 1])  # the slower sink decides
    assert not c.needs_positions(epoch=1, partitions=[0, 1])
    assert c.cut(0, [10]) == (1, None)
    assert c.cut(0, [7]) == (1, None)  # read again after a crash: the sinks skip it
    assert c.cut(0, [11]) == (0, 10)
    c.applied(0, 10)
    assert c.cut(0, [11]) == (1, None)


def test_contiguous_run() -> None:
    assert contiguous_run([], 5) == (0, None)
    assert contiguous_run([5, 6, 7], 5) == (3, None)
    assert contiguous_run([5, 6, 9, 10], 5) == (2, 7)  # 7 and 8 were passed over
    assert contiguous_run([6, 7], 5) == (0, 5)
    assert contiguous_run([3, 4, 5, 6], 5) == (4, None)  # 3, 4: read again, harmless
    assert contiguous_run([7, 3, 8], 5) == (0, 5)
    assert contiguous_run([40, 41, 43], None) == (2, 42)  # unknown start: the first


def test_records_after_a_hole_inside_a_batch_are_not_applied() -> None:
    c = SeatFactsContinuity()
    c.needs_positions(epoch=1, partitions=[0])
    c.learn([{0: 10}, {0: 10}], [0])
    assert c.cut(0, [10, 11, 12]) == (3, None)
    assert c.cut(0, [10, 11, 14, 15]) == (2, 12)
    c.applied(0, 11)
    assert c.cut(0, [12, 13]) == (2, None)


def test_a_partition_without_positions_in_every_sink_is_not_checked() -> None:
    c = SeatFactsContinuity()
    c.needs_positions(epoch=1, partitions=[0])
    c.learn([{0: 10}, {}], [0])
    assert c.cut(0, [5_000]) == (1, None)  # its log may start anywhere
    c.applied(0, 5_000)
    assert c.cut(0, [5_002]) == (0, 5_001)


def test_a_rebalance_forgets_positions() -> None:
    c = SeatFactsContinuity()
    c.needs_positions(epoch=1, partitions=[0])
    c.learn([{0: 3}], [0])
    assert c.needs_positions(epoch=2, partitions=[0])
    assert c.cut(0, [9]) == (1, None)


def test_a_slice_is_one_range_only_when_no_sink_position_lies_inside_it() -> None:
    c = SeatFactsContinuity()
    assert not c.needed_by_all(0, 0)  # nothing known yet: record by record
    c.needs_positions(epoch=1, partitions=[0, 1])
    c.learn([{0: 10, 1: 4}, {0: 12}], [0, 1])  # Redis applied up to 11, PostgreSQL to 9
    assert not c.needed_by_all(0, 10)  # the faster sink must skip 10 and 11 on its own
    assert c.needed_by_all(0, 12)
    assert c.needed_by_all(1, 4)  # a sink without a position needs everything
    assert not c.needed_by_all(1, 3)
    c.applied(0, 11)  # the slice 10..11 applied by every sink, record by record
    assert c.needed_by_all(0, 12)
    c.needs_positions(epoch=2, partitions=[0])  # a rebalance: positions read again
    assert not c.needed_by_all(0, 12)


def test_a_hole_that_never_fills_stops_the_worker() -> None:
    c = SeatFactsContinuity(max_returns=2)
    c.needs_positions(epoch=1, partitions=[0])
    c.learn([{0: 3}], [0])
    assert c.cut(0, [9]) == (0, 3)
    assert c.cut(0, [9]) == (0, 3)
    with pytest.raises(UnreadableHoleError, match=r"offsets 3\.\.8"):
        c.cut(0, [9])


def test_ack_hole() -> None:
    assert ack_hole(816, [825, 826]) == (816, 825)
    assert ack_hole(816, [816, 817]) is None
    assert ack_hole(816, []) is None
    assert ack_hole(None, [3]) is None


def test_a_source_hole_is_read_again_only_when_it_stays() -> None:
    watch = StuckWatch(checks=3)
    assert watch.find_stuck({"a": (816, 825), "b": None}) == []
    assert watch.find_stuck({"a": (816, 825)}) == []
    assert watch.find_stuck({"a": (816, 825)}) == [("a", 816)]
    assert watch.find_stuck({"a": (816, 900)}) == []  # it moved: start counting again
    assert watch.find_stuck({"a": None}) == []
    assert watch.seen == {}


def test_a_hole_the_log_itself_skips_is_no_hole() -> None:
    gaps = IntervalTree()
    gaps.addi(816, 820)  # e.g. transaction markers
    assert ack_hole(816, [820, 821], gaps) is None
    assert ack_hole(816, [822], gaps) == (816, 822)  # 820 and 821 are missing records


def test_records_fetched_that_nobody_acknowledged_are_a_hole_when_idle() -> None:
    assert ack_hole(100, [], taken=141, idle=True) == (100, 141)
    assert ack_hole(100, [], taken=141, idle=False) is None  # a batch in hand may hold them
    assert ack_hole(100, [], taken=100, idle=True) is None  # nothing fetched past it
    assert ack_hole(100, [], taken=None, idle=True) is None


def test_a_source_batch_is_taken_only_as_far_as_it_follows_the_committed_offset() -> None:
    c = SourceContinuity()
    tp = ("orders", 0)
    assert c.cut(1, tp, [100, 101, 102], committed=100) == (3, None, None)
    c.taken(tp, 102)
    assert c.cut(1, tp, [103, 104, 107, 108], committed=100) == (2, 105, None)
    c.taken(tp, 104)
    # read again from 105: the records come back, with a repeat of 104 on the way
    assert c.cut(1, tp, [104, 105, 106, 107], committed=100) == (4, None, None)
    c.taken(tp, 107)
    # a new epoch (a rebalance): the committed offset is where the run starts again
    assert c.cut(2, tp, [90, 91], committed=95) == (2, None, None)
    assert c.cut(3, tp, [97], committed=95) == (0, 95, None)
    assert c.cut(4, tp, [97], committed=None) == (1, None, None)  # nothing to go by


def test_a_source_hole_that_comes_back_at_the_same_place_is_accepted() -> None:
    """Offsets the log itself skips (transaction markers, compaction) come back as the
    same hole after reading again; records Faust dropped come back as records."""
    c = SourceContinuity(confirm_after=2)
    tp = ("orders", 1)
    assert c.cut(1, tp, [10, 11, 13, 14], committed=10) == (2, 12, None)
    c.taken(tp, 11)
    assert c.cut(1, tp, [13, 14], committed=10) == (2, None, (12, 13))
    c.taken(tp, 14)
    # another hole later on is suspected afresh
    assert c.cut(1, tp, [15, 17], committed=10) == (1, 16, None)
    c.taken(tp, 15)
    assert c.cut(1, tp, [16, 17], committed=10) == (2, None, None)  # it was a drop
