"""The index file on disk (see :mod:`.index`): is it current, is it whole, building it.

Current: the header's list identity matches the list, and, when the list's timestamps are too
close to the build's start for the file system to have told a later write apart (git's "racily
clean" rule; 1-second stamps on ext2/ext3 with 128-byte inodes, HFS+, many NFS and FUSE
mounts), the list's SHA-256 too. A build waits out that window and hashes the list once more,
so its index is not racy afterwards. Whole: the file's size is the header's layout, and each
array's CRC-32 (written at build time) matches, checked once per process.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import mmap
import os
import shutil
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from .index_writer import write_index
from .list_file import BOM, ListFileError

FORMAT = 1  # in the layer's resume fingerprint: the arrays' layout, unchanged by the checks
CHECKED = ("crc32", "started_ns")  # header keys of the checks; an index without them is rebuilt
MAGIC = b"MLINDEX\n"
HEADER_BYTES = 4096
ENV = "MULTILABEL_INDEX_DIR"
COARSE_NS = 2 * 10**9  # whole-second stamps: 1 s (ext2/3, HFS+), 2 s (FAT)
TICK_NS = 20 * 10**6  # Linux stamps files from its timer tick (1-10 ms), whatever the digits say
TEMP_MAX_AGE_S = 86400  # a build's temporary folder older than this is a dead build's
CRC_STEP = 1 << 26
_verified: set[tuple] = set()  # index files whose checksums this process has checked
_stat = os.stat  # the tests fake a coarse file system here


class IndexFolderError(ListFileError):
    """The index folder cannot be created or written (read-only, full, not a folder)."""


def identity(source: str | Path) -> list[int]:
    st = _stat(source)
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def granularity(stamps: list[int]) -> int:
    """The file system's timestamp step, as far as ``stamps`` (ns) show it."""
    if all(stamp % 10**9 == 0 for stamp in stamps):
        return COARSE_NS
    step = 1
    while step < 10**9 and all(stamp % (step * 10) == 0 for stamp in stamps):
        step *= 10
    return max(step, TICK_NS)


def racy(header: dict) -> bool:
    """Whether a write to the list after the build started could have left its identity as
    the header has it (the same stamps, one granularity step)."""
    stamps = header["identity"][1:3]
    return max(stamps) + granularity(stamps) > header["started_ns"]


def sha256(source: str) -> str:
    """The list's SHA-256 as the header has it (a leading BOM left out, as the build reads)."""
    digest = hashlib.sha256()
    with open(source, "rb") as handle:
        head = handle.read(len(BOM))
        digest.update(b"" if head == BOM else head)
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def _crc32(buffer, arrays: dict) -> dict[str, int]:
    view, sums = memoryview(buffer), {}
    for name, (dtype, count, offset) in arrays.items():
        crc, end = 0, offset + count * np.dtype(dtype).itemsize
        for start in range(offset, end, CRC_STEP):
            crc = zlib.crc32(view[start : min(end, start + CRC_STEP)], crc)
        sums[name] = crc
    view.release()
    return sums


def file_end(arrays: dict) -> int:
    """The index file's size that the header's layout needs."""
    return max(offset + count * np.dtype(t).itemsize for t, count, offset in arrays.values())


def damage(path: Path, header: dict, size: int, buffer) -> str | None:
    """What is wrong with the index file ``path`` (mapped as ``buffer``), None if nothing."""
    if size != file_end(header["arrays"]):
        return f"{size} bytes, its header's layout needs {file_end(header['arrays'])}"
    st = os.stat(path)
    key = (str(path), st.st_ino, st.st_mtime_ns, st.st_size)
    if key in _verified:
        return None
    found = _crc32(buffer, header["arrays"])
    bad = [name for name, crc in header["crc32"].items() if found.get(name) != crc]
    if bad:
        return f"the checksum of {', '.join(bad)} does not match"
    _verified.add(key)
    return None


