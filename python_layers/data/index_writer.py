"""Building a list file's index (:mod:`.index`) in bounded memory.

Pass 1 streams the list a block of lines at a time (:func:`.list_file.blocks`) and appends
each array to its own spill file, counting images per class as it goes. Pass 2 copies the
arrays into the index file through the file (labels narrowed to the smallest type that fits)
and builds the per-class image lists (``members``) in memory, a group of consecutive classes
at a time: when ``members`` fits in :data:`MEMBERS_BYTES`, one group, filled a chunk of images
at a time; otherwise each chunk's (class, image) pairs are appended to one spill file per
group, and each group is then filled from its file and written in one sequential write (an
external bucket sort: sequential I/O whatever the size, never random writes to a file larger
than memory). Peak memory: about 40x the block (4 MiB) for parsing, and a group's lists
(``MEMBERS_BYTES``, more when ``MAX_GROUPS`` groups would not hold them all).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from . import list_file

HEADER_BYTES = 4096  # the same as index.HEADER_BYTES: the arrays start after it
ALIGN = 64
CHUNK = 1 << 20  # elements per read in pass 2
BLOCK_BYTES = 1 << 22  # list text per parsed block in pass 1 (peak memory ~ 40x this)
MEMBERS_BYTES = 1 << 29  # per-class image lists built in memory at once (one class group)
MAX_GROUPS = 256  # spill files open at once in pass 2 at most (groups grow to keep below it)
SPILLS = ("paths", "path_ends", "lines", "label_ends", "labels", "weights")


def pairs(first: int, counts: np.ndarray, labels: np.ndarray, weights: np.ndarray | None):
    """(class, image) of every label with weight > 0, once each (a class listed twice on a
    line counts once), in list order."""
    images = np.repeat(np.arange(first, first + len(counts)), counts)
    keep = np.ones(len(labels), bool) if weights is None else weights > 0
    if int(counts.max(initial=0)) <= 16:  # compare each label with the few before it
        for back in range(1, int(counts.max(initial=0))):
            same = (labels[back:] == labels[:-back]) & (images[back:] == images[:-back])
            keep[back:] &= ~(same & keep[:-back])
    else:  # long lines: sort the kept labels by (image, label), drop the repeats
        kept = np.flatnonzero(keep)
        order = kept[np.lexsort((labels[kept], images[kept]))]
        same = (labels[order[1:]] == labels[order[:-1]]) & (images[order[1:]] == images[order[:-1]])
        keep[order[1:][same]] = False
    return labels[keep].astype(np.int64), images[keep]


def by_class(classes: np.ndarray, largest: int) -> np.ndarray:
    """The stable order of ``classes`` (radix sort when they fit in 16 bits)."""
    small = classes.astype(np.uint16) if largest < 2**16 else classes
    return np.argsort(small, kind="stable")


def _smallest(largest: int) -> np.dtype:
    for dtype in (np.uint8, np.uint16, np.uint32):
        if largest <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    return np.dtype(np.uint64)


class _NoBar:
    def update(self, _: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(source: str, progress: bool | None):
    """tqdm's bar over the list's bytes: always (True), never (False), on a terminal (None)."""
    if progress is False:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        if progress:
            raise
        return _NoBar()
    disable = None if progress is None else False  # None: tqdm shows it on a terminal only
    return tqdm(desc=f"indexing {source}", unit="B", unit_scale=True, disable=disable)


def _spill(work: Path, source: str, wide: np.dtype, progress: bool | None) -> dict:
    """Pass 1: the list into spill files; returns the totals."""
    files = {name: open(work / name, "wb") for name in SPILLS}
    digest = hashlib.sha256()
    n = paths = labels = 0
    weighted, max_label, max_count = False, -1, 0
    per_class = np.zeros(0, np.int64)
    bar = _bar(source, progress)
    try:
        for block, raw in list_file.blocks(source, BLOCK_BYTES):
            digest.update(raw)
            bar.update(len(raw))
            if block.weights is not None and not weighted:  # the first weight: 1 before it
                weighted = True
                for start in range(0, labels, CHUNK):
                    ones = np.ones(min(CHUNK, labels - start), np.float32)
                    files["weights"].write(ones.tobytes())
            files["paths"].write(block.paths)
            files["path_ends"].write((paths + np.cumsum(block.path_lengths)).astype(wide))
            files["lines"].write(block.lines.astype(wide))
            files["label_ends"].write((labels + np.cumsum(block.counts)).astype(wide))
            files["labels"].write(block.labels.astype(np.uint32))
            if weighted:
                weights = block.weights
                weights = np.ones(len(block.labels), np.float32) if weights is None else weights
                files["weights"].write(weights.astype(np.float32))
            classes, _ = pairs(n, block.counts, block.labels, block.weights)
            counts = np.bincount(classes, minlength=len(per_class))
            counts[: len(per_class)] += per_class
            per_class = counts
            n += len(block.lines)
            paths += len(block.paths)
            labels += len(block.labels)
            max_label = max(max_label, int(block.labels.max(initial=-1)))
            max_count = max(max_count, int(block.counts.max(initial=0)))
    finally:
        bar.close()
        for handle in files.values():
            handle.close()
    if n == 0:
        raise list_file.ListFileError(f"{source}: the list file names no image")
    per_class = np.concatenate([per_class, np.zeros(max_label + 1 - len(per_class), np.int64)])
    return dict(
        images=n, path_bytes=paths, label_count=labels, weighted=weighted,
        max_label=max_label, max_count=max_count, per_class=per_class,
        sha256=digest.hexdigest(),
    )  # fmt: skip


def _layout(totals: dict, wide: np.dtype) -> dict:
    """name -> (dtype, count, offset) of every array in the index file."""
    sizes = [
        ("paths", np.dtype(np.uint8), totals["path_bytes"]),
        ("path_offsets", wide, totals["images"] + 1),
        ("lines", wide, totals["images"]),
        ("label_offsets", wide, totals["images"] + 1),
        ("labels", _smallest(max(totals["max_label"], 0)), totals["label_count"]),
        ("class_offsets", wide, len(totals["per_class"]) + 1),
        ("members", wide, int(totals["per_class"].sum())),
    ]
    if totals["weighted"]:
        sizes.append(("weights", np.dtype(np.float32), totals["label_count"]))
    arrays, offset = {}, HEADER_BYTES
    for name, dtype, count in sizes:
        arrays[name] = (dtype.str, int(count), offset)
        offset += -(-int(count) * dtype.itemsize // ALIGN) * ALIGN
    return arrays


def _copy(handle, spill: Path, dtype, out_dtype, offset: int, leading_zero: bool) -> None:
    """A spill file into the index at ``offset`` (converted to ``out_dtype``), by chunks read
    and written through the file (no mapping: the pages stay out of this process's RSS)."""
    handle.seek(offset)
    if leading_zero:
        handle.write(np.zeros(1, out_dtype).tobytes())
    with open(spill, "rb") as source:
        while True:
            part = np.fromfile(source, dtype, CHUNK)
            if not len(part):
                return
            handle.write(part.astype(out_dtype, copy=False).tobytes())


def write_index(source: str, work: Path, file_size: int, progress: bool | None = False) -> dict:
    """Index ``source`` into ``work / "index"`` (header space left blank); returns the header."""
    wide = np.dtype(np.uint32 if file_size < 2**32 else np.uint64)
    totals = _spill(work, source, wide, progress)
    arrays = _layout(totals, wide)
    end = max(offset + count * np.dtype(dtype).itemsize for dtype, count, offset in arrays.values())
    spills = {  # index array: (spill file, its dtype, a leading 0 to write first)
        "paths": ("paths", np.uint8, 0), "path_offsets": ("path_ends", wide, 1),
        "lines": ("lines", wide, 0), "label_offsets": ("label_ends", wide, 1),
        "labels": ("labels", np.uint32, 0), "weights": ("weights", np.float32, 0),
    }  # fmt: skip
    with open(work / "index", "wb") as handle:
        handle.truncate(end)
        for name, (spill, dtype, first) in spills.items():
            if name in arrays:
                out_dtype, _, offset = arrays[name]
                _copy(handle, work / spill, dtype, np.dtype(out_dtype), offset, bool(first))
        dtype, _, offset = arrays["class_offsets"]
        handle.seek(offset)
        class_offsets = np.concatenate([[0], np.cumsum(totals["per_class"])]).astype(dtype)
        handle.write(class_offsets.tobytes())
        dtype, count, offset = arrays["members"]
        if count:
            groups = class_groups(class_offsets, np.dtype(dtype).itemsize)
            _members(work, handle, offset, class_offsets, groups, totals["weighted"], wide)
    return dict(
        images=totals["images"], max_label=totals["max_label"], max_count=totals["max_count"],
        sha256=totals["sha256"], arrays=arrays,
    )  # fmt: skip


def class_groups(class_offsets: np.ndarray, itemsize: int) -> np.ndarray:
    """Bounds of consecutive class groups whose image lists each fit in MEMBERS_BYTES (a class
    larger than that is a group alone): ``[0, ..., C]``."""
    total = int(class_offsets[-1])
    # greedy: two neighbouring groups together exceed the budget, so at most 2 total / budget
    budget = max(MEMBERS_BYTES // itemsize, -(-2 * total // MAX_GROUPS), 1)
    bounds, first = [0], 0
    while first < len(class_offsets) - 1:
        limit = int(class_offsets[first]) + budget
        end = int(np.searchsorted(class_offsets, limit, side="right")) - 1
        first = max(end, first + 1)
        bounds.append(first)
    return np.array(bounds, np.int64)


def _pairs_by_class(work: Path, weighted: bool, wide: np.dtype, classes_total: int):
    """(classes, images) of each chunk of images, sorted by class (images in list order
    within a class), from pass 1's spilled labels."""
    with open(work / "label_ends", "rb") as ends, open(work / "labels", "rb") as labels_file:
        weights_file = open(work / "weights", "rb") if weighted else None
        first, done = 0, 0
        try:
            while len(chunk_ends := np.fromfile(ends, wide, CHUNK).astype(np.int64)):
                counts = np.diff(chunk_ends, prepend=done)
                size = int(chunk_ends[-1]) - done
                labels = np.fromfile(labels_file, np.uint32, size).astype(np.int64)
                weights = (
                    None if weights_file is None else np.fromfile(weights_file, np.float32, size)
                )
                classes, images = pairs(first, counts, labels, weights)
                first, done = first + len(counts), int(chunk_ends[-1])
                order = by_class(classes, classes_total - 1)
                yield classes[order], images[order]
        finally:
            if weights_file is not None:
                weights_file.close()


def _place(members: np.ndarray, cursor: np.ndarray, classes, images, first_class: int) -> None:
    """Images sorted by class into their classes' slices of ``members`` (one group, classes
    from ``first_class``), after what earlier calls placed (``cursor``)."""
    if not len(classes):
        return
    local = classes - first_class
    index = np.arange(len(local))
    start = np.ones(len(local), bool)
    start[1:] = local[1:] != local[:-1]
    within = index - np.maximum.accumulate(np.where(start, index, 0))
    members[cursor[local] + within] = images
    cursor += np.bincount(local, minlength=len(cursor))


def _write_group(handle, offset: int, class_offsets, first: int, end: int, chunks, wide) -> None:
    """Fill the image lists of classes [first, end) from ``chunks`` and write them in place."""
    base = int(class_offsets[first])
    members = np.empty(int(class_offsets[end]) - base, wide)
    cursor = class_offsets[first:end].astype(np.int64) - base
    for classes, images in chunks:
        _place(members, cursor, classes, images, first)
    handle.seek(offset + base * wide.itemsize)
    handle.write(members.tobytes())


def _members(work: Path, handle, offset, class_offsets, groups, weighted: bool, wide) -> None:
    """Pass 2's per-class image lists into the index at ``offset``, a class group at a time."""
    wide = np.dtype(wide)
    chunks = _pairs_by_class(work, weighted, wide, len(class_offsets) - 1)
    if len(groups) == 2:  # one group: filled straight from the chunks
        _write_group(handle, offset, class_offsets, 0, int(groups[1]), chunks, wide)
        return
    pair = np.dtype([("class", np.uint32), ("image", wide)])
    spills = [open(work / f"group-{g}", "wb") for g in range(len(groups) - 1)]
    runs: list[list[int]] = [[] for _ in spills]  # pairs per chunk, each run sorted by class
    try:
        for classes, images in chunks:  # each group's part of the chunk, appended to its file
            cuts = np.searchsorted(classes, groups)
            for g, spill in enumerate(spills):
                part = np.empty(int(cuts[g + 1] - cuts[g]), pair)
                part["class"], part["image"] = (a[cuts[g] : cuts[g + 1]] for a in (classes, images))
                spill.write(part.tobytes())
                runs[g].append(len(part))
    finally:
        for spill in spills:
            spill.close()
    for g, group_runs in enumerate(runs):
        with open(work / f"group-{g}", "rb") as spill:
            parts = (np.fromfile(spill, pair, count) for count in group_runs)
            sorted_runs = ((part["class"].astype(np.int64), part["image"]) for part in parts)
            _write_group(handle, offset, class_offsets, int(groups[g]), int(groups[g + 1]),
                         sorted_runs, wide)  # fmt: skip
        (work / f"group-{g}").unlink()
