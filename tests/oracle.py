"""A float64 reference for the loss, written independently of the package (tests only).

Straight from the definition: move the class axis last, one row per position, explicit
log-softmax in float64, targets made dense, then the formula of docs/loss.md.
"""

from __future__ import annotations

import numpy as np


def _rows(array: np.ndarray, axis: int) -> np.ndarray:
    """(..., C at axis, ...) -> (positions, C), positions in C order of the other dims."""
    return np.moveaxis(np.asarray(array, dtype=np.float64), axis, -1).reshape(-1, array.shape[axis])


def _unrows(rows: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    moved = list(shape)
    classes = moved.pop(axis)
    return np.moveaxis(rows.reshape(*moved, classes), -1, axis)


def reference(
    scores,
    targets,
    *,
    axis=1,
    normalization="valid",
    normalize_targets=True,
    ignore_label=None,
    label_smoothing=0.0,
    class_weights=None,
):
    """Return (loss, d loss / d scores, probs) in float64 for loss weight 1."""
    axis = axis % scores.ndim
    s = _rows(scores, axis)
    positions, classes = s.shape
    w = np.ones(classes) if class_weights is None else np.asarray(class_weights, np.float64)
    dense = np.squeeze(targets).shape == np.squeeze(scores).shape and targets.size == scores.size
    if dense:
        t = _rows(targets.reshape(scores.shape), axis)
        valid = t.sum(axis=1) > 0
        if normalize_targets:
            t = np.where(valid[:, None], t / np.where(valid, t.sum(axis=1), 1)[:, None], 0)
        labels = None
    else:
        labels = np.asarray(targets, dtype=np.float64).reshape(positions)
        valid = np.ones(positions, bool) if ignore_label is None else labels != ignore_label
        t = np.zeros((positions, classes))
        t[np.arange(positions)[valid], labels[valid].astype(int)] = 1.0
    t = np.where(valid[:, None], (1 - label_smoothing) * t + label_smoothing / classes, 0.0)
    m = s.max(axis=1, keepdims=True)
    log_p = s - m - np.log(np.exp(s - m).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    per_position = -(w * t * log_p).sum(axis=1)
    outer = int(np.prod(scores.shape[:axis]))
    if normalization == "full":
        z = positions
    elif normalization == "valid":
        if labels is not None and class_weights is not None:
            z = w[labels[valid].astype(int)].sum()
            z = z if z > 0 else 1.0
        else:
            z = valid.sum()
    elif normalization == "batch_size":
        z = outer
    else:
        z = 1
    if not (labels is not None and class_weights is not None and normalization == "valid"):
        z = max(z, 1)
    loss = per_position.sum() / z
    wt = w * t
    grad = (wt.sum(axis=1, keepdims=True) * p - wt) / z
    return loss, _unrows(grad, scores.shape, axis), _unrows(p, scores.shape, axis)


def reference_target_grad(scores, targets, step=1e-6, elements=None, **options):
    """d loss / d dense targets by central differences of :func:`reference`, in float64.

    ``elements``: flat indices to differentiate (default all); the others stay 0.
    """
    targets = np.asarray(targets, dtype=np.float64)
    grad = np.zeros_like(targets)
    for i in range(targets.size) if elements is None else elements:
        plus, minus = targets.copy(), targets.copy()
        plus.flat[i] += step
        minus.flat[i] -= step
        grad.flat[i] = (
            reference(scores, plus, **options)[0] - reference(scores, minus, **options)[0]
        ) / (2 * step)
    return grad
