"""keep_freed_heap: memory freed by one batch of encoded results serves the next one
without page faults. Each case runs in a fresh interpreter: the setting is per process and
cannot be undone."""

from __future__ import annotations

import json
import subprocess
import sys

CHURN = """
import json, resource, sys
import orjson
from workers.heap import keep_freed_heap
tuned = sys.argv[1] == "tuned" and keep_freed_heap()
rows = [["r", f"topic/0/{i}/0", "47071a63-8fc8-4f2e-8eec-b812ed4c228d", "25.00", i]
        for i in range(20_000)]
def batch():
    encoded = [orjson.dumps(row) for row in rows]  # what a decoding process builds
    del encoded
batch()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    batch()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({"tuned": tuned, "faults_per_batch": faults / 4}))
"""


def _batches(kind: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", CHURN, kind], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_freed_memory_is_reused_without_page_faults() -> None:
    tuned = _batches("tuned")
    # seatflow runs on Debian (the machines, the image): glibc's mallopt must be found
    assert tuned["tuned"] is True, "keep_freed_heap found no glibc mallopt"
    default = _batches("default")
    # 20,000 encoded rows a batch: with glibc's default trimming each one faults a page
    # back in; with the freed heap kept, a batch reuses the last one's pages.
    assert default["faults_per_batch"] > 5_000
    assert tuned["faults_per_batch"] < default["faults_per_batch"] / 20
