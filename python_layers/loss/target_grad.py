"""The gradient with respect to the targets: dense targets and label-list weights.

Targets produced by another net (distillation, a teacher) are differentiable: the loss is
linear in the weighted, smoothed targets, and normalisation by their sum is a quotient, so the
chain rule gives the exact gradient. Index labels are not differentiable (zeros).
"""

from __future__ import annotations

import numpy as np

from .layout import Layout, class_view, label_view
from .normalize import divisor, divisor_rule
from .options import DEFAULT_OPTIONS, Options


def _log_softmax(scores3: np.ndarray) -> np.ndarray:
    """-log p = log_sum - (s - max) along axis 1, in float64: ``(outer, C, inner)``."""
    shifted = scores3 - scores3.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=1, keepdims=True, dtype=np.float64))
    return log_sum - shifted


def _through_normalization(grad, targets, sums, valid, options: Options):
    """Chain ``grad`` (d loss / d normalised targets) back through ``t / sum(t)``."""
    if not options.normalize_targets:
        return grad * valid
    normalized = np.divide(targets, sums, out=np.zeros_like(targets), where=valid)
    projection = (grad * normalized).sum(axis=1, keepdims=True)
    return np.divide(grad - projection, sums, out=np.zeros_like(grad), where=valid)


def target_grad(
    scores: np.ndarray, targets: np.ndarray, layout: Layout, options: Options = DEFAULT_OPTIONS
) -> np.ndarray:
    """d loss / d raw dense targets (targets' shape), unit loss weight.

    Chain rule through weighting, smoothing and (optionally) normalisation by the sum;
    ignored (zero-sum) positions get 0.
    """
    scores3 = class_view(np.asarray(scores, dtype=np.float32), layout)
    targets3 = class_view(np.asarray(targets, dtype=np.float64), layout)
    sums = targets3.sum(axis=1, keepdims=True)
    valid = sums > 0
    z = divisor(divisor_rule(options, layout), np.count_nonzero(valid))
    grad = _log_softmax(scores3) / z  # d loss / d (w t_smoothed), float64
    if options.class_weights is not None:
        grad *= np.asarray(options.class_weights).reshape(1, -1, 1)
    grad *= 1.0 - options.label_smoothing  # through t <- (1-eps) t + eps/C
    grad = _through_normalization(grad, targets3, sums, valid, options)
    return grad.astype(np.float32).reshape(targets.shape)


def label_weight_grad(
    scores: np.ndarray,
    labels: np.ndarray,
    label_weights: np.ndarray,
    layout: Layout,
    options: Options = DEFAULT_OPTIONS,
) -> np.ndarray:
    """d loss / d label weights (the labels' shape, (N, K)), unit loss weight.

    The targets are ``t_c = sum_j w_j [label_j == c]``, so ``d loss / d w_j`` is the dense
    targets' gradient at class ``label_j``; only the K listed classes are gathered (no
    (N, C) target array is built). Padding (-1) gets 0.
    """
    rows = layout.outer
    scores2 = class_view(np.asarray(scores, dtype=np.float32), layout)
    codes = label_view(labels, layout)[:, :, 0].astype(np.int64)  # (N, K)
    weights = label_view(np.asarray(label_weights, dtype=np.float64), layout)[:, :, 0]
    listed = codes >= 0
    weights = np.where(listed, weights, 0.0)
    codes = np.maximum(codes, 0)
    sums = weights.sum(axis=1, keepdims=True)
    valid = sums > 0
    z = divisor(divisor_rule(options, layout), np.count_nonzero(valid))
    neg_log_p = _log_softmax(scores2)[:, :, 0]  # (N, C)
    grad = neg_log_p[np.arange(rows)[:, None], codes] / z  # (N, K): at the listed classes
    if options.class_weights is not None:
        grad *= np.asarray(options.class_weights)[codes]
    grad *= 1.0 - options.label_smoothing
    grad = _through_normalization(grad, weights, sums, valid, options) * listed
    return grad.astype(np.float32).reshape(np.shape(label_weights))
