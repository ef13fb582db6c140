"""Which partitions the consumer rewinds after Faust's seek to committed offsets."""

from __future__ import annotations

from workers.rewinding_consumer import never_committed


def test_partitions_without_a_commit_or_at_zero_are_rewound() -> None:
    committed = {"src/0": None, "src/1": 0, "src/2": 17, "changelog/0": None}
    assert never_committed(committed, lambda tp: tp.startswith("changelog")) == [
        "src/0",
        "src/1",
    ]


def test_nothing_when_every_partition_has_a_commit() -> None:
    assert never_committed({"src/0": 3}, lambda tp: False) == []
