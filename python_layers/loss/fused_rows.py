"""Fused per-row kernels (numba) for the engine's common layout: scores (N, C), class axis last.

Each row is read from memory once: a first pass finds its maximum and checks it is finite,
and the row then stays in cache for the passes that follow (for dense targets: their sums and
checks, so that dense targets are read once too), exp, the float64 sums, the loss, the
gradient written straight into the caller's array and, when asked, the gradient with respect
to dense targets (distillation). Rows are spread over threads above a size threshold.

``exp`` is a range-reduced polynomial (Cephes' expf, about 1 ulp on [-87, 0]) written out so
that the compiler vectorises it; sums and dot products accumulate in float64, and the kernels
allow the compiler to reassociate those sums (``fastmath={"reassoc"}``) so that they
vectorise too: results are deterministic for one build on one machine, not bit-identical
across CPUs. Used by :class:`python_layers.loss.engine.SoftmaxCrossEntropy` when numba is
importable; the numpy path computes the same thing.

Row statistics come back in ``stats`` (N, 3) float64: the row's loss (before 1/Z), 1 if the
row is valid (counted by "valid"), and a bad-input code (1: non-finite scores, 2: a negative
or non-finite dense target); the caller raises on a bad code.
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
BAD_SCORES, BAD_TARGETS = 1.0, 2.0
_FAST = {"reassoc"}  # vectorised float64 sums; never nnan/ninf: the checks rely on nan and inf


def threads() -> int:
    """How many chunks the parallel kernels split the rows into: numba's thread count."""
    return get_num_threads()


@njit(inline="always")
def _max_and_check(s):  # pragma: no cover - numba
    """(max of s, nan if any value is non-finite else 0): eight partial maxima, vectorised."""
    n = s.size - s.size % 8
    m0 = m1 = m2 = m3 = m4 = m5 = m6 = m7 = s[0]
    for c in range(0, n, 8):
        m0 = max(m0, s[c])
        m1 = max(m1, s[c + 1])
        m2 = max(m2, s[c + 2])
        m3 = max(m3, s[c + 3])
        m4 = max(m4, s[c + 4])
        m5 = max(m5, s[c + 5])
        m6 = max(m6, s[c + 6])
        m7 = max(m7, s[c + 7])
    m = max(max(max(m0, m1), max(m2, m3)), max(max(m4, m5), max(m6, m7)))
    for c in range(n, s.size):
        m = max(m, s[c])
    check = np.float32(0.0)
    for c in range(s.size):  # x - x is 0 for finite x, nan for inf and nan
        check += s[c] - s[c]
    return m, check


@njit(inline="always")
def exp_parts(x):  # pragma: no cover - numba
    """exp(x) for x <= 0 as (poly, bits): exp(x) = poly * 2^n, bits the float32 pattern of 2^n.

    Range reduction x = n ln 2 + z and Cephes' expf polynomial for exp(z): no calls, so loops
    of it vectorise; the caller multiplies by ``bits`` viewed as float32."""
    x = max(x, _FLOOR)
    n = np.float32(math.floor(x * _LOG2E + np.float32(0.5)))
    z = x - n * _LN2_HI - n * _LN2_LO
    p = np.float32(1.9875691500e-4)
    p = p * z + np.float32(1.3981999507e-3)
    p = p * z + np.float32(8.3334519073e-3)
    p = p * z + np.float32(4.1665795894e-2)
    p = p * z + np.float32(1.6666665459e-1)
    p = p * z + np.float32(5.0000001201e-1)
    return p * z * z + z + np.float32(1.0), (np.int32(n) + np.int32(127)) << np.int32(23)


@njit(inline="always")
def _exp_shifted(s, m, work, bits):  # pragma: no cover - numba
    """work = exp(s - m) (float32); returns its sum in float64."""
    for c in range(s.size):
        work[c], bits[c] = exp_parts(s[c] - m)
    exponent = bits.view(np.float32)  # 2^n
    total = 0.0
    for c in range(s.size):
        work[c] *= exponent[c]
        total += work[c]
    return total


@njit(inline="always")
def _write_probs(work, total, probs_row):  # pragma: no cover - numba
    inverse = np.float32(1.0 / total)
    for c in range(work.size):
        probs_row[c] = work[c] * inverse


