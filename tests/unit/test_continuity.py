"""Holes in a partition's offsets: found, read again, never passed over."""

from __future__ import annotations

import pytest
from intervaltree import IntervalTree

from workers.continuity import SeatFactsContinuity, StuckWatch, UnreadableHoleError, ack_hole


def test_records_past_what_the_sinks_need_are_a_hole() -> None:
    c = SeatFactsContinuity()
    assert c.needs_positions(epoch=1, partitions=[0, 1])
    c.learn([{0: 10, 1: 5}, {0: 12, 1: 5}], [0, 1])  # the slower sink decides
    assert not c.needs_positions(epoch=1, partitions=[0, 1])
    assert c.hole(0, 10) is None
    assert c.hole(0, 7) is None  # read again after a crash: the sinks skip it
    assert c.hole(0, 11) == 10
    c.applied(0, 10)
    assert c.hole(0, 11) is None


def test_a_partition_without_positions_in_every_sink_is_not_checked() -> None:
    c = SeatFactsContinuity()
    c.needs_positions(epoch=1, partitions=[0])
    c.learn([{0: 10}, {}], [0])
    assert c.hole(0, 5_000) is None  # its log may start anywhere
    c.applied(0, 5_000)
    assert c.hole(0, 5_002) == 5_001


def test_a_rebalance_forgets_positions() -> None:
    c = SeatFactsContinuity()
    c.needs_positions(epoch=1, partitions=[0])
    c.learn([{0: 3}], [0])
    assert c.needs_positions(epoch=2, partitions=[0])
    assert c.hole(0, 9) is None


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
    assert c.hole(0, 9) == 3
    assert c.hole(0, 9) == 3
    with pytest.raises(UnreadableHoleError, match=r"offsets 3\.\.8"):
        c.hole(0, 9)


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
