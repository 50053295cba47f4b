"""What the numba kernels share: a vectorisable exp, a row's maximum and finiteness check,
the probabilities, and the summary of per-row (or per-task) statistics.

``exp`` is a range-reduced polynomial (Cephes' expf, about 1 ulp on [-87, 0]) written out so
that the compiler vectorises it; sums accumulate in float64, and the kernels allow the compiler
to reassociate those sums (``fastmath={"reassoc"}``) so that they vectorise too: results are
deterministic for one build on one machine, not bit-identical across CPUs.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import get_num_threads, njit

from .bad_input import BadScoresError, BadTargetsError

# Idle OpenMP threads spin by default and take the cores from OpenBLAS's threads in the rest
# of the net (measured: the example conv net ran 25% slower): let them sleep instead. Read by
# libgomp when numba first starts its threads, after this import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LOG2E = np.float32(1.44269504088896341)
_LN2_HI = np.float32(0.693359375)
_LN2_LO = np.float32(-2.12194440e-4)
_FLOOR = np.float32(-87.0)  # exp(-87) ~ 1.6e-38: below it, 0 and the floor differ negligibly
BAD_SCORES, BAD_TARGETS = 1.0, 2.0
PARALLEL_ELEMENTS = 1 << 17  # below this, threads cost more than they save (measured, 2 cores)
FAST = {"reassoc"}  # vectorised float64 sums; never nnan/ninf: the checks rely on nan and inf


def raise_if_bad(bad_at: int, code: float) -> None:
    """Raise the internal error a kernel's bad-input code stands for (the engine words it)."""
    if bad_at >= 0:
        raise BadScoresError if code == BAD_SCORES else BadTargetsError


def threads() -> int:
    """How many chunks the parallel kernels split the rows into: numba's thread count."""
    return get_num_threads()


@njit(inline="always")
def max_and_check(s):  # pragma: no cover - numba
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
def exp_shifted(s, m, work, bits):  # pragma: no cover - numba
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
def write_probs(work, total, probs_row):  # pragma: no cover - numba
    inverse = np.float32(1.0 / total)
    for c in range(work.size):
        probs_row[c] = work[c] * inverse


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
