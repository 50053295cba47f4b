"""The loss in float64 numpy, straight from the definition: what the kernels are tested against.

Readable rather than fast (it builds (positions, C) arrays): every target form is first made
dense, ``t_c`` per position (index: one-hot; label lists: ``sum_j w_j [label_j == c]``), then::

    valid      = sum_c t_c > 0 (index targets: label != ignore_label)
    Z          = the normalization's count, clamped to >= 1 (its own code: no package import)
    t         <- t / sum_c t_c (normalize_targets), then (1 - eps) t + eps / C
    loss       = (1/Z) sum_valid sum_c w_c t_c (-log p_c)
    dloss/ds_j = (1/Z) ((sum_c w_c t_c) p_j - w_j t_j)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layout import Layout, class_view, label_view
from .options import DEFAULT_OPTIONS, Options


@dataclass(frozen=True)
class Reference:
    loss: float
    score_grad: np.ndarray  # the scores' shape, float64, loss weight 1
    probs: np.ndarray


def dense_targets(targets, layout: Layout, options: Options, label_weights=None):
    """(positions, C) float64 targets and the valid mask (positions,), any form."""
    outer, classes, inner = layout.outer, layout.classes, layout.inner
    if layout.form.name == "dense":
        dense = np.moveaxis(class_view(np.asarray(targets, np.float64), layout), 1, 2)
        dense = dense.reshape(-1, classes)
        return dense, dense.sum(axis=1) > 0
    labels = np.moveaxis(label_view(np.asarray(targets, np.float64), layout), 1, 2)
    labels = labels.reshape(outer * inner, layout.labels_per_row)
    weights = np.ones_like(labels)
    if label_weights is not None:
        weights = np.asarray(label_weights, np.float64).reshape(labels.shape)
    listed = labels >= 0
    if layout.form.name == "index" and options.ignore_label is not None:
        listed = labels != options.ignore_label
    dense = np.zeros((labels.shape[0], classes))
    rows = np.nonzero(listed)[0]
    np.add.at(dense, (rows, labels[listed].astype(np.int64)), weights[listed])
    valid = listed.any(axis=1) if layout.form.name == "index" else dense.sum(axis=1) > 0
    return dense, valid


def _divisor(options: Options, layout: Layout, weighted, valid) -> float:
    """Z, written here again rather than taken from ``normalize.py`` (the kernels' rule), so
    that a mistake in either shows: see docs/loss.md."""
    fixed = {"full": layout.positions, "batch_size": layout.outer, "none": 1}
    if options.normalization != "valid":
        return max(1.0, float(fixed[options.normalization]))
    if layout.form.name == "index" and options.class_weights is not None:
        counted = float(weighted[valid].sum())  # PyTorch's weighted mean: 0 -> 1 only
        return counted if counted > 0 else 1.0
    return max(1.0, float(valid.sum()))


def reference(
    scores, targets, layout: Layout, options: Options = DEFAULT_OPTIONS, label_weights=None
) -> Reference:
    """Loss, d loss / d scores and p in float64, for loss weight 1."""
    classes = layout.classes
    s = np.moveaxis(class_view(np.asarray(scores, np.float64), layout), 1, 2).reshape(-1, classes)
    t, valid = dense_targets(targets, layout, options, label_weights)
    w = np.ones(classes) if options.class_weights is None else np.asarray(options.class_weights)
    z = _divisor(options, layout, t @ w, valid)
    if options.normalize_targets:
        sums = np.where(valid, t.sum(axis=1), 1.0)[:, None]
        t = np.where(valid[:, None], t / sums, 0.0)
    eps = options.label_smoothing
    t = np.where(valid[:, None], (1 - eps) * t + eps / classes, 0.0)
    m = s.max(axis=1, keepdims=True)
    log_p = s - m - np.log(np.exp(s - m).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    wt = w * t
    loss = float(-(wt * log_p).sum() / z)
    grad = (wt.sum(axis=1, keepdims=True) * p - wt) / z

    def back(rows):
        shaped = rows.reshape(layout.outer, layout.inner, classes)
        return np.moveaxis(shaped, 2, 1).reshape(np.shape(scores))

    return Reference(loss, back(grad), back(p))
