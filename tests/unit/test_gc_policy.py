"""The worker's collector settings: young collections rare, start-up objects frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from workers.gc_policy import OLD_THRESHOLD, YOUNG_THRESHOLD, tune_for_streaming


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_young_generation_is_collected_rarely_and_start_up_objects_are_frozen(
    restored_gc: None,
) -> None:
    long_lived = [[i] for i in range(1000)]  # stands for what start-up builds
    tune_for_streaming()
    assert gc.get_threshold()[0] == YOUNG_THRESHOLD > 700  # CPython's default is 700
    assert gc.get_threshold()[2] == OLD_THRESHOLD  # old generations are still collected
    assert gc.get_freeze_count() >= len(long_lived)


def test_cycles_are_still_reclaimed_after_tuning(restored_gc: None) -> None:
    tune_for_streaming()

    class Node:
        other: object

    a, b = Node(), Node()
    a.other, b.other = b, a

    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
