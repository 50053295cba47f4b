"""Fused per-row kernels (numba) for the engine's common layout: scores (N, C), class axis last.

One pass per row computes the shifted logits, exp, the float64 sums, the loss and the
gradient, with rows spread over threads. ``exp`` is a range-reduced polynomial (Cephes'
expf, about 1 ulp on [-87, 0]) written out so that the compiler vectorises it; sums and dot
products accumulate in float64. Used by :class:`python_layers.loss.engine.SoftmaxCrossEntropy`
when numba is importable; the numpy path computes the same thing.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import get_num_threads, njit, prange

# Idle OpenMP threads spin by default and take the cores from OpenBLAS's threads in the rest
# of the net (measured: the example conv net ran 25% slower): let them sleep instead. Read by
# libgomp when numba first starts its threads, after this import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_FLOOR = np.float32(-87.0)  # exp(-87) ~ 1.6e-38: below it, 0 and the floor differ negligibly


def threads() -> int:
    """How many chunks the parallel kernel splits the rows into: numba's thread count."""
    return get_num_threads()


@njit(inline="always")
def _sum64(values):  # pragma: no cover - numba
    """Sum in float64 with four interleaved partial sums (a fixed order: deterministic)."""
    s0 = s1 = s2 = s3 = 0.0
    n = values.size - values.size % 4
    for c in range(0, n, 4):
        s0 += values[c]
        s1 += values[c + 1]
        s2 += values[c + 2]
        s3 += values[c + 3]
    for c in range(n, values.size):
        s0 += values[c]
    return (s0 + s1) + (s2 + s3)


@njit(inline="always")
def _one_row(
    r,
    scores,
    row_max,
    targets,
    labels,
    scale,
    offset,
    label_weight,
    mass,
    weights,
    grad_scale,
    grad,
    probs,
    dense,
    want_grad,
    want_probs,
    work,
    bits,
):  # pragma: no cover - numba
    """Row r: its loss; writes its gradient and probabilities when wanted.

    Dense: ``a_c = w_c (scale t_c + offset)``; sparse (``labels``, ``label_weight`` of shape
    (N, K)): ``a_c = w_c offset + sum_j [c == labels_j] label_weight_j``. ``grad`` gets
    ``grad_scale * (mass p - a)``; ``probs`` gets p. ``work`` (float32) and ``bits`` (int32),
    C each, are the caller's scratch for this row (nothing is allocated per row).
    """
    classes = scores.shape[1]
    s, m = scores[r], row_max[r]
    for c in range(classes):  # exp(x) = 2^n * poly(x - n ln 2): vectorisable, no calls
        x = max(s[c] - m, _FLOOR)
        n = np.float32(math.floor(x * _LOG2E + np.float32(0.5)))
        z = x - n * _LN2_HI - n * _LN2_LO
        p = np.float32(1.9875691500e-4)
        p = p * z + np.float32(1.3981999507e-3)
        p = p * z + np.float32(8.3334519073e-3)
        p = p * z + np.float32(4.1665795894e-2)
        p = p * z + np.float32(1.6666665459e-1)
        p = p * z + np.float32(5.0000001201e-1)
        work[c] = p * z * z + z + np.float32(1.0)
        bits[c] = (np.int32(n) + np.int32(127)) << np.int32(23)
    exponent = bits.view(np.float32)  # 2^n
    for c in range(classes):
        work[c] *= exponent[c]
    total = _sum64(work)
    dot = 0.0
    if dense or offset[r] != 0:  # a_c = w_c (scale t_c + offset), or w_c offset
        products = bits.view(np.float32)  # reuse: the exponents are applied
        t_scale = scale[r] if dense else np.float32(0.0)
        for c in range(classes):
            t = targets[r, c] if dense else np.float32(0.0)
            products[c] = weights[c] * (t_scale * t + offset[r]) * (s[c] - m)
        dot = _sum64(products)
    if not dense:
        for j in range(labels.shape[1]):
            if label_weight[r, j] != 0:
                dot += label_weight[r, j] * (s[labels[r, j]] - m)
    loss = mass[r] * math.log(total) - dot
    if want_probs:
        inverse = np.float32(1.0 / total)
        for c in range(classes):
            probs[r, c] = work[c] * inverse
    if want_grad:
        coefficient = np.float32(grad_scale * mass[r] / total)
        g = np.float32(grad_scale)
        t_scale = scale[r] if dense else np.float32(0.0)
        for c in range(classes):
            t = targets[r, c] if dense else np.float32(0.0)
            grad[r, c] = coefficient * work[c] - g * weights[c] * (t_scale * t + offset[r])
        if not dense:  # one label at a time: a class listed twice is subtracted twice
            for j in range(labels.shape[1]):
                grad[r, labels[r, j]] -= g * label_weight[r, j]
    return loss


# The argument lists below repeat _one_row's on purpose: numba cannot pass *args to an
# inlined function, and without inlining the kernels ran 25-40% slower (measured).
@njit(cache=True)
def rows_serial(
    scores,
    row_max,
    targets,
    labels,
    scale,
    offset,
    label_weight,
    mass,
    weights,
    grad_scale,
    grad,
    probs,
    dense,
    want_grad,
    want_probs,
    work,
    bits,
    losses,
):  # pragma: no cover - numba
    """Sum over rows of ``mass log(sum exp) - sum_c a_c shifted_c`` (one thread).

    ``work``/``bits``: (chunks, C) scratch, row 0 used; ``losses``: (N,) float64 scratch.
    """
    for r in range(scores.shape[0]):
        losses[r] = _one_row(
            r,
            scores,
            row_max,
            targets,
            labels,
            scale,
            offset,
            label_weight,
            mass,
            weights,
            grad_scale,
            grad,
            probs,
            dense,
            want_grad,
            want_probs,
            work[0],
            bits[0],
        )
    return _sum64(losses)


@njit(parallel=True, cache=True)
def rows_parallel(
    scores,
    row_max,
    targets,
    labels,
    scale,
    offset,
    label_weight,
    mass,
    weights,
    grad_scale,
    grad,
    probs,
    dense,
    want_grad,
    want_probs,
    work,
    bits,
    losses,
):  # pragma: no cover - numba
    """The same, rows split into one contiguous chunk per scratch row, chunks over threads.

    The loss is summed in row order afterwards, so the result does not depend on the split.
    """
    rows, chunks = scores.shape[0], work.shape[0]
    step = (rows + chunks - 1) // chunks
    for t in prange(chunks):
        for r in range(t * step, min(rows, (t + 1) * step)):
            losses[r] = _one_row(
                r,
                scores,
                row_max,
                targets,
                labels,
                scale,
                offset,
                label_weight,
                mass,
                weights,
                grad_scale,
                grad,
                probs,
                dense,
                want_grad,
                want_probs,
                work[t],
                bits[t],
            )
    return _sum64(losses)
