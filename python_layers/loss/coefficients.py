"""The targets' coefficients, one rule (numba): what every kernel reads about a position's
targets, for dense targets and label lists alike (index targets are lists of one).

A position whose targets sum to ``total`` (dense: sum_c t_c; lists: the listed labels'
weights) and whose class-weighted targets sum to ``weighted`` (sum_c w_c t_c) is read as
``a_c = w_c (scale t_c + offset)``, with::

    valid  = total > 0                  (else scale = offset = mass = 0: ignored)
    scale  = (1 - eps) / total           (normalize_targets; else 1 - eps)
    offset = eps / C                     (label smoothing)
    mass   = sum_c a_c = scale weighted + offset sum_c w_c

:func:`coefficients` is that rule, inlined into the row kernel (:mod:`.fused_rows`) and into
the passes below that prepare label lists and dense targets laid out with dims after the
class axis. ``kernels.cu``'s ``target_coefficients`` is its device twin;
``tests/test_coefficients.py`` holds the two to each other on every branch.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(inline="always")
def coefficients(total, weighted, eps, normalize, classes, weight_sum):  # pragma: no cover
    """(scale, offset, mass) of a position (see the module's docstring); zeros if ignored."""
    if not total > 0.0:
        return 0.0, 0.0, 0.0
    scale = (1.0 - eps) / total if normalize else 1.0 - eps
    offset = eps / classes
    return scale, offset, scale * weighted + offset * weight_sum


@njit(cache=True)
def prepare_lists(
    labels, weights, weighted_lists, class_weights, weight_sum, eps, normalize, has_pad, pad,
    codes, coefficients_out, offset, mass,
):  # pragma: no cover - numba  # fmt: skip
    """Label lists (positions, K) to what the kernels read, in one pass: ``codes`` (the
    classes; 0 where padded), ``coefficients_out`` (``w_label scale w_j``; 0 where padded),
    ``offset`` and ``mass`` per position. ``pad``: the label that marks no label (-1 for
    label lists, ignore_label for index targets; ``has_pad`` False: none does).

    Returns (valid positions, the sum of their ``weighted``, 1 if any label or weight is bad
    else 0); nothing is meaningful after a bad one.
    """
    positions, width = labels.shape
    classes = class_weights.size
    if width == 1 and not weighted_lists:  # index targets: one label of weight 1
        return _prepare_single(
            labels, class_weights, weight_sum, eps, normalize, has_pad, pad, codes,
            coefficients_out, offset, mass,
        )  # fmt: skip
    valid, counted = 0, 0.0
    for r in range(positions):
        total = weighted = 0.0
        for j in range(width):
            x = labels[r, j]
            w = weights[r, j] if weighted_lists else np.float32(1.0)
            padded = has_pad and x == pad
            if not (padded or (x == np.floor(x) and 0 <= x < classes)):  # nan fails too
                return 0, 0.0, 1
            if weighted_lists and not (w >= 0 and math.isfinite(w)):
                return 0, 0.0, 1
            code = 0 if padded else np.int64(x)
            w = np.float32(0.0) if padded else w
            codes[r, j], coefficients_out[r, j] = code, w
            total += w
            weighted += w * np.float64(class_weights[code])
        scale, offset[r], mass[r] = coefficients(
            total, weighted, eps, normalize, classes, weight_sum
        )
        for j in range(width):
            code = codes[r, j]
            coefficients_out[r, j] = (
                np.float32(coefficients_out[r, j] * scale) * class_weights[code]
            )
        if total > 0.0:
            valid += 1
            counted += weighted
    return valid, counted, 0


@njit(inline="always")
def _prepare_single(
    labels, class_weights, weight_sum, eps, normalize, has_pad, pad, codes, coefficients_out,
    offset, mass,
):  # pragma: no cover - numba  # fmt: skip
    """:func:`prepare_lists` for lists of one label of weight 1 (index targets), in two short
    loops that compile to tight code: checked first, then filled (one loop doing both, as
    :func:`prepare_lists` does, ran at half numpy's speed here; np.floor, not math.floor,
    whose conversion to an integer made the check three times slower)."""
    classes = class_weights.size
    for r in range(labels.shape[0]):
        x = labels[r, 0]
        padded = has_pad and x == pad
        if not (padded or (x == np.floor(x) and 0 <= x < classes)):  # nan fails too
            return 0, 0.0, 1
    valid, counted = 0, 0.0
    for r in range(labels.shape[0]):
        x = labels[r, 0]
        if has_pad and x == pad:
            codes[r, 0] = 0
            coefficients_out[r, 0] = 0.0
            offset[r] = 0.0
            mass[r] = 0.0
        else:
            code = np.int64(x)
            w = class_weights[code]
            scale, offset[r], mass[r] = coefficients(
                1.0, np.float64(w), eps, normalize, classes, weight_sum
            )
            codes[r, 0] = code
            coefficients_out[r, 0] = np.float32(scale) * w  # as prepare_lists rounds it
            valid += 1
            counted += w
    return valid, counted, 0


@njit(cache=True)
def prepare_dense(
    targets, class_weights, weight_sum, eps, normalize, sums, scale, offset, mass
):  # pragma: no cover - numba
    """Dense targets (outer, C, inner) to scale, offset and mass per position ((outer, inner)
    arrays), in one pass along the positions (``sums``: (2, inner) float64 scratch). Returns
    (valid positions, 1 if any target is negative or not finite else 0)."""
    outer, classes, inner = targets.shape
    total, weighted = sums[0], sums[1]
    valid, negative = 0, 0
    for n in range(outer):
        total[:] = 0.0
        weighted[:] = 0.0
        for c in range(classes):
            t, w = targets[n, c], np.float64(class_weights[c])
            for k in range(inner):
                total[k] += t[k]
                weighted[k] += w * t[k]
                negative += t[k] < 0
        for k in range(inner):
            if negative or not math.isfinite(total[k]):  # nan and inf reach the sums
                return 0, 1
            scale[n, k], offset[n, k], mass[n, k] = coefficients(
                total[k], weighted[k], eps, normalize, classes, weight_sum
            )
            valid += total[k] > 0.0
    return valid, 0
