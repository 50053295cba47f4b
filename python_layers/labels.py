"""What labels mean, below every other module: the padding of label lists, and which classes
targets of each form mark relevant.

The loss (its target forms), the data layer (its index writes label lists) and the metrics
all read these; keeping them here, importing nothing of the package, lets each of those
import downwards only instead of from one another.
"""

from __future__ import annotations

import numpy as np

PADDING = -1  # a label list's filler: no label


def relevance_from_dense(targets: np.ndarray) -> np.ndarray:
    """Dense targets (or relevance already) -> bools of the same shape: a target above 0."""
    return targets > 0


def relevance_from_labels(
    labels: np.ndarray, classes: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """(N, K) label lists (PADDING-padded; optional weights) -> (N, C) bools, the relevant
    classes. A listed class is relevant unless all its listed weights are 0.
    """
    relevant = np.zeros((labels.shape[0], classes), dtype=bool)
    listed = labels >= 0
    if weights is not None:
        listed &= weights > 0
    rows = np.nonzero(listed)[0]
    relevant[rows, labels[listed].astype(np.int64)] = True
    return relevant


def relevance_from_index(labels: np.ndarray, classes: int) -> np.ndarray:
    """One label per sample, shape (N,) or (N, 1, ...) -> (N, C) bools: the label's class."""
    return relevance_from_labels(labels.reshape(-1, 1), classes)
