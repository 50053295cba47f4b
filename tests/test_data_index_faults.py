"""The list index under faults: a list edited within a coarse file system's timestamp step, a
damaged index file, an index folder that cannot be written, dead builds' temporary folders, and
the build_index command saying "reused" when it waited for another process's build."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from paths import REPO

from python_layers.data import index, index_file, index_writer

SECOND = 10**9


def write(tmp_path: Path, text: str, name: str = "train.txt") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def labels_of(built: index.Index) -> list[list[int]]:
    return built.targets(np.arange(len(built)), 2)[0].astype(int).tolist()


@pytest.fixture
def whole_seconds(monkeypatch):
    """A file system with 1-second timestamps (ext2 with 128-byte inodes, HFS+): the list's
    mtime and ctime as stat gives them, cut to the second. Returns a function that waits for
    the start of a second (so that a few quick writes share one stamp)."""

    def coarse(path):
        st = os.stat(path)
        return SimpleNamespace(
            st_size=st.st_size, st_ino=st.st_ino, st_dev=st.st_dev,
            st_mtime_ns=st.st_mtime_ns // SECOND * SECOND,
            st_ctime_ns=st.st_ctime_ns // SECOND * SECOND,
        )  # fmt: skip

    monkeypatch.setattr(index_file, "_stat", coarse)

    def second_start():
        time.sleep(1 - time.time() % 1 + 0.01)

    return second_start


def test_an_edit_in_the_same_second_is_not_served_from_the_old_index(tmp_path, whole_seconds):
    whole_seconds()
    path = write(tmp_path, "a.jpg 1\nb.jpg 2\n")
    assert labels_of(index.open_index(path)) == [[1, -1], [2, -1]]
    path.write_text("a.jpg 1\nb.jpg 3\n")  # same size, same inode
    assert labels_of(index.open_index(path)) == [[1, -1], [3, -1]]


def test_a_racy_index_is_checked_by_hashing_the_list(tmp_path, whole_seconds, monkeypatch):
    """An index whose build started in the list's last timestamp step (as one built before
    the build waited that step out) is trusted only when the list's SHA-256 matches."""
    monkeypatch.setattr(index_file, "_settle", lambda source, header, started: started)
    whole_seconds()
    path = write(tmp_path, "a.jpg 1\nb.jpg 2\n")
    first = index.open_index(path)
    assert index_file.racy(first.header)
    assert index.open_index(path).built is False  # the hash matches: reused
    path.write_text("a.jpg 1\nb.jpg 3\n")
    assert index_file.identity(path) == first.header["identity"]  # what stat cannot tell
    again = index.open_index(path)
    assert again.built and labels_of(again) == [[1, -1], [3, -1]]


def test_granularity_seen_in_the_stamps():
    assert index_file.granularity([5 * 10**9, 7 * 10**9]) == index_file.COARSE_NS
    assert index_file.granularity([5 * 10**9 + 1, 7 * 10**9]) == index_file.TICK_NS
    assert index_file.granularity([5 * 10**9 + 10**8, 7 * 10**9]) == 10**8


@pytest.mark.parametrize("damage", ["truncated", "zeroed arrays"])
def test_a_damaged_index_is_rebuilt_saying_so(tmp_path, damage, capfd):
    text = "".join(f"img/{i}.jpg {i % 5} {(i + 2) % 5}\n" for i in range(300))
    path = write(tmp_path, text)
    good = index.open_index(path)
    expected = ([good.path(i) for i in range(len(good))], labels_of(good))
    target = index.index_path(path)
    size = os.path.getsize(target)
    with open(target, "r+b") as handle:
        if damage == "truncated":
            handle.truncate(size // 2)
        else:  # power loss: the header written, the arrays' pages never
            handle.seek(index_file.HEADER_BYTES)
            handle.write(bytes(size - index_file.HEADER_BYTES))
    capfd.readouterr()
    again = index.open_index(path)
    assert ([again.path(i) for i in range(len(again))], labels_of(again)) == expected
    assert again.built
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"list index {target}: damaged (")
    assert err[0].endswith("; rebuilding it")
    reason = "bytes, its header's layout needs" if damage == "truncated" else "checksum of paths"
    assert reason in err[0]


def test_the_checksums_are_checked_once_per_process(tmp_path, monkeypatch):
    path = write(tmp_path, "a.jpg 1\n")
    index.open_index(path)
    index_file._verified.clear()  # as in a new process
    checked = []
    original = index_file._crc32
    monkeypatch.setattr(index_file, "_crc32", lambda *a: checked.append(1) or original(*a))
    index.open_index(path)
    index.open_index(path)
    assert len(checked) == 1


