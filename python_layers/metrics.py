"""Multi-label ranking metrics in plain numpy (no Caffe): precision@k, recall@k, average precision.

A class is *relevant* for a sample when its target is > 0 (:mod:`.labels` holds the rule for
each target form), so k-hot and real-valued targets are both accepted. ``average_precision``
follows scikit-learn's definition exactly (steps at each distinct score, ties broken as one
threshold).
"""

from __future__ import annotations

import numpy as np

# relevance_from_labels is re-exported: the examples and inference read it from here
from .labels import relevance_from_dense
from .labels import relevance_from_labels as relevance_from_labels


def top_k_hits(scores: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    """Per sample, how many of the k highest-scoring classes are relevant. (N, C) -> (N,)."""
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]  # (N, k), unordered
    return np.take_along_axis(relevant, top, axis=1).sum(axis=1)


def precision_at_k(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Mean over samples of |top-k ∩ relevant| / k."""
    return float(
        np.mean(top_k_hits(scores, relevance_from_dense(targets), k) / min(k, scores.shape[1]))
    )


def recall_at_k(scores: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Mean over samples with any relevant class of |top-k ∩ relevant| / |relevant|."""
    relevant = relevance_from_dense(targets)
    counts = relevant.sum(axis=1)
    has_any = counts > 0
    if not has_any.any():
        return 0.0
    return float(np.mean(top_k_hits(scores, relevant, k)[has_any] / counts[has_any]))


def precision_recall_curve(scores: np.ndarray, relevant: np.ndarray):
    """(precision, recall, thresholds) of one class at each distinct score, highest threshold
    first: scikit-learn's ``precision_recall_curve`` points, less its final (1, 0) point, in
    reverse order. Recall is 0 everywhere when no sample is relevant."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, hits = scores[order], relevant[order].astype(np.float64)
    last_of_each_score = np.r_[np.flatnonzero(np.diff(sorted_scores)), hits.size - 1]
    true_pos = np.cumsum(hits)[last_of_each_score]
    precision = true_pos / (last_of_each_score + 1)
    recall = true_pos / true_pos[-1] if true_pos[-1] else np.zeros_like(true_pos)
    return precision, recall, sorted_scores[last_of_each_score]


def average_precision(scores: np.ndarray, relevant: np.ndarray) -> float:
    """AP of one class over samples: sum_n (R_n - R_{n-1}) P_n, as sklearn computes it.

    Returns nan when no sample is relevant.
    """
    if not np.any(relevant):
        return float("nan")
    precision, recall, _ = precision_recall_curve(scores, relevant)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def per_class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """AP of each class (C,), nan for classes with no relevant sample."""
    relevant = relevance_from_dense(targets)
    return np.array(
        [average_precision(scores[:, c], relevant[:, c]) for c in range(scores.shape[1])]
    )


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Mean AP over the classes that have at least one relevant sample (0 if none has)."""
    ap = per_class_average_precision(scores, targets)
    return float(np.nanmean(ap)) if np.isfinite(ap).any() else 0.0


LAYER_TOPS = ("precision_at_1", "precision_at_k", "recall_at_k", "map")


def chance_map(targets: np.ndarray) -> float:
    """The mAP that random scores get, in expectation: a class's AP is then its share of
    relevant samples, averaged over the classes mAP counts (those with a relevant sample)."""
    relevant = relevance_from_dense(np.asarray(targets))
    present = relevant.any(axis=0)
    return float(relevant[:, present].mean(axis=0).mean()) if present.any() else 0.0


def layer_metrics(scores: np.ndarray, targets: np.ndarray, k: int) -> dict[str, float]:
    """The metrics layer's four numbers, keyed by its top names (:data:`LAYER_TOPS`).

    The names do not contain k, so k = 1 still gives four entries (two equal precisions).
    """
    return {
        "precision_at_1": precision_at_k(scores, targets, 1),
        "precision_at_k": precision_at_k(scores, targets, k),
        "recall_at_k": recall_at_k(scores, targets, k),
        "map": mean_average_precision(scores, targets),
    }


def summary(scores: np.ndarray, targets: np.ndarray, k: int) -> dict[str, float]:
    """The same numbers for reports, k spelled out: precision_at_1, precision_at_{k}, ...

    With k = 1 the first two names coincide (and so do their values).
    """
    values = layer_metrics(scores, targets, k)
    return {
        "precision_at_1": values["precision_at_1"],
        f"precision_at_{k}": values["precision_at_k"],
        f"recall_at_{k}": values["recall_at_k"],
        "map": values["map"],
    }
