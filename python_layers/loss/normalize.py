"""Every normalisation rule, once: the divisor Z, the class weights' sum and the mass label
smoothing adds. The CPU kernels take what these functions give; the CUDA kernels take the rule
(:func:`divisor_rule`) and the weights' sum from here but hold a copy in C++ of the divisor's
clamp and of the per-position counts (Z's share, the smoothing mass), which
``tests/test_device_engine.py`` holds to the CPU engine for every normalization.

Z is either fixed by the layout (``"full"``: all positions, ``"batch_size"``: the dims before
the class axis, ``"none"``: 1), or counted by the pass: the valid positions (``"valid"``), or
for index targets with class weights the valid labels' weights (PyTorch's weighted mean).
Counted or fixed, Z is clamped to at least 1 (Caffe's ``LossParameter``), except the
weighted count, which is used as it is unless it is 0 (then 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from .layout import Layout
from .options import Options

FIXED, VALID, WEIGHTS = 0, 1, 2  # what Z counts (the CUDA kernels read these numbers too)


@dataclass(frozen=True)
class DivisorRule:
    counts: int  # FIXED, VALID or WEIGHTS
    fixed: float  # Z when nothing is counted
    clamp: bool  # Z >= 1; else (the weighted count) only 0 -> 1


def divisor_rule(options: Options, layout: Layout, weighs_labels: bool = False) -> DivisorRule:
    """``weighs_labels``: the form counts the valid labels' class weights under "valid"
    (index targets do)."""
    fixed = {"full": layout.positions, "batch_size": layout.outer, "none": 1}
    if options.normalization != "valid":
        return DivisorRule(FIXED, float(fixed[options.normalization]), True)
    if weighs_labels and options.class_weights is not None:
        return DivisorRule(WEIGHTS, 0.0, False)
    return DivisorRule(VALID, 0.0, True)


def divisor(rule: DivisorRule, counted: float = 0.0) -> float:
    """Z from the rule and what the pass counted (valid positions, or their labels' weights)."""
    z = rule.fixed if rule.counts == FIXED else float(counted)
    return max(1.0, z) if rule.clamp else (z if z > 0 else 1.0)


def weight_sum(options: Options, classes: int) -> float:
    """sum_c w_c (C without class weights)."""
    weights = options.class_weights
    return float(classes) if weights is None else float(sum(weights))


def smoothing_mass(options: Options, classes: int) -> float:
    """What label smoothing adds to sum_c w_c t_c at a valid position: eps sum_c w_c / C."""
    return options.label_smoothing * weight_sum(options, classes) / classes
