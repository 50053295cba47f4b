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
the gradient with respect to dense targets, distillation, or to label weights, as the CUDA
kernels do; both read the scores too). It never reads what the output arrays held before.
Rows are spread over threads above a size threshold.

Notation: ``a_c = w_c (scale t_c + offset)`` (dense) or ``w_c offset + sum_j coefficient_j
[c == label_j]`` (label lists, index targets: lists of one, prepared by the form); scale,
offset and ``mass = sum_c a_c`` by :func:`.coefficients.coefficients` for every form; the
row's loss is ``mass log(total) - sum_c a_c (s_c - max)``.
Stats also carry 1 if the row is valid (counted by "valid"), and a bad-input code (1:
non-finite scores, 2: a negative or non-finite dense target); the caller raises on it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from .buffers import Buffers
from .coefficients import coefficients
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
    offset and mass (:func:`.coefficients.coefficients`) into ``st``. False on a bad target."""
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
    st[SCALE], st[OFFSET], st[MASS] = coefficients(
        t_sum, weighted, eps, normalize, classes, weight_sum
    )
    st[VALID] = 1.0 if t_sum > 0 else 0.0
    st[T_SUM], st[WEIGHTED] = t_sum, weighted
    return True


@njit(inline="always")
def _bad_dense_row(t):  # pragma: no cover - numba
    """Whether a row holds a negative or non-finite target (:func:`_dense_sums`' check)."""
    negative = 0
    t_check = np.float32(0.0)
    for c in range(t.size):
        t_check += t[c] - t[c]
        negative += t[c] < 0
    return negative != 0 or t_check != 0


# The row kernel writes probabilities row by row, so when it is asked to, dense targets are
# checked first, in a pass of their own: nothing is written before a bad target raises.
@njit(cache=True, fastmath=FAST)
def dense_ok_serial(targets):  # pragma: no cover - numba
    for r in range(targets.shape[0]):
        if _bad_dense_row(targets[r]):
            return False
    return True


@njit(parallel=True, cache=True, fastmath=FAST)
def dense_ok_parallel(targets):  # pragma: no cover - numba
    bad = 0
    for r in prange(targets.shape[0]):
        bad += _bad_dense_row(targets[r])
    return bad == 0


@njit(inline="always")
def _forward_row(r, args, exps, bits, stats):  # pragma: no cover - numba
    """One row's loss (before 1/Z) and what backward needs; p when asked."""
    (scores, dense, targets, labels, label_coefs, offsets, masses, weights, weight_sum, eps,
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
            if label_coefs[r, j] != 0:
                dot += label_coefs[r, j] * (s[labels[r, j]] - m)
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
def _label_weight_grad(r, s, m, log_total, args):  # pragma: no cover - numba
    """d loss / d label weights: the dense targets' gradient (:func:`_target_grad_terms`)
    at the listed classes (as kernels.cu's); 0 for padding and for an ignored row."""
    (lists, labels, weights, eps, normalize, target_scale, label_weights, out) = args
    t_sum = projected = 0.0  # sum_j w_j and sum_j w_j g_j over the listed labels
    for j in range(lists.shape[1]):
        if lists[r, j] >= 0:
            code, w = labels[r, j], np.float64(label_weights[r, j])
            t_sum += w
            projected += w * weights[code] * (log_total - (s[code] - m))
    base = target_scale * (1.0 - eps)  # loss weight / Z, (1 - eps)
    for j in range(lists.shape[1]):
        unit = 0.0
        if t_sum > 0 and lists[r, j] >= 0:
            code = labels[r, j]
            unit = weights[code] * (log_total - (s[code] - m))  # g_j
            if normalize:  # through w / sum(w)
                unit = (unit - projected / t_sum) / t_sum
        out[r, j] = np.float32(base * unit)


@njit(inline="always")
def _backward_row(r, args, exps, stats):  # pragma: no cover - numba
    """d loss / d s = grad_scale (mass p - a) (grad_scale includes 1/Z) and, for dense targets,
    d loss / d raw t (:func:`_target_grad_terms`); distillation (both) in one pass; for label
    lists, d loss / d label weights (:func:`_label_weight_grad`)."""
    (scores, dense, targets, labels, label_coefs, weights, eps, normalize, grad_scale, grad,
     target_scale, target_grad, want_grad, want_target_grad, label_weights, weight_grad,
     want_weight_grad) = args  # fmt: skip
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
                g[labels[r, j]] -= np.float32(grad_scale) * label_coefs[r, j]
    if want_target_grad:
        tg = target_grad[r]
        for c in range(s.size):
            tg[c] = np.float32(t_scale * weights[c] * (log_total - (s[c] - m)) - t_shift)
    if want_weight_grad:
        lw_args = (targets, labels, weights, eps, normalize, target_scale, label_weights)
        _label_weight_grad(r, s, m, log_total, (*lw_args, weight_grad))


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


class Rows:
    """(N, C) scores ((N, C, 1) views flattened): one numba pass per row."""

    def __init__(self, buffers: Buffers, options: Options, class_weights: np.ndarray):
        self.buffers, self.options, self.weights = buffers, options, class_weights

    def _chunks(self, size: int) -> int:
        return threads() if size >= PARALLEL_ELEMENTS else 1

    def _targets(self, prepared, targets) -> tuple:
        """Dense targets, or the label lists (read for the label weights' gradient)."""
        return (
            *(prepared.dense, targets[:, :, 0]),
            *(prepared.labels[:, :, 0], prepared.coefficients[:, :, 0]),
        )

    def forward(self, scores, targets, prepared, probs) -> tuple[float, tuple, tuple]:
        """(loss before 1/Z, Z's counts (valid rows, their weighted sum), kept); raises on
        bad input, before writing ``probs``."""
        o, b = self.options, self.buffers
        stats = b("row_stats", (scores.shape[0], N_STATS), np.float64)
        stats.fill(0.0)
        sums = (self.weights, weight_sum(o, self.weights.size), o.label_smoothing)
        if prepared.dense and probs is not None:  # checked before any row's p is written
            dense_ok = dense_ok_parallel if self._chunks(scores.size) > 1 else dense_ok_serial
            if not dense_ok(targets[:, :, 0]):
                raise_if_bad(0, BAD_TARGETS)
        args = (
            scores[:, :, 0],
            *self._targets(prepared, targets),
            *(prepared.offset[:, 0, 0], prepared.mass[:, 0, 0], *sums, o.normalize_targets),
            *(b.unused(2) if probs is None else probs[:, :, 0], probs is not None),
        )
        exps = b("row_exps", scores.shape[:2])
        chunks = self._chunks(scores.size)
        bits = b("row_bits", (chunks, scores.shape[1]), np.int32)
        (forward_parallel if chunks > 1 else forward_serial)(args, exps, bits, stats)
        loss, valid, bad_row, code = summarise(stats)
        raise_if_bad(bad_row, code)
        counts = (valid, 0.0) if prepared.dense else prepared.counts  # dense: counted here
        return loss, counts, (stats, exps)

    def backward(self, saved, scores, targets, label_weights, grads, grad_scale, t_scale):
        """``grads``: (d/ds, d/d dense targets, d/d label weights) arrays or None each."""
        o, b, z = self.options, self.buffers, saved.divisor
        grad, t_grad, w_grad = grads
        args = (
            scores[:, :, 0],
            *self._targets(saved.prepared, targets),
            *(self.weights, o.label_smoothing, o.normalize_targets),
            *(grad_scale / z, b.unused(2) if grad is None else grad[:, :, 0], t_scale / z),
            *(b.unused(2) if t_grad is None else t_grad[:, :, 0], grad is not None),
            t_grad is not None,
            *(b.unused(2) if label_weights is None else label_weights[:, :, 0],),
            *(b.unused(2) if w_grad is None else w_grad[:, :, 0], w_grad is not None),
        )
        stats, exps = saved.kept
        kernel = backward_parallel if self._chunks(scores.size) > 1 else backward_serial
        kernel(args, exps, stats)
