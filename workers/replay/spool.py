"""Decoded chunks handed from a decoding process to the projecting process through a file.

Why not the process pool's result pipe: the pipe holds 64 KiB, and the pool's thread that
empties it needs the GIL for every read, which it gets from a busy projecting process
only at the interpreter's switch interval (5 ms). A chunk of 10,000 records is ~3 MB of
fact JSON, and the projecting process is busy most of a replay: a decoder then wrote at
~14 MB/s and sat blocked on the pipe instead of decoding the next batch (40 such chunks
took 7.4 s against 0.42 s through files: `bench/handoff.py`, best of 3). Through a file,
a decoder writes its chunk at memory speed and sends only the file's name; the projecting
process reads the file in one call when it takes the chunk (`take`, in its event loop's
thread: ~1 ms for 3 MB), not 64 KiB per GIL handoff.

Files go to a directory of their own per pool (`make_spool`), on /dev/shm when it has
room (RAM-backed), else in the temporary directory (`$TMPDIR`). The pool removes it when
it closes; a directory left by a killed replay is removed by the next pool that starts
on the host (`sweep`, in both places). If a chunk cannot be written (no space left), it
goes through the pipe as before: slower, never lost.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import shutil
import socket
import tempfile
from pathlib import Path

from workers.replay.fold import WireChunk

SHM = Path("/dev/shm")
SHM_MIN_FREE = 1024**3
"""Below this much free space, /dev/shm is not used: a container's is often 64 MB, and the
chunks of the batches decoded ahead take up to ~450 MB (four batches of 250,000 events,
the last up to a quarter larger, ~85 MB of JSON each: `plan.REMAINDER_SHARE`)."""
PREFIX = "seatflow-decoded-"

Handoff = WireChunk | str
"""What a decoding process returns: the path of the file holding its chunk, or the chunk
itself when it could not be written."""


def spool_root() -> Path:
    """/dev/shm if it is a writable directory with `SHM_MIN_FREE` free, else `$TMPDIR`."""
    try:
        if os.access(SHM, os.W_OK) and SHM.is_dir():
            stats = os.statvfs(SHM)
            if stats.f_bavail * stats.f_frsize >= SHM_MIN_FREE:
                return SHM
    except OSError:
        pass
    return Path(tempfile.gettempdir())


def owner(pid: int | None = None) -> str:
    """`pid@host`: who a spool directory belongs to. The host name, because containers
    that share /dev/shm (`--ipc=host`) each have their own process ids: a directory of
    another host's replay is never taken for a dead one of this host."""
    return f"{os.getpid() if pid is None else pid}@{socket.gethostname()}"


def make_spool(root: Path | None = None) -> Path:
    """A new directory for one pool's chunks (named after its `owner`, for `sweep`),
    after removing those of replays that are gone from both places a spool may be (first:
    what they left may be what leaves /dev/shm too little room)."""
    if root is None:
        for place in (SHM, Path(tempfile.gettempdir())):
            if place.is_dir():
                sweep(place)
        root = spool_root()
    else:
        sweep(root)
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{owner()}-", dir=root))


def sweep(root: Path) -> list[Path]:
    """Remove the spool directories under `root` of this host's processes that are gone
    (killed before they could remove their own); return them."""
    host = socket.gethostname()
    removed = []
    for path in sorted(root.glob(f"{PREFIX}*")):
        pid, _, rest = path.name.removeprefix(PREFIX).partition("@")
        their_host = rest.rpartition("-")[0]  # mkdtemp's suffix has no "-"
        if their_host == host and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            if not path.exists():
                removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


_written = itertools.count()


def hand_off(chunk: WireChunk, spool: Path) -> Handoff:
    """In a decoding process: `chunk` written to a new file in `spool`; its path, or the
    chunk itself if it could not be written."""
    path = spool / f"{os.getpid()}-{next(_written)}.chunk"  # this process's own names
    data = pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        with open(path, "xb") as out:
            out.write(data)
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()  # what a full disk let it write
        return chunk
    return str(path)


def take(handoff: Handoff) -> WireChunk:
    """In the projecting process: the chunk a decoding process handed off (its file read
    and removed)."""
    if not isinstance(handoff, str):
        return handoff
    with open(handoff, "rb") as source:
        data = source.read()
    os.unlink(handoff)
    chunk: WireChunk = pickle.loads(data)
    return chunk
