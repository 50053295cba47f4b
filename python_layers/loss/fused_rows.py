"""Fused per-row kernels (numba) for the engine's common layout: scores (N, C), class axis last.

Forward reads each row once: a first pass finds its maximum and checks it is finite, and the
row then stays in cache for the passes that follow (for dense targets: their sums and checks,
so that dense targets are read once too), exp, the float64 sums and the loss. What backward
needs is kept per row in ``stats`` (N, N_STATS) float64: the maximum and the sum of exp (so
the log of the normaliser), the targets' scale, offset and mass, and for dense targets the
sums their gradient needs; and ``exps`` (N, C) float32, exp(s - max), as Caffe's
SoftmaxWithLoss keeps its probabilities (one scores-sized buffer: computing the exps again in
backward cost as much as the whole forward). Backward is then one pass per row from the kept
exps and the targets: the gradient written straight into the caller's array (and, when asked,
the gradient with respect to dense targets: distillation, which reads the scores too). It never
reads what the output arrays held before. Rows are spread over threads above a size threshold.

Notation: ``a_c = w_c (scale t_c + offset)`` (dense) or ``w_c offset + sum_j coefficient_j
[c == label_j]`` (label lists, index targets: lists of one, prepared by the engine);
``mass = sum_c a_c``; the row's loss is ``mass log(total) - sum_c a_c (s_c - max)``.
Stats also carry 1 if the row is valid (counted by "valid"), and a bad-input code (1:
non-finite scores, 2: a negative or non-finite dense target); the caller raises on it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .buffers import Buffers
from .normalize import weight_sum
from .numba_parts import (
    BAD_SCORES,
    BAD_TARGETS,
    FAST,
    PARALLEL_ELEMENTS,
    exp_shifted,
    max_and_check,
    raise_if_bad,
    summarise,
    threads,
    write_probs,
)
from .options import Options

LOSS, VALID, CODE, MAX, TOTAL, SCALE, OFFSET, MASS, T_SUM, WEIGHTED, DOT_T = range(11)
N_STATS = 11


@njit(inline="always")
def _dense_sums(st, t, weights, weight_sum, eps, normalize):  # pragma: no cover - numba
    """The targets' sums and checks (t - t catches inf and nan, t < 0 the negatives); scale,
    offset and mass into ``st``. False on a bad target."""
    classes = t.size
    t_sum = weighted = 0.0
    negative = 0
    t_check = np.float32(0.0)
    for c in range(classes):
        t_sum += t[c]
        weighted += weights[c] * t[c]
        t_check += t[c] - t[c]
        negative += t[c] < 0
    if negative or t_check != 0:
        return False
    valid = t_sum > 0
    scale = ((1.0 - eps) / t_sum if normalize else 1.0 - eps) if valid else 0.0
    offset = eps / classes if valid else 0.0
    st[VALID], st[SCALE], st[OFFSET] = (1.0 if valid else 0.0), scale, offset
    st[MASS] = scale * weighted + offset * weight_sum
    st[T_SUM], st[WEIGHTED] = t_sum, weighted
    return True


@njit(inline="always")
def _forward_row(r, args, exps, bits, stats):  # pragma: no cover - numba
    """One row's loss (before 1/Z) and what backward needs; p when asked."""
    (scores, dense, targets, labels, coefficients, offsets, masses, weights, weight_sum, eps,
     normalize, probs, want_probs) = args  # fmt: skip
    s, st = scores[r], stats[r]
    m, check = max_and_check(s)
    if not (math.isfinite(m) and check == 0):
        st[CODE] = BAD_SCORES
        return
    if dense:
        if not _dense_sums(st, targets[r], weights, weight_sum, eps, normalize):
            st[CODE] = BAD_TARGETS
            return
    else:
        st[OFFSET], st[MASS] = offsets[r], masses[r]
    work = exps[r]
    total = exp_shifted(s, m, work, bits)
    dot_w = dot_t = 0.0  # sum_c w_c (s_c - m) and sum_c w_c t_c (s_c - m)
    if dense:
        t = targets[r]
        for c in range(s.size):  # float64 products: the targets' gradient subtracts dot_t
            shifted = np.float64(weights[c]) * (s[c] - m)
            dot_t += t[c] * shifted
            dot_w += shifted
    elif st[OFFSET] != 0:  # label smoothing: a_c includes w_c offset for every class
        for c in range(s.size):
            dot_w += weights[c] * (s[c] - m)
    dot = st[SCALE] * dot_t + st[OFFSET] * dot_w
    if not dense:
        for j in range(labels.shape[1]):
            if coefficients[r, j] != 0:
                dot += coefficients[r, j] * (s[labels[r, j]] - m)
    st[LOSS] = st[MASS] * math.log(total) - dot
    st[MAX], st[TOTAL], st[DOT_T] = m, total, dot_t
    if want_probs:
        write_probs(work, total, probs[r])


