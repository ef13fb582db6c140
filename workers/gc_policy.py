"""Garbage-collector settings for the worker process.

The seat stage allocates many short-lived containers per fact (each derived view, its
rows and the mutations between two views), while the process keeps a large long-lived
heap (Faust, the cached seat states). With CPython's default thresholds (700, 10, 10) a
100,000-event run of `bench/throughput.py` collected about 4,500 times and spent 7.2 s of
the worker's 45 CPU-seconds (16%) in the collector, mostly re-scanning long-lived
objects of the older generations. Freezing what start-up built (it lives as long as the
process) and collecting the young generation every 100,000 net allocations brought that
to 1.8 s in 17 to 33 collections.

The older generations are still collected (every 20 young collections, and a full one
every 10 of those when the heap grew by a quarter, CPython's own rule), so reference
cycles that survive a young collection are reclaimed, later rather than sooner.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000
"""Net allocations of container objects between two young-generation collections."""
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 10


def tune_for_streaming() -> None:
    """Call once the process has built its long-lived objects, before it consumes."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)
