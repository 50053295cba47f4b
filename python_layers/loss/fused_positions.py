"""Fused kernels (numba) for scores with dims after the class axis: (outer, C, inner), e.g.
dense prediction (N, C, H, W), where a position's C scores are ``inner`` floats apart.

A task is one outer index and a block of up to ``BLOCK`` consecutive positions: the block's
C x width scores are read once (each class row is contiguous), and everything runs along the
positions, so the loops vectorise without reductions across lanes. Forward: the per-position
maximum and finiteness check, exp (the polynomial of :mod:`.numba_parts`), the float64 sums,
the loss and the probabilities; it keeps each position's maximum and sum of exp for
backward, which is one pass from the scores and targets: exp again and the gradient.
Per-position target quantities come prepared: labels and their coefficients by the form,
the dense targets' scale, offset and mass by a pass of :mod:`.coefficients` before the kernel
(which also checks them), kept for backward. The dense targets' gradient is computed from
forward's maxima and sums (:mod:`.target_grad`).

Task statistics come back in ``stats`` (tasks, 3), laid out as the row kernels' (see
:func:`.numba_parts.summarise`): the task's loss (before 1/Z), unused, and a bad-input code
(1: non-finite scores).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .buffers import Buffers
from .coefficients import prepare_dense
from .normalize import weight_sum
from .numba_parts import (
    BAD_SCORES,
    BAD_TARGETS,
    FAST,
    PARALLEL_ELEMENTS,
    exp_parts,
    raise_if_bad,
    summarise,
    threads,
)
from .options import Options
from .target_grad import dense_target_grad

BLOCK = 256  # positions per task: C x 256 floats of scratch stay in L1/L2


@njit(inline="always")
def _block(task, inner):  # pragma: no cover - numba
    """(outer index, first position, past the last) of a task."""
    blocks = (inner + BLOCK - 1) // BLOCK
    n, i0 = task // blocks, (task % blocks) * BLOCK
    return n, i0, min(inner, i0 + BLOCK)


@njit(inline="always")
def _exp_block(s, i0, i1, shift, work, bits, total):  # pragma: no cover - numba
    """work[c, :width] = exp(s[c, i0:i1] - shift); total = its float64 sum over the classes."""
    width = i1 - i0
    total[:] = 0.0
    for c in range(s.shape[0]):
        row, out = s[c, i0:i1], work[c, :width]
        for k in range(width):
            out[k], bits[k] = exp_parts(row[k] - shift[k])
        exponent = bits.view(np.float32)
        for k in range(width):
            out[k] *= exponent[k]
            total[k] += out[k]


@njit(inline="always")
def _forward_task(task, args, work, bits, shift, total, stats):  # pragma: no cover - numba
    (scores, dense, targets, labels, coefficient, scale, offset, mass, weights, probs,
     want_probs, saved_max, saved_total) = args  # fmt: skip
    classes = scores.shape[1]
    n, i0, i1 = _block(task, scores.shape[2])
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
    # 2. exp(s - max) into work, and its float64 sum per position; both kept for backward.
    _exp_block(s, i0, i1, shift, work, bits, total)
    saved_max[n, i0:i1] = shift
    saved_total[n, i0:i1] = total
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
    if want_probs:
        for c in range(classes):
            out, w_ = probs[n, c, i0:i1], work[c, :width]
            for k in range(width):
                out[k] = w_[k] * np.float32(1.0 / total[k])


@njit(inline="always")
def _backward_task(task, args, work, bits, shift, total, stats):  # pragma: no cover - numba
    """grad = grad_scale (mass p - a) (grad_scale includes 1/Z), from forward's max and sum."""
    (scores, dense, targets, labels, coefficient, scale, offset, mass, weights, grad_scale,
     grad, saved_max, saved_total) = args  # fmt: skip
    n, i0, i1 = _block(task, scores.shape[2])
    width = i1 - i0
    s = scores[n]
    shift, total, bits = shift[:width], total[:width], bits[:width]
    m_, o_ = mass[n, 0, i0:i1], offset[n, 0, i0:i1]
    shift[:] = saved_max[n, i0:i1]
    _exp_block(s, i0, i1, shift, work, bits, total)  # as forward's: the same bits
    g = np.float32(grad_scale)
    for k in range(width):  # shift now holds grad_scale mass / total
        shift[k] = np.float32(grad_scale * m_[k] / saved_total[n, i0 + k])
    for c in range(scores.shape[1]):
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


@njit(cache=True, fastmath=FAST)
def forward_serial(args, work, bits, shift, total, stats):  # pragma: no cover - numba
    for task in range(stats.shape[0]):
        _forward_task(task, args, work[0], bits[0], shift[0], total[0], stats)


