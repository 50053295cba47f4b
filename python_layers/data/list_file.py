"""Image list files: one image per line, its class labels after it.

    relative/path.jpg 3 17 256          # labels
    relative/path.jpg 3:0.5 17:2        # labels with weights (>= 0)
    relative/path.jpg                   # no labels: an image with no target

``#`` starts a comment; blank lines are skipped. The path is the first whitespace-separated
token (paths with spaces are not supported). Every error names ``file:line``, what was
expected and what came, and is raised before anything is trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PADDING = -1


@dataclass(frozen=True)
class ImageList:
    """A parsed list file: image paths, (N, K) label lists padded with -1, and their weights
    ((N, K), 0 on padding) when any line gave weights, else None."""

    source: str
    paths: tuple[str, ...]
    line_numbers: tuple[int, ...]
    labels: np.ndarray  # (N, K) float32
    weights: np.ndarray | None  # (N, K) float32

    def __len__(self) -> int:
        return len(self.paths)

    def where(self, index: int) -> str:
        """``file:line`` of image ``index``, for error messages."""
        return f"{self.source}:{self.line_numbers[index]}"

    def images_per_class(self, classes: int) -> list[np.ndarray]:
        """For each class, the indices of the images that list it (with weight > 0)."""
        rows, slots = np.nonzero(self.labels >= 0)
        if self.weights is not None:
            keep = self.weights[rows, slots] > 0
            rows, slots = rows[keep], slots[keep]
        classes_of = self.labels[rows, slots].astype(np.int64)
        order = np.lexsort((rows, classes_of))
        rows, classes_of = rows[order], classes_of[order]
        bounds = np.searchsorted(classes_of, np.arange(classes + 1))
        return [np.unique(rows[bounds[c] : bounds[c + 1]]) for c in range(classes)]


class ListFileError(ValueError):
    """A bad list file or line; the message starts with ``file:line``."""


def _label(token: str, where: str, classes: int) -> tuple[int, float]:
    text, _, weight_text = token.partition(":")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value.is_integer() and 0 <= value < classes):
        raise ListFileError(
            f"{where}: label {text!r} is not an integer in [0, {classes}) (classes: {classes})"
        )
    if not weight_text and ":" not in token:
        return int(value), math.nan  # no weight given
    try:
        weight = float(weight_text)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight >= 0):
        raise ListFileError(
            f"{where}: weight {weight_text!r} of label {int(value)} is not a finite number >= 0"
        )
    return int(value), weight


def parse(source: str | Path, classes: int, max_labels: int) -> ImageList:
    """Read ``source``; labels must be integers in [0, classes), at most ``max_labels`` a line."""
    path = Path(source)
    if not path.is_file():
        raise ListFileError(f"{source}: the list file does not exist (or is not a file)")
    paths, numbers, rows = [], [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            tokens = line.split("#", 1)[0].split()
            if not tokens:
                continue
            where = f"{source}:{number}"
            if len(tokens) - 1 > max_labels:
                raise ListFileError(
                    f"{where}: {len(tokens) - 1} labels, more than max_labels = {max_labels}"
                )
            paths.append(tokens[0])
            numbers.append(number)
            rows.append([_label(token, where, classes) for token in tokens[1:]])
    if not paths:
        raise ListFileError(f"{source}: the list file names no image")
    labels = np.full((len(rows), max_labels), PADDING, np.float32)
    weights = np.zeros((len(rows), max_labels), np.float32)
    for index, row in enumerate(rows):
        for slot, (label, weight) in enumerate(row):
            labels[index, slot] = label
            weights[index, slot] = 1.0 if math.isnan(weight) else weight
    weighted = any(not math.isnan(weight) for row in rows for _, weight in row)
    return ImageList(
        str(source), tuple(paths), tuple(numbers), labels, weights if weighted else None
    )