CLI_WITH_FAULT = """
import errno, sys
from python_layers.data import build_index, index_writer
if sys.argv[1] == "full":
    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")
    index_writer._copy = full
sys.exit(build_index.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("fault", ["full", "not a folder"])
def test_an_index_folder_that_cannot_hold_the_index(tmp_path, fault):
    path = write(tmp_path, "a.jpg 1\n")
    folder = tmp_path / "indexes"
    if fault == "not a folder":
        (tmp_path / "a_file").write_text("")
        folder = tmp_path / "a_file" / "indexes"
    done = subprocess.run(
        [sys.executable, "-c", CLI_WITH_FAULT, fault, str(path), "--quiet"],
        cwd=REPO,
        env=dict(os.environ, MULTILABEL_INDEX_DIR=str(folder)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    what = "is full (No space left on device)" if fault == "full" else "cannot be written"
    assert f"{folder}: the list index folder {what}" in done.stderr
    assert "set MULTILABEL_INDEX_DIR to a writable folder" in done.stderr
    if fault == "full":  # nothing half-written left
        assert sorted(p.name for p in folder.iterdir()) == [f"{index.index_path(path).name}.lock"]


def test_a_read_only_index_folder_is_named(tmp_path, monkeypatch):
    """chmod does not stop root (CI), so the file system's refusal is made here."""
    path = write(tmp_path, "a.jpg 1\n")

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(index_file.tempfile, "mkdtemp", read_only)
    with pytest.raises(index.IndexFolderError, match="the list index folder cannot be written"):
        index.open_index(path)


def test_dead_builds_temporary_folders_are_removed(tmp_path):
    folder = index.cache_dir()
    gone = folder / "gone.txt.0123456789abcdef.idx.tmpabc"  # its list and lock are gone
    gone.mkdir()
    (gone / "labels").write_bytes(bytes(1000))
    building = write(tmp_path, "a.jpg 1\n", "building.txt")
    live = Path(f"{index.index_path(building)}.tmpxyz")  # its builder still holds the lock
    live.mkdir()
    old = folder / "old.txt.0123456789abcdef.idx.tmpold"  # held, but older than a day
    old.mkdir()
    day_ago = time.time() - index_file.TEMP_MAX_AGE_S - 60
    os.utime(old, (day_ago, day_ago))
    with (
        open(f"{index.index_path(building)}.lock", "a") as lock,
        open(folder / "old.txt.0123456789abcdef.idx.lock", "a") as old_lock,
    ):
        fcntl.flock(lock, fcntl.LOCK_EX)
        fcntl.flock(old_lock, fcntl.LOCK_EX)
        index.open_index(write(tmp_path, "b.jpg 2\n", "other.txt"))
        assert live.exists() and not gone.exists() and not old.exists()


WAIT_AND_REUSE = """
import sys
from python_layers.data import build_index
sys.exit(build_index.main([sys.argv[1], "--quiet"]))
"""


def test_build_index_says_reused_when_it_waited_for_another_build(tmp_path):
    path = write(tmp_path, "a.jpg 1\nb.jpg 2\n")
    target = index.index_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # this process is the builder
        child = subprocess.Popen(
            [sys.executable, "-c", WAIT_AND_REUSE, str(path)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 60
        while f"-> FLOCK  ADVISORY  WRITE {child.pid} " not in Path("/proc/locks").read_text():
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        index_file.build(str(path), target, False)  # the child waits on the lock meanwhile
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and "index reused: " in out, out
    assert json.loads(target.read_bytes()[8:4096].rstrip(b"\0"))["images"] == 2


def test_an_interrupted_build_still_leaves_nothing(tmp_path, monkeypatch):
    """The checksum pass runs before the header: a build stopped there is not loadable."""

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_file, "_crc32", interrupted)
    path = write(tmp_path, "a.jpg 1\n")
    with pytest.raises(KeyboardInterrupt):
        index.open_index(path)
    assert not index.index_path(path).exists()
    monkeypatch.undo()
    assert len(index.open_index(path)) == 1
    assert index_writer.HEADER_BYTES == index_file.HEADER_BYTES


def test_an_index_built_before_the_checks_is_rebuilt(tmp_path):
    path = write(tmp_path, "a.jpg 1\n")
    target = index.index_path(path)
    index.open_index(path)
    raw = target.read_bytes()
    header = json.loads(raw[8 : index_file.HEADER_BYTES].rstrip(b"\0"))
    for key in index_file.CHECKED:
        del header[key]
    head = (index_file.MAGIC + json.dumps(header).encode()).ljust(index_file.HEADER_BYTES, b"\0")
    target.write_bytes(head + raw[index_file.HEADER_BYTES :])
    assert index.open_index(path).built