@njit(inline="always")
def _target_grad_terms(st, target_scale, eps, normalize):  # pragma: no cover - numba
    """(t_scale, t_shift, log_total): d loss / d raw t_c = t_scale w_c (log_total - (s_c - m))
    - t_shift, through t / sum(t) when normalised; all 0 for an ignored row."""
    log_total = math.log(st[TOTAL])
    if st[VALID] == 0:
        return 0.0, 0.0, log_total
    base = target_scale * (1.0 - eps)  # loss weight / Z, (1 - eps)
    if not normalize:
        return base, 0.0, log_total
    t_sum = st[T_SUM]  # (g_c - sum_i g_i t_i / T) / T
    projection = base * (st[WEIGHTED] * log_total - st[DOT_T]) / t_sum
    return base / t_sum, projection / t_sum, log_total


@njit(inline="always")
def _backward_row(r, args, exps, stats):  # pragma: no cover - numba
    """d loss / d s = grad_scale (mass p - a) (grad_scale includes 1/Z) and, for dense targets,
    d loss / d raw t (:func:`_target_grad_terms`); distillation (both) in one pass."""
    (scores, dense, targets, labels, coefficients, weights, eps, normalize, grad_scale, grad,
     target_scale, target_grad, want_grad, want_target_grad) = args  # fmt: skip
    s, st = scores[r], stats[r]
    m = np.float32(st[MAX])
    work, total = exps[r], st[TOTAL]  # forward's exp(s - m) and their sum
    coefficient = np.float32(grad_scale * st[MASS] / total)
    g_scale, g_offset = np.float32(grad_scale * st[SCALE]), np.float32(grad_scale * st[OFFSET])
    t_scale, t_shift, log_total = _target_grad_terms(st, target_scale, eps, normalize)
    if dense and want_grad and want_target_grad:  # float64 tg: its terms nearly cancel
        g, tg, t = grad[r], target_grad[r], targets[r]
        for c in range(s.size):
            g[c] = coefficient * work[c] - weights[c] * (g_scale * t[c] + g_offset)
            tg[c] = np.float32(t_scale * weights[c] * (log_total - (s[c] - m)) - t_shift)
        return
    if want_grad:
        g = grad[r]
        if dense:
            t = targets[r]
            for c in range(s.size):
                g[c] = coefficient * work[c] - weights[c] * (g_scale * t[c] + g_offset)
        else:
            for c in range(s.size):
                g[c] = coefficient * work[c] - g_offset * weights[c]
            for j in range(labels.shape[1]):  # one at a time: a class listed twice counts twice
                g[labels[r, j]] -= np.float32(grad_scale) * coefficients[r, j]
    if want_target_grad:
        tg = target_grad[r]
        for c in range(s.size):
            tg[c] = np.float32(t_scale * weights[c] * (log_total - (s[c] - m)) - t_shift)


# Each driver runs rows in order (serial) or over numba's threads (parallel): forward in one
# contiguous chunk per row of ``bits`` scratch, backward (no scratch) row by row; the row
# functions are inlined into each.
@njit(cache=True, fastmath=FAST)
def forward_serial(args, exps, bits, stats):  # pragma: no cover - numba
    for r in range(stats.shape[0]):
        _forward_row(r, args, exps, bits[0], stats)


@njit(parallel=True, cache=True, fastmath=FAST)
def forward_parallel(args, exps, bits, stats):  # pragma: no cover - numba
    rows, chunks = stats.shape[0], bits.shape[0]
    step = (rows + chunks - 1) // chunks
    for chunk in prange(chunks):
        for r in range(chunk * step, min(rows, (chunk + 1) * step)):
            _forward_row(r, args, exps, bits[chunk], stats)


@njit(cache=True, fastmath=FAST)
def backward_serial(args, exps, stats):  # pragma: no cover - numba
    for r in range(stats.shape[0]):
        _backward_row(r, args, exps, stats)


@njit(parallel=True, cache=True, fastmath=FAST)
def backward_parallel(args, exps, stats):  # pragma: no cover - numba
    for r in prange(stats.shape[0]):
        _backward_row(r, args, exps, stats)