@njit(inline="always")
def _dense_row(r, args, work, bits, stats):  # pragma: no cover - numba
    """One row with dense targets: ``a_c = w_c (scale t_c + offset)``, scale and offset from
    the row's own target sum (read here, so targets are read once)."""
    (scores, targets, weights, weight_sum, eps, normalize, grad_scale, grad, probs,
     target_scale, target_grad, want_grad, want_probs, want_target_grad) = args  # fmt: skip
    s, t = scores[r], targets[r]
    classes = s.size
    m, check = _max_and_check(s)
    if not (math.isfinite(m) and check == 0):
        stats[r, 2] = BAD_SCORES
        return
    # 1. The targets' sums and checks (t - t catches inf and nan, t < 0 the negatives).
    t_sum = weighted = 0.0
    negative = 0
    t_check = np.float32(0.0)
    for c in range(classes):
        t_sum += t[c]
        weighted += weights[c] * t[c]
        t_check += t[c] - t[c]
        negative += t[c] < 0
    if negative or t_check != 0:
        stats[r, 2] = BAD_TARGETS
        return
    valid = t_sum > 0
    stats[r, 1] = 1.0 if valid else 0.0
    scale = ((1.0 - eps) / t_sum if normalize else 1.0 - eps) if valid else 0.0
    offset = eps / classes if valid else 0.0
    mass = scale * weighted + offset * weight_sum
    # 2. exp, the sums and the loss: sum_c a_c (s_c - m) = scale D_t + offset D_w.
    total = _exp_shifted(s, m, work, bits)
    dot_t = dot_w = 0.0
    for c in range(classes):
        shifted = weights[c] * (s[c] - m)
        dot_t += t[c] * shifted
        dot_w += shifted
    log_total = math.log(total)
    stats[r, 0] = mass * log_total - (scale * dot_t + offset * dot_w)
    if want_probs:
        _write_probs(work, total, probs[r])
    # 3. d loss / d s = grad_scale (mass p - a), written in place.
    if want_grad:
        coefficient = np.float32(grad_scale * mass / total)
        g_scale, g_offset = np.float32(grad_scale * scale), np.float32(grad_scale * offset)
        g = grad[r]
        for c in range(classes):
            g[c] = coefficient * work[c] - weights[c] * (g_scale * t[c] + g_offset)
    # 4. d loss / d raw t_c = (1-eps) w_c (log_total - (s_c - m)) through t / sum(t).
    if want_target_grad:
        tg = target_grad[r]
        if not valid:
            for c in range(classes):
                tg[c] = np.float32(0.0)
            return
        base = target_scale * (1.0 - eps)  # loss weight / Z, (1 - eps)
        if normalize:  # (g_c - sum_i g_i t_i / T) / T
            projection = base * (weighted * log_total - dot_t) / t_sum
            g_scale, g_shift = np.float32(base / t_sum), np.float32(projection / t_sum)
        else:
            g_scale, g_shift = np.float32(base), np.float32(0.0)
        log_total32 = np.float32(log_total)
        for c in range(classes):
            tg[c] = g_scale * weights[c] * (log_total32 - (s[c] - m)) - g_shift


@njit(inline="always")
def _sparse_row(r, args, work, bits, stats):  # pragma: no cover - numba
    """One row with labels (N, K): ``a_c = w_c offset + sum_j [c == labels_j] coefficient_j``,
    offset, coefficients and mass prepared by the caller."""
    (scores, labels, coefficients, offset, mass, weights, grad_scale, grad, probs,
     want_grad, want_probs) = args  # fmt: skip
    s = scores[r]
    m, check = _max_and_check(s)
    if not (math.isfinite(m) and check == 0):
        stats[r, 2] = BAD_SCORES
        return
    total = _exp_shifted(s, m, work, bits)
    dot = 0.0
    if offset[r] != 0:  # label smoothing: a_c includes w_c offset for every class
        for c in range(s.size):
            dot += weights[c] * (s[c] - m)
        dot *= offset[r]
    for j in range(labels.shape[1]):
        if coefficients[r, j] != 0:
            dot += coefficients[r, j] * (s[labels[r, j]] - m)
    stats[r, 0] = mass[r] * math.log(total) - dot
    if want_probs:
        _write_probs(work, total, probs[r])
    if want_grad:
        coefficient = np.float32(grad_scale * mass[r] / total)
        g_offset = np.float32(grad_scale * offset[r])
        g = grad[r]
        for c in range(s.size):
            g[c] = coefficient * work[c] - g_offset * weights[c]
        for j in range(labels.shape[1]):  # one at a time: a class listed twice counts twice
            g[labels[r, j]] -= np.float32(grad_scale) * coefficients[r, j]


# Each driver runs rows in order (serial) or in one contiguous chunk per scratch row, chunks
# over numba's threads (parallel); the row functions are inlined into each.
@njit(cache=True, fastmath=_FAST)
def dense_serial(args, work, bits, stats):  # pragma: no cover - numba
    for r in range(stats.shape[0]):
        _dense_row(r, args, work[0], bits[0], stats)


@njit(parallel=True, cache=True, fastmath=_FAST)
def dense_parallel(args, work, bits, stats):  # pragma: no cover - numba
    rows, chunks = stats.shape[0], work.shape[0]
    step = (rows + chunks - 1) // chunks
    for chunk in prange(chunks):
        for r in range(chunk * step, min(rows, (chunk + 1) * step)):
            _dense_row(r, args, work[chunk], bits[chunk], stats)


@njit(cache=True, fastmath=_FAST)
def sparse_serial(args, work, bits, stats):  # pragma: no cover - numba
    for r in range(stats.shape[0]):
        _sparse_row(r, args, work[0], bits[0], stats)


@njit(parallel=True, cache=True, fastmath=_FAST)
def sparse_parallel(args, work, bits, stats):  # pragma: no cover - numba
    rows, chunks = stats.shape[0], work.shape[0]
    step = (rows + chunks - 1) // chunks
    for chunk in prange(chunks):
        for r in range(chunk * step, min(rows, (chunk + 1) * step)):
            _sparse_row(r, args, work[chunk], bits[chunk], stats)


@njit(cache=True)
def prepare_lists(
    labels, weights, weighted, class_weights, eps, normalize, codes, coefficients, offset, mass
):  # pragma: no cover - numba
    """Label lists (N, K) to what :func:`_sparse_row` reads, in one pass (the numpy engine's
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


@njit(cache=True)
def summarise(stats):  # pragma: no cover - numba
    """(sum of row losses in row order, valid rows, first bad row or -1 and its code)."""
    loss, valid = 0.0, 0.0
    for r in range(stats.shape[0]):
        if stats[r, 2] != 0:
            return 0.0, 0.0, r, stats[r, 2]
        loss += stats[r, 0]
        valid += stats[r, 1]
    return loss, valid, -1, 0.0
