"""Decoded chunks handed off through files: exact, removed once taken, never lost when
they cannot be written, and no directory of a killed replay kept for good."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from workers.replay import spool
from workers.replay.spool import PREFIX, hand_off, make_spool, owner, spool_root, sweep, take

CHUNK = (3, 1, [b'["r","t/0/1/0"]', b'["x","t/0/2/0",null]', b"\x00\xff"])


def test_a_chunk_comes_back_exactly_and_its_file_is_removed(tmp_path: Path) -> None:
    path = hand_off(CHUNK, tmp_path)
    assert isinstance(path, str) and Path(path).parent == tmp_path
    assert Path(path).stat().st_size > 0
    assert take(path) == CHUNK
    assert list(tmp_path.iterdir()) == []


def test_a_chunk_that_cannot_be_written_goes_back_itself(tmp_path: Path) -> None:
    gone = tmp_path / "removed"  # e.g. the pool closed while this decoder still worked
    assert hand_off(CHUNK, gone) == CHUNK
    assert take(CHUNK) == CHUNK
    assert not gone.exists()


def test_a_chunk_too_large_for_the_room_left_goes_back_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Full(io.FileIO):
        def write(self, data: object) -> int:
            super().write(b"part of it")
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(spool, "open", lambda path, mode: Full(path, mode), raising=False)
    assert hand_off(CHUNK, tmp_path) == CHUNK
    assert list(tmp_path.iterdir()) == []  # what it wrote is not left behind


def test_chunk_files_of_one_process_never_collide(tmp_path: Path) -> None:
    paths = [hand_off((i, 0, []), tmp_path) for i in range(50)]
    assert len(set(paths)) == 50
    assert [take(p)[0] for p in paths] == list(range(50))


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_sweep_removes_only_the_directories_of_processes_that_are_gone(
    tmp_path: Path,
) -> None:
    gone = _dead_pid()
    dead = tmp_path / f"{PREFIX}{owner(gone)}-abc"
    mine = tmp_path / f"{PREFIX}{owner()}-def"
    elsewhere = tmp_path / f"{PREFIX}{gone}@another-host-ghi"  # its own process ids
    other = tmp_path / "seatflow-something-else"
    odd = tmp_path / f"{PREFIX}notapid@{owner().partition('@')[2]}-x"
    for directory in (dead, mine, elsewhere, other, odd):
        directory.mkdir()
        (directory / "x.chunk").write_bytes(b"data")
    assert sweep(tmp_path) == [dead]
    assert not dead.exists()
    assert all(d.exists() for d in (mine, elsewhere, other, odd))


def test_a_new_spool_is_this_process_s_and_sweeps_first(tmp_path: Path) -> None:
    dead = tmp_path / f"{PREFIX}{owner(_dead_pid())}-abc"
    dead.mkdir()
    made = make_spool(tmp_path)
    assert made.parent == tmp_path and made.name.startswith(f"{PREFIX}{os.getpid()}@")
    assert not dead.exists()
    assert sweep(tmp_path) == []  # its own directory is kept while this process lives


def test_a_new_spool_sweeps_both_places_a_spool_may_be(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a killed run left in /dev/shm may be what leaves it too little room: it is
    swept even when the new spool goes elsewhere."""
    shm, tmp = tmp_path / "shm", tmp_path / "tmp"
    shm.mkdir()
    tmp.mkdir()
    monkeypatch.setattr(spool, "SHM", shm)
    monkeypatch.setattr(spool, "SHM_MIN_FREE", 2**62)  # /dev/shm too full: $TMPDIR
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    gone = owner(_dead_pid())
    left = [shm / f"{PREFIX}{gone}-a", tmp / f"{PREFIX}{gone}-b"]
    for directory in left:
        directory.mkdir()
    made = make_spool()
    assert made.parent == tmp
    assert not any(directory.exists() for directory in left)


def test_shm_is_used_only_with_room_to_spare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spool, "SHM", tmp_path)
    monkeypatch.setattr(spool, "SHM_MIN_FREE", 1)
    assert spool_root() == tmp_path
    monkeypatch.setattr(spool, "SHM_MIN_FREE", 2**62)  # more than any disk has free
    assert spool_root() == Path(tempfile.gettempdir())
    monkeypatch.setattr(spool, "SHM", tmp_path / "missing")
    monkeypatch.setattr(spool, "SHM_MIN_FREE", 1)
    assert spool_root() == Path(tempfile.gettempdir())
