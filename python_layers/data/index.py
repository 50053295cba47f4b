"""A list file's index: one memory-mapped file, built once, shared through the page cache.

What it holds (``Index``): the paths as one bytes buffer + offsets; each image's list line;
the labels (and weights, when the file has any) as CSR arrays, labels in the smallest unsigned
type that fits; and per class, the images that list it with a weight > 0 (CSR, for
resampling). Offsets, line numbers and image ids are uint32 below 4 GiB of list file, uint64
above. A 4 KiB header holds the format version, the list file's identity (size, mtime and
ctime in ns, inode, device: what ``git`` checks; any write to the file changes its ctime) and
the SHA-256 of its bytes.

Where: ``$MULTILABEL_INDEX_DIR``, else ``$XDG_CACHE_HOME/caffe-multilabel-softmax/list-index``
(``~/.cache/...`` without it), as ``<list name>.<hash of its real path>.idx``. A list whose
identity differs from the header's (or, within the file system's timestamp step of the build's
start, whose SHA-256 does) is indexed again; so is an index file whose size or array checksums
are wrong (:mod:`.index_file`), with one line saying so. Builds are streamed a block of lines at a
time (memory bounded whatever the list's size), under an exclusive lock (``.lock`` beside the
index: processes that start together wait for the one that builds, then map its result), into
a temporary folder renamed over the index only when complete (an interrupted build leaves
only temporaries, removed by the next build). Each build also removes the indexes of list
files that no longer exist (temporary lists, as ``python_layers.inference`` writes) and dead
builds' temporary folders (their lock free, or older than a day).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import mmap
import os
import sys
from pathlib import Path

import numpy as np

from ..labels import PADDING
from . import index_file, list_file
from .index_file import ENV, FORMAT, HEADER_BYTES, MAGIC, IndexFolderError, identity
from .list_file import ListFileError


def cache_dir() -> Path:
    """The folder that holds the indexes (see the module's docstring)."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "caffe-multilabel-softmax" / "list-index"


def index_path(source: str | Path) -> Path:
    real = os.path.realpath(source)
    key = hashlib.sha256(os.fsencode(real)).hexdigest()[:16]
    return cache_dir() / f"{Path(real).name}.{key}.idx"


class Index:
    """The arrays of one list file's index, as read-only views of the mapped file."""

    def __init__(self, source: str, header: dict, buffer: mmap.mmap):
        self.source, self.header, self._buffer = source, header, buffer
        views = {
            name: np.frombuffer(buffer, np.dtype(dtype), count, offset)
            for name, (dtype, count, offset) in header["arrays"].items()
        }
        self.path_bytes, self.path_offsets = views["paths"], views["path_offsets"]
        self.lines, self.label_offsets = views["lines"], views["label_offsets"]
        self.labels, self.weights = views["labels"], views.get("weights")
        self.class_offsets, self.members = views["class_offsets"], views["members"]
        self.digest: str = header["sha256"]
        self.built = False  # whether this process built it (open_index sets it)

    def __len__(self) -> int:
        return int(self.header["images"])

    def raw_path(self, index: int) -> bytes:
        """Image ``index``'s path as the list's bytes (what an LMDB key holds)."""
        start, end = self.path_offsets[index], self.path_offsets[index + 1]
        return self.path_bytes[start:end].tobytes()

    def path(self, index: int) -> str:
        """Image ``index``'s path as written in the list (bytes the file system gets back)."""
        return os.fsdecode(self.raw_path(index))

    def where(self, index: int) -> str:
        """``file:line`` of image ``index``, for error messages."""
        return f"{self.source}:{int(self.lines[index])}"

    def check(self, classes: int, max_labels: int) -> None:
        """Every label below ``classes``, at most ``max_labels`` a line: else the first
        offending line's ``file:line``."""
        if self.header["max_label"] >= classes:
            position = _first(self.labels, lambda part: part >= classes)
            image = int(np.searchsorted(self.label_offsets, position, side="right")) - 1
            raise ListFileError(
                f"{self.where(image)}: label '{int(self.labels[position])}' is not an integer "
                f"in [0, {classes}) (classes: {classes})"
            )
        if self.header["max_count"] > max_labels:
            counts = _Counts(self.label_offsets)
            image = _first(counts, lambda part: part > max_labels)
            raise ListFileError(
                f"{self.where(image)}: {int(counts[image])} labels, more than "
                f"max_labels = {max_labels}"
            )

    def targets(self, indices: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(B, width) float32 label lists padded with PADDING (-1), and their weights (0 on padding)
        when the list has weights, else None."""
        starts = self.label_offsets[indices].astype(np.int64)
        counts = self.label_offsets[np.asarray(indices) + 1].astype(np.int64) - starts
        taken = np.arange(width) < counts[:, None]
        positions = np.where(taken, starts[:, None] + np.arange(width), 0)
        if not len(self.labels):
            return np.full(taken.shape, PADDING, np.float32), None
        labels = np.where(taken, self.labels[positions].astype(np.float32), np.float32(PADDING))
        if self.weights is None:
            return labels, None
        return labels, np.where(taken, self.weights[positions], 0).astype(np.float32)

    def class_counts(self, classes: int) -> np.ndarray:
        """Images per class (weight > 0), for the ``classes`` classes of the net."""
        counts = np.zeros(classes, np.int64)
        known = np.diff(self.class_offsets.astype(np.int64))[:classes]
        counts[: len(known)] = known
        return counts


class _Counts:
    """Labels per image, computed on demand from the offsets (no array of N)."""

    def __init__(self, offsets: np.ndarray):
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, _ = key.indices(len(self))
            return np.diff(self.offsets[start : stop + 1].astype(np.int64))
        return int(self.offsets[key + 1]) - int(self.offsets[key])


def _first(array, test, step: int = 1 << 22) -> int:
    """The first position where ``test`` holds, reading ``step`` elements at a time."""
    for start in range(0, len(array), step):
        hits = np.flatnonzero(test(array[start : start + step]))
        if hits.size:
            return start + int(hits[0])
    raise AssertionError("the header promised an element that is not there")


def _load(target: Path, source: str) -> tuple[Index | None, str | None]:
    """The index at ``target`` if it exists, is whole and describes ``source`` as it is; else
    None, and what is wrong with the file when it is damaged (not merely stale)."""
    try:
        handle = open(target, "rb")
    except OSError:  # missing; or a folder that cannot be read, named when building there
        return None, None
    with handle:
        head = handle.read(HEADER_BYTES)
        if not head.startswith(MAGIC):
            return None, "no index header"
        try:
            header = json.loads(head[len(MAGIC) :].rstrip(b"\0"))
        except ValueError:
            return None, "its header is not JSON"
        if header.get("format") != FORMAT or header.get("identity") != identity(source):
            return None, None
        if any(key not in header for key in index_file.CHECKED):  # built before the checks
            return None, None
        if index_file.racy(header) and index_file.sha256(source) != header["sha256"]:
            return None, None  # changed within the file system's timestamp step
        size = os.fstat(handle.fileno()).st_size
        buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    problem = index_file.damage(target, header, size, buffer)
    if problem is not None:
        buffer.close()
        return None, problem
    return Index(source, header, buffer), None


def open_index(source: str | Path, progress: bool | None = False) -> Index:
    """The index of list file ``source``, built first if missing, stale or damaged (see the
    module's docstring); ``progress`` shows a progress bar while building. A folder that cannot
    hold it raises :class:`IndexFolderError` (a :class:`ListFileError`) naming it."""
    source = str(source)
    if not Path(source).is_file():
        raise ListFileError(f"{source}: the list file does not exist (or is not a file)")
    target = index_path(source)
    index, _ = _load(target, source)
    if index is not None:
        return index
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = open(f"{target}.lock", "a")
    except OSError as why:
        raise index_file.folder_error(target.parent, why) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process ends
        index, problem = _load(target, source)  # another process may have built it meanwhile
        if index is None:
            if problem is not None:
                print(f"list index {target}: damaged ({problem}); rebuilding it", file=sys.stderr)
            index_file.build(source, target, progress)
            index, _ = _load(target, source)
            if index is not None:
                index.built = True
    if index is None:
        raise ListFileError(f"{source}: the list file changed while it was being indexed")
    return index


__all__ = [
    "ENV",
    "FORMAT",
    "Index",
    "IndexFolderError",
    "ListFileError",
    "cache_dir",
    "identity",
    "index_path",
    "list_file",
    "open_index",
]
