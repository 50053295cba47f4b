"""Thresholds and F1 for multi-label predictions (plain numpy; the ranking metrics are in
:mod:`python_layers.metrics`). A class is predicted when its probability is >= the threshold;
definitions follow scikit-learn's ``precision_recall_curve`` and ``f1_score``.
"""

from __future__ import annotations

import numpy as np

from ..metrics import precision_recall_curve


def best_f1_threshold(scores: np.ndarray, relevant: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) with the highest F1 over the distinct scores; (1.0, 0.0) when nothing
    is relevant (predict nothing). Of equal F1s, the highest threshold."""
    if not relevant.any():
        return 1.0, 0.0
    precision, recall, thresholds = precision_recall_curve(scores, relevant)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def choose_thresholds(scores: np.ndarray, relevant: np.ndarray) -> tuple[float, np.ndarray]:
    """The global threshold (best micro F1: all classes at once) and one per class (best F1 of
    each class), chosen on (N, C) ``scores`` and ``relevant``."""
    global_threshold, _ = best_f1_threshold(scores.ravel(), relevant.ravel())
    per_class = np.array(
        [best_f1_threshold(scores[:, c], relevant[:, c])[0] for c in range(scores.shape[1])]
    )
    return global_threshold, per_class


def f1_scores(scores: np.ndarray, relevant: np.ndarray, thresholds) -> dict:
    """Micro F1, macro F1 (mean over classes, 0 for a class with no positives and no
    predictions, as scikit-learn's ``zero_division=0``) and per-class F1 at ``thresholds``
    (a number, or one per class)."""
    predicted = scores >= np.asarray(thresholds, dtype=scores.dtype)
    true_pos = (predicted & relevant).sum(axis=0).astype(np.float64)
    denominators = predicted.sum(axis=0) + relevant.sum(axis=0)
    per_class = np.divide(
        2 * true_pos, denominators, out=np.zeros_like(true_pos), where=denominators > 0
    )
    total = denominators.sum()
    return {
        "micro": float(2 * true_pos.sum() / total) if total else 0.0,
        "macro": float(per_class.mean()),
        "per_class": per_class,
    }
