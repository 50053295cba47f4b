"""Image list files, parsed a block of lines at a time with numpy (no Python loop per line).

    relative/path.jpg 3 17 256          # labels
    relative/path.jpg 3:0.5 17:2        # labels with weights (>= 0)
    relative/path.jpg                   # no labels: an image with no target

``#`` starts a comment; blank lines are skipped; a UTF-8 byte-order mark at the start of the
file is ignored. The path is the line's first token: tokens are separated by spaces and tabs,
so paths cannot contain whitespace (a path with a space is reported as such); a list is written
a line at a time by :func:`line`, which refuses what could not be read back. Paths are bytes
(UTF-8 or not) and are handed to the file system as they are. Every error names ``file:line``,
what was expected and what came.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

BOM = b"\xef\xbb\xbf"
LARGEST_LABEL = 2**31 - 1
_SPACE = np.zeros(256, bool)
_SPACE[list(b" \t\n\r\v\f")] = True
_DIGIT = np.zeros(256, bool)
_DIGIT[list(b"0123456789")] = True


class ListFileError(ValueError):
    """A bad list file or line; the message starts with ``file`` or ``file:line``."""


def line(path: str, labels: Sequence[str] = ()) -> str:
    """One list line, ``path label ...`` and a newline; a path that a list file cannot hold
    (empty, or with whitespace or ``#``: it would read back as another path or a comment) is
    a ValueError saying so (the caller names where the path came from)."""
    if not path or any(ch.isspace() for ch in path) or "#" in path:
        raise ValueError(
            f"image path {path!r} has whitespace or '#', or is empty: list files cannot hold "
            "such a path; rename the file (or link it under a plain name)"
        )
    return " ".join([path, *labels]) + "\n"


@dataclass
class Block:
    """The images of a run of whole lines: ``n`` images, their labels flat (CSR by counts)."""

    paths: bytes  # the paths, concatenated
    path_lengths: np.ndarray  # (n,) int64
    lines: np.ndarray  # (n,) int64, 1-based line numbers in the file
    counts: np.ndarray  # (n,) int64, labels per image
    labels: np.ndarray  # (counts.sum(),) int64
    weights: np.ndarray | None  # (counts.sum(),) float32; None when no label has a weight


def _raw_blocks(source: str | Path, block_bytes: int) -> Iterator[tuple[bytes, int]]:
    """Runs of whole lines (each ending in a newline) and the first one's line number."""
    line, carry = 1, b""
    with open(source, "rb") as handle:
        head = handle.read(len(BOM))
        if head != BOM:
            carry = head
        while True:
            chunk = handle.read(block_bytes)
            text = carry + chunk
            cut = text.rfind(b"\n") + 1 if chunk else len(text)
            if cut == 0 and chunk:  # no line end yet: read on
                carry = text
                continue
            whole, carry = text[:cut], text[cut:]
            if whole:
                yield whole, line
                line += whole.count(b"\n")
            if not chunk:
                return


def blocks(
    source: str | Path, block_bytes: int = 1 << 22, threads: int = 2
) -> Iterator[tuple[Block, bytes]]:
    """The list file's blocks of whole lines, parsed (on ``threads`` threads, numpy releasing
    the GIL; at most ``threads + 1`` blocks in memory), in order, each with its raw bytes."""
    if not Path(source).is_file():
        raise ListFileError(f"{source}: the list file does not exist (or is not a file)")

    def parse(whole: bytes, line: int) -> Block:
        return parse_block(whole if whole.endswith(b"\n") else whole + b"\n", line, source)

    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for whole, line in _raw_blocks(source, block_bytes):
            pending.append((pool.submit(parse, whole, line), whole))
            if len(pending) > threads:
                future, raw = pending.popleft()
                yield future.result(), raw
        while pending:
            future, raw = pending.popleft()
            yield future.result(), raw


def _label(token: str, where: str, first: bool) -> tuple[int, float]:
    """One ``label`` or ``label:weight`` token the vectorised path did not take (slow path)."""
    text, colon, weight_text = token.partition(":")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value.is_integer() and 0 <= value <= LARGEST_LABEL):
        hint = " (at most 2^31 - 1)" if value > LARGEST_LABEL else ""
        if first and math.isnan(value):
            hint = (
                "; if it is part of the image's path: paths cannot contain whitespace (the "
                "path is the line's first token, labels follow it)"
            )
        raise ListFileError(f"{where}: label {text!r} is not an integer >= 0{hint}")
    if not colon:
        return int(value), math.nan
    try:
        weight = float(weight_text)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight >= 0):
        raise ListFileError(
            f"{where}: weight {weight_text!r} of label {int(value)} is not a finite number >= 0"
        )
    return int(value), weight


