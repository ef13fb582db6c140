"""The replay's pure helpers: time points, batch ranges, progress output, copy comparison."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from workers.generation import group_for, old_prefix, pipeline_for, shadow_prefix
from workers.replay.plan import (
    EARLIEST,
    LATEST,
    PlanError,
    SourcePartition,
    next_ranges,
    parse_point,
)
from workers.replay.progress import JsonReporter, LineReporter, Rate, Tick, TtyReporter
from workers.settings import Settings
from workers.verify.compare import compare
from workers.verify.snapshot import Snapshot

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("earliest", EARLIEST),
        ("90s", NOW - timedelta(seconds=90)),
        ("1h30m", NOW - timedelta(hours=1, minutes=30)),
        ("3d", NOW - timedelta(days=3)),
        ("2026-11-20T22:00:00Z", datetime(2026, 11, 20, 22, tzinfo=UTC)),
        ("2026-11-20T22:00:00", datetime(2026, 11, 20, 22, tzinfo=UTC)),  # naive: UTC
        ("2026-11-20T23:00:00+01:00", datetime(2026, 11, 20, 22, tzinfo=UTC)),
    ],
)
def test_points_in_time(text: str, expected: object) -> None:
    assert parse_point(text, now=NOW, allow=EARLIEST) == expected


def test_latest_only_where_allowed() -> None:
    assert parse_point("latest", now=NOW, allow=LATEST) == LATEST
    with pytest.raises(PlanError, match="duration"):
        parse_point("latest", now=NOW, allow=EARLIEST)
    with pytest.raises(PlanError):
        parse_point("yesterday", now=NOW, allow=EARLIEST)


def test_batches_share_the_budget_in_proportion_and_cover_everything() -> None:
    a, b, c = (SourcePartition("t", p, "x.t") for p in range(3))
    positions = {a: 0, b: 100, c: 5}
    ends = {a: 9000, b: 1100, c: 5}
    ranges = next_ranges(positions, ends, 1000)
    assert set(ranges) == {a, b}  # nothing left in c
    assert ranges[a] == (0, 900) and ranges[b] == (100, 200)
    covered = 0
    while ranges := next_ranges(positions, ends, 1000):
        for sp, (lo, hi) in ranges.items():
            assert lo == positions[sp] and hi <= ends[sp]
            positions[sp] = hi
            covered += hi - lo
    assert covered == 9000 + 1000 and positions == ends


def test_generation_names() -> None:
    base = Settings(consumer_group="seatflow", topic_prefix="p.", redis_prefix="sf:")
    assert group_for("seatflow", 1) == "seatflow" and group_for("seatflow", 3) == "seatflow.g3"
    two = pipeline_for(base, 2)
    assert two.settings.consumer_group == "seatflow.g2"
    assert two.catalog.get("seatflow.seat-facts").name == "p.seatflow.seat-facts.g2"
    assert two.catalog.get("{group}-seats-changelog").name == "p.seatflow.g2-seats-changelog"
    assert two.catalog.get("order-placed").name == "p.order-placed"  # sources are shared
    # the copies beside the live prefix, not under it (readers SCAN the live prefix)
    assert shadow_prefix("sf:") == "sf~shadow:" and old_prefix("t1:sf:") == "t1:sf~old:"


TICK = Tick("replay", 3, 500, 2000, [("order-placed/0", 50, 200)], 2.0, 250.0, 6.0)


def test_json_progress_is_one_object_per_line() -> None:
    out = io.StringIO()
    reporter = JsonReporter(out)
    reporter.plan({"events": 2000}, [])
    reporter.tick(TICK)
    reporter.event("fencing", generation=1)
    reporter.summary({"events_read": 2000}, [])
    docs = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [d["type"] for d in docs] == ["plan", "progress", "event", "summary"]
    assert docs[1]["partitions"] == [{"partition": "order-placed/0", "position": 50, "end": 200}]
    assert docs[1]["eta_s"] == 6.0


def test_plain_lines_are_throttled() -> None:
    out = io.StringIO()
    reporter = LineReporter(out, interval_s=3600)
    for _ in range(5):
        reporter.tick(TICK)
    assert out.getvalue().count("\n") == 1
    assert "25.0% 500/2,000 events, 250 events/s, ETA 0:06" in out.getvalue()


def test_terminal_block_is_redrawn_in_place() -> None:
    out = io.StringIO()
    reporter = TtyReporter(out, min_interval_s=0)
    reporter.tick(TICK)
    reporter.tick(TICK)
    assert "\x1b[2F\x1b[J" in out.getvalue()  # cursor up over the two lines, clear
    assert "[#######" in out.getvalue()


def _snapshot(amount: str) -> Snapshot:
    snap = Snapshot()
    snap.tables["event_sales_daily"][("e1", "VIP", date(2026, 11, 20))] = (1, 0, 1, Decimal(amount))
    snap.hashes["seat:s1"] = {"status": "reserved"}
    snap.hashes["availability:e1"] = {"total": "1", "reserved": "1"}
    return snap


def test_equal_copies_have_equal_hashes_whatever_the_money_spelling() -> None:
    result = compare(_snapshot("12.50"), _snapshot("12.5"))
    assert result.equal and not result.differences
    assert result.doc()["tables"]["event_sales_daily"]["left"]["count"] == 1


def test_different_copies_name_the_part_and_the_key() -> None:
    left, right = _snapshot("12.50"), _snapshot("12.50")
    right.hashes["seat:s1"] = {"status": "available"}
    result = compare(left, right, names=("live", "shadow"))
    assert not result.equal
    assert not result.doc()["redis"]["seat"]["equal"] and result.doc()["redis"]["seatmap"]["equal"]
    assert result.differences == [
        "redis seat:s1: {'status': 'reserved'} != {'status': 'available'}"
    ]
    assert compare(left, right, redis=False).equal  # PostgreSQL only


def test_the_first_progress_has_a_rate_when_the_start_is_known() -> None:
    assert Rate().add(10.0, 1000) == 0.0  # one sample: no rate
    assert Rate(start=(0.0, 0)).add(10.0, 1000) == 100.0
    rate = Rate(window_s=30.0, start=(0.0, 0))
    rate.add(10.0, 1000)
    rate.add(40.0, 4000)
    assert rate.add(50.0, 7000) == 300.0  # the start has left the 30 s window