@njit(parallel=True, cache=True, fastmath=FAST)
def forward_parallel(args, work, bits, shift, total, stats):  # pragma: no cover - numba
    tasks, chunks = stats.shape[0], work.shape[0]
    step = (tasks + chunks - 1) // chunks
    for chunk in prange(chunks):
        for task in range(chunk * step, min(tasks, (chunk + 1) * step)):
            _forward_task(task, args, work[chunk], bits[chunk], shift[chunk], total[chunk], stats)


@njit(cache=True, fastmath=FAST)
def backward_serial(args, work, bits, shift, total, stats):  # pragma: no cover - numba
    for task in range(stats.shape[0]):
        _backward_task(task, args, work[0], bits[0], shift[0], total[0], stats)


@njit(parallel=True, cache=True, fastmath=FAST)
def backward_parallel(args, work, bits, shift, total, stats):  # pragma: no cover - numba
    tasks, chunks = stats.shape[0], work.shape[0]
    step = (tasks + chunks - 1) // chunks
    for chunk in prange(chunks):
        for task in range(chunk * step, min(tasks, (chunk + 1) * step)):
            _backward_task(task, args, work[chunk], bits[chunk], shift[chunk], total[chunk], stats)


class Positions:
    """Dims after the class axis: blocks of positions, one numba pass each."""

    def __init__(self, buffers: Buffers, options: Options, class_weights: np.ndarray):
        self.buffers, self.options, self.weights = buffers, options, class_weights

    def _run(self, kernels, args, scores) -> np.ndarray:
        outer, classes, inner = scores.shape
        width, b = BLOCK, self.buffers
        chunks = threads() if scores.size >= PARALLEL_ELEMENTS else 1
        stats = b("block_stats", (outer * -(-inner // width), 3), np.float64)
        stats.fill(0.0)
        scratch = (
            b("block_work", (chunks, classes, width)),
            b("block_bits", (chunks, width), np.int32),
            b("block_shift", (chunks, width)),
            b("block_total", (chunks, width), np.float64),
        )
        (kernels[1] if chunks > 1 else kernels[0])(args, *scratch, stats)
        return stats

    def _dense(self, targets) -> tuple[tuple, float]:
        """Dense targets' scale, offset and mass per position (:mod:`.coefficients`), and the
        valid positions; raises on a bad target (before the kernel writes anything)."""
        o, b = self.options, self.buffers
        outer, _, inner = targets.shape
        shape = (outer, 1, inner)
        arrays = (b("dense_scale", shape), b("dense_offset", shape))
        arrays += (b("dense_mass", shape, np.float64),)
        sums = b("target_sums", (2, inner), np.float64)
        valid, bad = prepare_dense(
            targets, self.weights, weight_sum(o, self.weights.size), o.label_smoothing,
            o.normalize_targets, sums, *(array[:, 0, :] for array in arrays),
        )  # fmt: skip
        raise_if_bad(0 if bad else -1, BAD_TARGETS)
        return arrays, float(valid)

    def _targets(self, prepared, targets, dense_arrays) -> tuple:
        dense, b = prepared.dense, self.buffers
        sparse = (b.unused(3), prepared.offset, prepared.mass)
        scale, offset, mass = dense_arrays if dense else sparse
        return (
            *(dense, targets if dense else b.unused(3), prepared.labels),
            *(prepared.coefficients, scale, offset, mass),
        )

    def forward(self, scores, targets, prepared, probs) -> tuple[float, tuple, tuple]:
        """(loss before 1/Z, Z's counts (valid positions, their weighted sum), kept)."""
        b = self.buffers
        dense_arrays, counts = (), prepared.counts
        if prepared.dense:
            dense_arrays, valid = self._dense(targets)
            counts = (valid, 0.0)
        kept = (
            b("saved_max", (scores.shape[0], scores.shape[2])),
            b("saved_total", (scores.shape[0], scores.shape[2]), np.float64),
            dense_arrays,
        )
        args = (
            *(scores, *self._targets(prepared, targets, dense_arrays), self.weights),
            *(b.unused(3) if probs is None else probs, probs is not None, *kept[:2]),
        )
        kernels = (forward_serial, forward_parallel)
        loss, _, bad_task, code = summarise(self._run(kernels, args, scores))
        raise_if_bad(bad_task, code)
        return loss, counts, kept

    def backward(self, saved, scores, targets, label_weights, grads, grad_scale, t_scale):
        """``grads``: (d/ds, d/d dense targets, unused: no label lists here) or None each; the
        dense targets' gradient from forward's maxima and sums (:mod:`.target_grad`)."""
        grad, t_grad, _ = grads
        saved_max, saved_total, dense_arrays = saved.kept
        if grad is not None:
            args = (
                *(scores, *self._targets(saved.prepared, targets, dense_arrays), self.weights),
                *(grad_scale / saved.divisor, grad, saved_max, saved_total),
            )
            kernels = (backward_serial, backward_parallel)
            self._run(kernels, args, scores)
        if t_grad is not None:
            scale = t_scale / saved.divisor
            dense_target_grad(scores, targets, saved_max, saved_total, scale, self.options, t_grad)