@njit(cache=True)
def prepare_lists(
    labels, weights, weighted, class_weights, eps, normalize, codes, coefficients, offset, mass
):  # pragma: no cover - numba
    """Label lists (N, K) to what :func:`_forward_row` reads, in one pass (the numpy engine's
    ``_label_list_positions`` computes the same with a few dozen numpy calls).

    ``codes``: the classes (0 for padding); ``coefficients``: ``w_c scale w_j`` (0 for
    padding); ``offset`` and ``mass`` per row. Returns (valid rows, 1 if any label or weight
    is bad else 0); nothing is meaningful after a bad one.
    """
    rows, width = labels.shape
    classes = class_weights.size
    weight_sum = 0.0
    for c in range(classes):
        weight_sum += class_weights[c]
    valid_rows = 0
    for r in range(rows):
        total = 0.0
        for j in range(width):
            x = labels[r, j]
            w = weights[r, j] if weighted else np.float32(1.0)
            if not (x == math.floor(x) and -1 <= x < classes):  # nan fails too
                return 0, 1
            if weighted and not (w >= 0 and math.isfinite(w)):
                return 0, 1
            listed = x >= 0
            codes[r, j] = np.int64(x) if listed else 0
            coefficients[r, j] = w if listed else np.float32(0.0)
            total += coefficients[r, j]
        valid = total > 0
        scale = ((1.0 - eps) / total if normalize else 1.0 - eps) if valid else 0.0
        row_mass = 0.0
        for j in range(width):
            coefficient = np.float32(coefficients[r, j] * scale) * class_weights[codes[r, j]]
            coefficients[r, j] = coefficient
            row_mass += coefficient
        offset[r] = np.float32(eps / classes) if valid else np.float32(0.0)
        mass[r] = row_mass + (eps * weight_sum / classes if valid else 0.0)
        valid_rows += 1 if valid else 0
    return valid_rows, 0


class Rows:
    """(N, C) scores ((N, C, 1) views flattened): one numba pass per row."""

    writes_target_grad = True  # the dense targets' gradient, in the backward pass

    def __init__(self, buffers: Buffers, options: Options, class_weights: np.ndarray):
        self.buffers, self.options, self.weights = buffers, options, class_weights

    def _chunks(self, size: int) -> int:
        return threads() if size >= PARALLEL_ELEMENTS else 1

    def _targets(self, prepared, targets) -> tuple:
        dense = prepared.dense
        return (
            *(dense, targets[:, :, 0] if dense else self.buffers.unused(2)),
            *(prepared.labels[:, :, 0], prepared.coefficients[:, :, 0]),
        )

    def forward(self, scores, targets, prepared, probs) -> tuple[float, float, tuple]:
        """(loss before 1/Z, valid rows, kept); raises on bad input."""
        o, b = self.options, self.buffers
        stats = b("row_stats", (scores.shape[0], N_STATS), np.float64)
        stats.fill(0.0)
        args = (
            scores[:, :, 0],
            *self._targets(prepared, targets),
            *(prepared.offset[:, 0, 0], prepared.mass[:, 0, 0], self.weights),
            *(weight_sum(o, self.weights.size), o.label_smoothing, o.normalize_targets),
            *(b.unused(2) if probs is None else probs[:, :, 0], probs is not None),
        )
        exps = b("row_exps", scores.shape[:2])
        chunks = self._chunks(scores.size)
        bits = b("row_bits", (chunks, scores.shape[1]), np.int32)
        (forward_parallel if chunks > 1 else forward_serial)(args, exps, bits, stats)
        loss, valid, bad_row, code = summarise(stats)
        raise_if_bad(bad_row, code)
        return loss, valid, (stats, exps)

    def backward(self, saved, scores, targets, grad, grad_scale, t_grad, t_scale) -> None:
        o, b, z = self.options, self.buffers, saved.divisor
        args = (
            scores[:, :, 0],
            *self._targets(saved.prepared, targets),
            *(self.weights, o.label_smoothing, o.normalize_targets),
            *(grad_scale / z, b.unused(2) if grad is None else grad[:, :, 0], t_scale / z),
            *(b.unused(2) if t_grad is None else t_grad[:, :, 0], grad is not None),
            t_grad is not None,
        )
        stats, exps = saved.kept
        kernel = backward_parallel if self._chunks(scores.size) > 1 else backward_serial
        kernel(args, exps, stats)
