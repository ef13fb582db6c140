"""Keep freed heap memory in the process instead of handing it back to the kernel.

Why: glibc's malloc returns the top of the heap to the kernel as soon as more than
`M_TRIM_THRESHOLD` (128 KiB at start) of it is free, and the next allocation that needs it
takes a page fault per 4 KiB page to get it back. A process that builds a large batch of
small results, frees them and builds the next one pays that on every batch. orjson is the
worst case: each `orjson.dumps` result is allocated through a larger buffer at the top of
the heap, so a list of 30,000 encoded facts costs 30,000 page faults to build, every time
(about 2.5 us each on this machine, several times the encoding itself). The replay's
decoding processes, which encode every fact they decode, spent 3.7 us of system time per
record on them (`bench/heap.py` runs the same work with and without).

Raising the threshold keeps what a batch freed for the next one; the cost is that the
process does not shrink below its largest batch, which for a decoding process is some
tens of MB.

Only for processes whose churn is small blocks. Setting any threshold turns off glibc's
dynamic mmap threshold, so every block above 128 KiB is then mmapped afresh and faulted
in page by page: in the replay's main process, whose batches are large lists and buffers,
that doubled the page faults (2.6 million instead of 1.3 million for 1,000,000 events)
and cost more system time than it saved.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
"""glibc's `mallopt` parameter number (malloc.h)."""
KEEP_FREED_BYTES = 512 * 1024 * 1024
"""Free memory at the top of the heap kept for reuse before any is given back."""


def keep_freed_heap(keep_bytes: int = KEEP_FREED_BYTES) -> bool:
    """Set glibc's trim threshold to `keep_bytes`; False where there is no glibc `mallopt`
    (musl, macOS): a speed setting, so its absence is not an error."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, keep_bytes))
