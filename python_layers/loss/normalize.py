"""Every normalisation rule, once: the normalizations, the divisor Z, the class weights' sum
and the mass label smoothing adds. The CPU engine computes Z once per forward
(:func:`divisor`) and keeps it for backward; the CUDA kernels take the rule
(:func:`divisor_rule`) and the weights' sum from here, and ``finish``'s ``divisor`` is this
module's :func:`divisor` in C++, held to it on every branch by ``tests/test_coefficients.py``.

Z is either fixed by the layout (``"full"``: all positions, ``"batch_size"``: the dims before
the class axis, ``"none"``: 1), or counted by the pass: the valid positions (``"valid"``), or
for index targets with class weights the valid labels' weights (PyTorch's weighted mean).
Counted or fixed, Z is clamped to at least 1 (Caffe's ``LossParameter``), except the
weighted count, which is used as it is unless it is 0 (then 1).

A new normalization is a key of :data:`FIXED_DIVISORS` (a number the layout gives) or a new count:
this module, ``reference.py``'s own copy and a test (the option's allowed values,
``options.NORMALIZATIONS``, come from here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # options imports NORMALIZATIONS from here
    from .layout import Layout
    from .options import Options

FIXED, VALID, WEIGHTS = 0, 1, 2  # what Z counts (the CUDA kernels read these numbers too)
# The normalizations whose Z the layout fixes, and that number.
FIXED_DIVISORS = {
    "full": lambda layout: layout.positions,
    "batch_size": lambda layout: layout.outer,
    "none": lambda layout: 1,
}
NORMALIZATIONS = ("full", "valid", "batch_size", "none")  # param_str's; "valid" the default


@dataclass(frozen=True)
class DivisorRule:
    counts: int  # FIXED, VALID or WEIGHTS
    fixed: float  # Z when nothing is counted
    clamp: bool  # Z >= 1; else (the weighted count) only 0 -> 1


def divisor_rule(options: Options, layout: Layout, weighs_labels: bool = False) -> DivisorRule:
    """``weighs_labels``: the form counts the valid labels' class weights under "valid"
    (index targets do)."""
    if options.normalization != "valid":
        return DivisorRule(FIXED, float(FIXED_DIVISORS[options.normalization](layout)), True)
    if weighs_labels and options.class_weights is not None:
        return DivisorRule(WEIGHTS, 0.0, False)
    return DivisorRule(VALID, 0.0, True)


def divisor(rule: DivisorRule, valid: float = 0.0, weighted: float = 0.0) -> float:
    """Z from the rule and what the pass counted: the valid positions, and the sum of their
    class-weighted targets (index targets: the valid labels' weights)."""
    z = rule.fixed if rule.counts == FIXED else float(weighted if rule.counts == WEIGHTS else valid)
    return max(1.0, z) if rule.clamp else (z if z > 0 else 1.0)


def weight_sum(options: Options, classes: int) -> float:
    """sum_c w_c (C without class weights)."""
    weights = options.class_weights
    return float(classes) if weights is None else float(sum(weights))