def folder_error(folder: Path, why: OSError) -> IndexFolderError:
    full = why.errno in (errno.ENOSPC, errno.EDQUOT)
    what = "is full" if full else "cannot be written"
    return IndexFolderError(
        f"{folder}: the list index folder {what} ({why.strerror or why}); set {ENV} to a "
        "writable folder with room for the index (it is about 60 bytes a list line)"
    )


def _ours(why: OSError, folder: Path) -> bool:
    """Whether ``why`` is about the index folder (not about reading the list)."""
    if why.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return True
    name = os.fsdecode(why.filename) if why.filename else ""
    return os.path.realpath(name).startswith(os.path.realpath(folder))


def build(source: str, target: Path, progress: bool | None) -> None:
    """Index ``source`` into ``target``, the caller holding its lock."""
    folder = target.parent
    prune(folder)
    for stale in folder.glob(f"{target.name}.tmp*"):  # our lock is held: nobody builds them
        shutil.rmtree(stale, ignore_errors=True)
    try:
        work = Path(tempfile.mkdtemp(prefix=f"{target.name}.tmp", dir=folder))
    except OSError as why:
        raise folder_error(folder, why) from None
    try:
        started = time.time_ns()
        before = identity(source)
        header = write_index(source, work, before[0], progress)
        header.update(format=FORMAT, identity=before, source=os.path.realpath(source))
        header.update(started_ns=_settle(source, header, started))
        with open(work / "index", "r+b") as handle:
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as written:
                header["crc32"] = _crc32(written, header["arrays"])  # pages still cached
            text = MAGIC + json.dumps(header).encode()
            if len(text) > HEADER_BYTES:
                raise AssertionError("the index header outgrew its 4 KiB")
            handle.seek(0)
            handle.write(text)  # last: until now the header was blank (no MAGIC, not loadable)
        if identity(source) != before:
            raise ListFileError(f"{source}: the list file changed while it was being indexed")
        os.replace(work / "index", target)
        st = os.stat(target)
        _verified.add((str(target), st.st_ino, st.st_mtime_ns, st.st_size))
    except OSError as why:
        if _ours(why, folder):
            raise folder_error(folder, why) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _settle(source: str, header: dict, started: int) -> int:
    """The build's start as the header records it: when the list's stamps are racy, after
    waiting until any later write would get other stamps, and hashing the list once more."""
    header["started_ns"] = started
    if not racy(header):
        return started
    stamps = header["identity"][1:3]
    time.sleep(max(0, max(stamps) + granularity(stamps) - time.time_ns() + 1) / 1e9)
    again = time.time_ns()
    if identity(source) != header["identity"] or sha256(source) != header["sha256"]:
        raise ListFileError(f"{source}: the list file changed while it was being indexed")
    return again


def _lock_free(lock: Path) -> bool:
    """Whether no process holds ``lock`` (a missing lock is free)."""
    try:
        descriptor = os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)


def prune(folder: Path) -> None:
    """Remove the indexes (and locks) of list files that no longer exist (temporary lists),
    and dead builds' temporary folders (their builder's lock free, or older than a day)."""
    for path in folder.glob("*.idx"):
        try:
            with open(path, "rb") as handle:
                head = handle.read(HEADER_BYTES)
            listed = json.loads(head[len(MAGIC) :].rstrip(b"\0")).get("source", "")
        except (OSError, ValueError):
            continue
        if listed and not os.path.exists(listed):
            for gone in (path, Path(f"{path}.lock")):
                gone.unlink(missing_ok=True)
    for work in folder.glob("*.idx.tmp*"):
        try:
            old = time.time() - work.stat().st_mtime > TEMP_MAX_AGE_S
        except OSError:
            continue
        lock = folder / f"{work.name[: work.name.rindex('.idx.tmp') + 4]}.lock"
        if old or _lock_free(lock):
            shutil.rmtree(work, ignore_errors=True)
