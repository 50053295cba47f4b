"""The one coefficient rule and Z, and their device twins in kernels.cu.

python_layers/loss/coefficients.py's ``coefficients`` (numba) gives every form's scale, offset
and mass; kernels.cu's ``target_coefficients`` is its C++ twin, and ``z_divisor`` is
normalize.py's ``divisor``. Both twins are compiled for the host with g++ and held here to the
Python definitions on every branch (ignored or valid, normalised or not, smoothing, class
weights; each normalization and count), so that editing one without the other fails.
"""

from __future__ import annotations

import ctypes
import itertools

import numpy as np
import pytest

from python_layers.loss.coefficients import coefficients
from python_layers.loss.forms import DENSE
from python_layers.loss.layout import Layout
from python_layers.loss.normalize import NORMALIZATIONS, divisor, divisor_rule
from python_layers.loss.options import Options

TOTALS = (0.0, -0.0, float("nan"), 1e-30, 0.5, 1.0, 3.0, 1e6)
WEIGHTED = (0.0, 0.75, 2.5)
EPS = (0.0, 0.1, 0.5)
CLASSES_AND_WEIGHT_SUMS = ((3, 3.0), (7, 2.25), (17000, 17000.0))


def _device_coefficients(checks, *args) -> tuple[float, float, float]:
    out = (ctypes.c_double * 3)()
    checks.check_coefficients(*args, out)
    return tuple(out)


@pytest.mark.parametrize("normalize", [False, True])
def test_device_coefficients_are_the_numba_rule(checks, normalize):
    cases = itertools.product(TOTALS, WEIGHTED, EPS, CLASSES_AND_WEIGHT_SUMS)
    for total, weighted, eps, (classes, weight_sum) in cases:
        args = (total, weighted, eps, int(normalize), classes, weight_sum)
        want = coefficients(total, weighted, eps, normalize, classes, weight_sum)
        got = _device_coefficients(checks, *args)
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0, err_msg=f"{args}")


def test_the_rule():
    """Ignored positions read nothing; otherwise a_c = w_c (scale t_c + offset) sums to mass."""
    assert coefficients(0.0, 0.0, 0.1, True, 4, 4.0) == (0.0, 0.0, 0.0)
    scale, offset, mass = coefficients(2.0, 3.0, 0.2, True, 4, 6.0)
    assert (scale, offset) == pytest.approx((0.4, 0.05))
    assert mass == pytest.approx(0.4 * 3.0 + 0.05 * 6.0)
    assert coefficients(2.0, 3.0, 0.2, False, 4, 6.0)[0] == pytest.approx(0.8)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("class_weights", [None, (0.5, 2.0, 1.0)])
@pytest.mark.parametrize("weighs_labels", [False, True])
def test_device_divisor_is_normalize_divisor(checks, normalization, class_weights, weighs_labels):
    options = Options(normalization=normalization, class_weights=class_weights)
    for layout in (Layout(4, 3, 5, DENSE), Layout(0, 3, 1, DENSE)):
        rule = divisor_rule(options, layout, weighs_labels)
        for counted in (0.0, 0.25, 1.0, 7.5):
            want = divisor(rule, counted, counted)
            got = checks.check_divisor(rule.counts, rule.fixed, int(rule.clamp), counted)
            assert got == want, (rule, counted)
