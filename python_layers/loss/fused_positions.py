"""Fused kernels (numba) for scores with dims after the class axis: (outer, C, inner), e.g.
dense prediction (N, C, H, W), where a position's C scores are ``inner`` floats apart.

A task is one outer index and a block of up to ``BLOCK`` consecutive positions: the block's
C x width scores are read once (each class row is contiguous), and everything runs along the
positions, so the loops vectorise without reductions across lanes: the per-position maximum
and finiteness check, exp (the same polynomial as :mod:`.fused_rows`), the float64 sums, the
loss, the gradient and the probabilities. Per-position target quantities (labels and their
coefficients, or the dense scale, offset and mass) come prepared by the engine.

Task statistics come back in ``stats`` (tasks, 3), laid out as the row kernels' (see
:func:`.fused_rows.summarise`): the task's loss (before 1/Z), unused, and a bad-input code
(1: non-finite scores).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .fused_rows import _FAST, BAD_SCORES, exp_parts

BLOCK = 256  # positions per task: C x 256 floats of scratch stay in L1/L2


@njit(inline="always")
def _task(task, args, work, bits, shift, total, stats):  # pragma: no cover - numba
    (scores, dense, targets, labels, coefficient, scale, offset, mass, weights, grad_scale,
     grad, probs, want_grad, want_probs) = args  # fmt: skip
    classes, inner = scores.shape[1], scores.shape[2]
    blocks = (inner + BLOCK - 1) // BLOCK
    n, i0 = task // blocks, (task % blocks) * BLOCK
    i1 = min(inner, i0 + BLOCK)
    width = i1 - i0
    # 1-D views of the block: loops over them vectorise (2-D indexing in the loops did not).
    s = scores[n]
    shift, total, bits = shift[:width], total[:width], bits[:width]
    m_, o_ = mass[n, 0, i0:i1], offset[n, 0, i0:i1]
    # 1. Per position: the maximum over the classes; a check that is nan if any is not finite.
    check = work[0, :width]  # free until step 2
    shift[:] = s[0, i0:i1]
    check[:] = 0.0
    for c in range(classes):
        row = s[c, i0:i1]
        for k in range(width):
            shift[k] = max(shift[k], row[k])
            check[k] += row[k] - row[k]
    bad = np.float32(0.0)
    for k in range(width):
        bad += check[k]
    if bad != 0:
        stats[task, 2] = BAD_SCORES
        return
    # 2. exp(s - max) into work, and its float64 sum per position.
    total[:] = 0.0
    for c in range(classes):
        row, out = s[c, i0:i1], work[c, :width]
        for k in range(width):
            out[k], bits[k] = exp_parts(row[k] - shift[k])
        exponent = bits.view(np.float32)
        for k in range(width):
            out[k] *= exponent[k]
            total[k] += out[k]
    # 3. The loss: sum_k mass log(total) - sum_c a_c (s_c - max), with
    #    a_c = w_c (scale t_c + offset) (dense) or w_c offset + [c == label] coefficient.
    loss = 0.0
    for k in range(width):
        loss += m_[k] * math.log(total[k])
    if dense:
        sc_ = scale[n, 0, i0:i1]
        for c in range(classes):
            row, t = s[c, i0:i1], targets[n, c, i0:i1]
            for k in range(width):
                loss -= weights[c] * (sc_[k] * t[k] + o_[k]) * (row[k] - shift[k])
    else:
        l_, q_ = labels[n, 0, i0:i1], coefficient[n, 0, i0:i1]
        for k in range(width):
            loss -= q_[k] * (s[l_[k], i0 + k] - shift[k])
        if o_.max() != 0:  # label smoothing
            for c in range(classes):
                row = s[c, i0:i1]
                for k in range(width):
                    loss -= weights[c] * o_[k] * (row[k] - shift[k])
    stats[task, 0] = loss
    # 4. p, and the gradient grad_scale (mass p - a).
    if want_probs:
        for c in range(classes):
            out, w_ = probs[n, c, i0:i1], work[c, :width]
            for k in range(width):
                out[k] = w_[k] * np.float32(1.0 / total[k])
    if want_grad:
        g = np.float32(grad_scale)
        for k in range(width):  # shift now holds grad_scale mass / total
            shift[k] = np.float32(grad_scale * m_[k] / total[k])
        for c in range(classes):
            out, w_ = grad[n, c, i0:i1], work[c, :width]
            gw = g * weights[c]
            if dense:
                sc_, t = scale[n, 0, i0:i1], targets[n, c, i0:i1]
                for k in range(width):
                    out[k] = shift[k] * w_[k] - gw * (sc_[k] * t[k] + o_[k])
            else:
                for k in range(width):
                    out[k] = shift[k] * w_[k] - gw * o_[k]
        if not dense:
            l_, q_ = labels[n, 0, i0:i1], coefficient[n, 0, i0:i1]
            for k in range(width):
                grad[n, l_[k], i0 + k] -= g * q_[k]


@njit(cache=True, fastmath=_FAST)
def positions_serial(args, work, bits, shift, total, stats):  # pragma: no cover - numba
    for task in range(stats.shape[0]):
        _task(task, args, work[0], bits[0], shift[0], total[0], stats)


@njit(parallel=True, cache=True, fastmath=_FAST)
def positions_parallel(args, work, bits, shift, total, stats):  # pragma: no cover - numba
    tasks, chunks = stats.shape[0], work.shape[0]
    step = (tasks + chunks - 1) // chunks
    for chunk in prange(chunks):
        for task in range(chunk * step, min(tasks, (chunk + 1) * step)):
            _task(task, args, work[chunk], bits[chunk], shift[chunk], total[chunk], stats)
