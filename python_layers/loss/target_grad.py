"""The gradient with respect to dense targets laid out with dims after the class axis (the
row kernel computes its own, and the label weights', in its backward pass).

Targets produced by another net (distillation, a teacher) are differentiable: the loss is
linear in the weighted, smoothed targets, and normalisation by their sum is a quotient, so the
chain rule gives the exact gradient. It is computed in float64 (its terms nearly cancel) from
what forward kept: each position's maximum and sum of exp (so ``-log p``), and Z in
``scale``. Index labels are not differentiable (zeros).
"""

from __future__ import annotations

import numpy as np

from .options import Options


def dense_target_grad(
    scores: np.ndarray,
    targets: np.ndarray,
    saved_max: np.ndarray,
    saved_total: np.ndarray,
    scale: float,
    options: Options,
    out: np.ndarray,
) -> None:
    """``scale`` d loss / d raw targets into ``out``, all (outer, C, inner); ``saved_max``
    and ``saved_total`` (outer, inner) from forward; ``scale``: the loss weight / Z.

    Chain rule through weighting, smoothing and (optionally) normalisation by the sum;
    ignored (zero-sum) positions get 0.
    """
    shifted = scores - saved_max[:, None, :]  # float32, as the kernels' s - max
    grad = np.log(saved_total)[:, None, :] - shifted  # -log p, float64
    grad *= scale * (1.0 - options.label_smoothing)  # through t <- (1-eps) t + eps/C
    if options.class_weights is not None:
        grad *= np.asarray(options.class_weights).reshape(1, -1, 1)
    t = targets.astype(np.float64)
    sums = t.sum(axis=1, keepdims=True)
    valid = sums > 0
    if options.normalize_targets:  # through t / sum(t)
        normalized = np.divide(t, sums, out=np.zeros_like(t), where=valid)
        projection = (grad * normalized).sum(axis=1, keepdims=True)
        grad = np.divide(grad - projection, sums, out=np.zeros_like(grad), where=valid)
    else:
        grad *= valid
    np.copyto(out, grad, casting="unsafe")