def _slow_labels(text: bytes, starts, ends, lines, first_of_line, source) -> list:
    """(label, weight) of the given tokens, one by one, raising the first error found."""
    return [
        _label(text[s:e].decode("utf-8", "replace"), f"{source}:{line}", bool(first))
        for s, e, line, first in zip(starts, ends, lines, first_of_line)
    ]


def _integers(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray):
    """The decimal integers written in buf[starts:ends], and where that text is 1 to 9 digits
    (elsewhere the value is meaningless)."""
    lengths = ends - starts
    values = np.zeros(len(starts), np.int64)
    digits = (lengths > 0) & (lengths < 10)
    for j in range(min(9, int(lengths.max(initial=0)))):
        more = j < lengths
        byte = buf[np.minimum(starts + j, len(buf) - 1)]
        digits &= ~more | _DIGIT[byte]
        values = np.where(more, values * 10 + (byte.astype(np.int64) - 48), values)
    return values, digits


def _floats(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The numbers written in buf[starts:ends], parsed by numpy (raises ValueError if any
    is not a number)."""
    lengths = ends - starts
    width = max(1, int(lengths.max(initial=1)))
    columns = np.arange(width)
    taken = buf[np.minimum(starts[:, None] + columns, len(buf) - 1)]
    taken[columns >= lengths[:, None]] = 0
    return np.ascontiguousarray(taken).view(f"S{width}").ravel().astype(np.float64)


def parse_block(text: bytes, first_line: int, source: str | Path) -> Block:
    """Parse whole lines (``text`` ends with a newline); ``first_line`` is the first's number."""
    buf = np.frombuffer(text, np.uint8)
    newlines = np.flatnonzero(buf == 10)
    hashes = np.flatnonzero(buf == 35)
    if hashes.size:  # comments become spaces, up to the end of their line
        marks = np.zeros(buf.size + 1, np.int32)
        np.add.at(marks, hashes, 1)
        np.add.at(marks, newlines[np.searchsorted(newlines, hashes)], -1)
        buf = np.where(np.cumsum(marks[:-1]) > 0, np.uint8(32), buf)
    edges = np.diff((~_SPACE[buf]).view(np.int8), prepend=np.int8(0), append=np.int8(0))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    line_of = np.searchsorted(newlines, starts)
    first = np.ones(len(starts), bool)
    first[1:] = line_of[1:] != line_of[:-1]
    image_of = np.cumsum(first) - 1
    path_starts, path_ends = starts[first], ends[first]
    lines = line_of[first] + first_line
    # labels: the other tokens, "label" or "label:weight"
    starts, ends, owner = starts[~first], ends[~first], image_of[~first]
    first_label = np.ones(len(starts), bool)
    first_label[1:] = owner[1:] != owner[:-1]
    colons = np.flatnonzero(buf == 58)
    has_colon = np.zeros(len(starts), np.int64)
    label_ends = ends.copy()
    if colons.size:
        token = np.searchsorted(starts, colons, side="right") - 1
        inside = (token >= 0) & (colons < ends[np.maximum(token, 0)])
        token, colons = token[inside], colons[inside]
        np.add.at(has_colon, token, 1)
        label_ends[token[::-1]] = colons[::-1]  # the first colon of each token
    labels, simple = _integers(buf, starts, label_ends)
    simple &= has_colon <= 1
    weights = None
    if colons.size:
        weights = np.ones(len(starts), np.float32)
        weighted = np.flatnonzero(has_colon == 1)
        try:
            values = _floats(buf, label_ends[weighted] + 1, ends[weighted])
            good = np.isfinite(values) & (values >= 0)
        except ValueError:  # some weight is not a number: the slow path names it
            values = np.zeros(len(weighted))
            good = np.zeros(len(weighted), bool)
        simple[weighted[~good]] = False
        weights[weighted[good]] = values[good]
    odd = np.flatnonzero(~simple)
    if odd.size:  # "3.0", "1e1", or an error to name
        where = lines[owner[odd]]
        slow = _slow_labels(text, starts[odd], ends[odd], where, first_label[odd], source)
        labels[odd] = [label for label, _ in slow]
        if any(not math.isnan(weight) for _, weight in slow):
            weights = np.ones(len(starts), np.float32) if weights is None else weights
        if weights is not None:
            weights[odd] = [1.0 if math.isnan(weight) else weight for _, weight in slow]
    path_mask = np.zeros(buf.size + 1, np.int8)
    path_mask[path_starts] += 1
    path_mask[path_ends] -= 1
    return Block(
        paths=buf[np.cumsum(path_mask[:-1], dtype=np.int8) > 0].tobytes(),
        path_lengths=path_ends - path_starts,
        lines=lines,
        counts=np.bincount(owner, minlength=len(path_starts)),
        labels=labels,
        weights=weights,
    )
