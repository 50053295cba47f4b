"""The three forms targets take, as objects: each owns its validation and error wording, the
preparation its kernels read, and its gradient to the targets. Engines and the layer ask the
form; they never compare its name.

The kernels read targets as ``a_c = w_c (scale t_c + offset)`` (dense) or ``a_c = w_c offset
+ sum_j coefficient_j [c == label_j]`` (index targets: lists of one; label lists), with
``mass = sum_c a_c``, all per position in (outer, K or 1, inner) arrays; see :class:`Prepared`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import normalize
from .buffers import Buffers
from .fused_rows import prepare_lists
from .layout import Layout
from .options import Options
from .target_grad import label_weight_grad, target_grad
from .targets import (
    PADDING,
    BadTargetsError,
    check_index_targets,
    check_label_lists,
    first_bad_dense,
)


class Prepared(NamedTuple):
    """What the kernels read about the targets. ``divisor`` None: the rows kernel counts the
    valid rows itself (dense targets, read there once)."""

    dense: bool
    labels: np.ndarray  # int64 (outer, K, inner), 0 where padded or ignored
    coefficients: np.ndarray  # float32 (outer, K, inner), 0 likewise
    scale: np.ndarray  # float32 (outer, 1, inner), dense only
    offset: np.ndarray  # float32 (outer, 1, inner)
    mass: np.ndarray  # float64 (outer, 1, inner)
    divisor: float | None


def _class_weights(options: Options) -> np.ndarray | None:
    weights = options.class_weights
    return None if weights is None else np.asarray(weights, dtype=np.float32)


class Dense:
    """The scores' shape, real values >= 0; a position summing to 0 is ignored."""

    view_as_classes = True  # viewed as (outer, C, inner), like the scores
    counts_label_weights = False  # Z under "valid": the valid positions
    gradient_bottom = 1  # d loss / d targets goes to bottom[1]

    def padding(self, options: Options) -> float | None:
        """The label value that marks no label (None: none does)."""
        return None

    def error(self, targets, label_weights, classes: int, options: Options) -> Exception:
        return first_bad_dense(targets)

    def prepare(self, buffers: Buffers, targets, weights, layout, options, rows: bool, check):
        """Rows: the kernel reads the targets itself (``check``: validate them here first);
        positions: scale, offset and mass per position, in numpy."""
        if rows and not check:
            unused = buffers.unused(3)
            return Prepared(True, buffers.unused(3, np.int64), unused, unused, unused, unused, None)
        shape = (layout.outer, 1, layout.inner)
        eps, class_weights = options.label_smoothing, _class_weights(options)
        sums = buffers("target_sums", shape, np.float64)
        # float32 pairwise sums (error ~log2(C) ulp; exact for k-hot), kept as float64
        np.copyto(sums, np.sum(targets, axis=1, keepdims=True, out=buffers("sums32", shape)))
        if not (targets.min() >= 0 and np.isfinite(sums).all()):
            raise BadTargetsError
        valid = np.greater(sums, 0, out=buffers("valid", shape, bool))
        scale = buffers("scale", shape)  # (1 - eps) / sum(t), 0 where ignored
        if options.normalize_targets:
            scale.fill(0.0)  # where=valid leaves the ignored positions as they were
            np.divide(1.0 - eps, sums, out=scale, where=valid, casting="unsafe")
        else:
            np.multiply(valid, 1.0 - eps, out=scale, casting="unsafe")
        offset = np.multiply(valid, eps / layout.classes, out=buffers("offset", shape))
        mass = buffers("mass", shape, np.float64)
        if class_weights is None:  # mass = scale * sum_c t_c + offset * C
            np.multiply(sums, scale, out=mass)
        else:  # mass = scale * sum_c w_c t_c + offset * sum_c w_c
            np.einsum("ocs,c->os", targets, class_weights, dtype=np.float64, out=mass[:, 0, :])
            np.multiply(mass, scale, out=mass)
        np.add(mass, normalize.smoothing_mass(options, layout.classes), out=mass, where=valid)
        z = normalize.divisor(normalize.divisor_rule(options, layout), np.count_nonzero(valid))
        unused = buffers.unused(3)
        return Prepared(True, buffers.unused(3, np.int64), unused, scale, offset, mass, z)

    def target_grad(self, scores, targets, label_weights, layout, options):
        return target_grad(scores, targets, layout, options)


class Index:
    """One integer label per position, in [0, C) or ignore_label."""

    view_as_classes = False
    counts_label_weights = True  # Z under "valid", class weights: the labels' weights
    gradient_bottom = None  # labels are not differentiable: zeros

    def padding(self, options: Options) -> float | None:
        return options.ignore_label

    def error(self, targets, label_weights, classes: int, options: Options) -> Exception:
        check_index_targets(targets, classes, options.ignore_label)
        return first_bad_dense(targets)  # pragma: no cover - the check above raises

    def prepare(self, buffers: Buffers, targets, weights, layout, options, rows: bool, check):
        """a_c = w_c ((1 - eps) [c == label] + offset)."""
        shape, ignore = (layout.outer, 1, layout.inner), options.ignore_label
        eps, class_weights = options.label_smoothing, _class_weights(options)
        labels = buffers("labels", shape, np.int64)
        np.copyto(labels, targets, casting="unsafe")  # truncates; checked just below
        valid = buffers("valid", shape, bool)
        if ignore is None:
            valid.fill(True)
        else:
            np.not_equal(targets, ignore, out=valid)
            np.multiply(labels, valid, out=labels)  # ignored positions read label 0
        integral = np.equal(labels, targets, out=buffers("integral", shape, bool))
        np.logical_or(integral, ~valid if ignore is not None else integral, out=integral)
        if not (integral.all() and labels.min() >= 0 and labels.max() < layout.classes):
            raise BadTargetsError
        coefficient = buffers("label_weight", shape)  # (1 - eps) w_label, 0 where ignored
        if class_weights is None:
            np.copyto(coefficient, valid, casting="unsafe")
        else:
            np.take(class_weights, labels, out=coefficient)
            np.multiply(coefficient, valid, out=coefficient)
        rule = normalize.divisor_rule(options, layout, self.counts_label_weights)
        counted = coefficient.sum(dtype=np.float64) if rule.counts == normalize.WEIGHTS else None
        z = normalize.divisor(rule, np.count_nonzero(valid) if counted is None else counted)
        np.multiply(coefficient, np.float32(1.0 - eps), out=coefficient)
        offset = np.multiply(valid, eps / layout.classes, out=buffers("offset", shape))
        mass = buffers("mass", shape, np.float64)
        np.multiply(valid, normalize.smoothing_mass(options, layout.classes), out=mass)
        np.add(mass, coefficient, out=mass)
        return Prepared(False, labels, coefficient, buffers.unused(3), offset, mass, z)

    def target_grad(self, scores, targets, label_weights, layout, options):
        return None


class LabelLists:
    """(N, K) class indices padded with -1, optional weights: t_c = sum_j w_j [label_j == c]."""

    view_as_classes = False
    counts_label_weights = False
    gradient_bottom = 2  # d loss / d label weights goes to bottom[2]

    def padding(self, options: Options) -> float | None:
        return PADDING

    def error(self, targets, label_weights, classes: int, options: Options) -> Exception:
        check_label_lists(targets, label_weights, classes)
        return first_bad_dense(targets)  # pragma: no cover - the check above raises

    def prepare(self, buffers: Buffers, targets, weights, layout, options, rows: bool, check):
        """In one numba pass (label lists come with (N, C) scores only)."""
        lists, shape = (layout.outer, layout.labels_per_row, 1), (layout.outer, 1, 1)
        codes, coefficients = buffers("labels", lists, np.int64), buffers("label_weight", lists)
        offset, mass = buffers("offset", shape), buffers("mass", shape, np.float64)
        class_weights = _class_weights(options)
        valid, bad = prepare_lists(
            targets[:, :, 0],
            buffers.unused(2) if weights is None else weights[:, :, 0],
            weights is not None,
            buffers.ones(layout.classes) if class_weights is None else class_weights,
            *(options.label_smoothing, options.normalize_targets),
            *(codes[:, :, 0], coefficients[:, :, 0], offset[:, 0, 0], mass[:, 0, 0]),
        )
        if bad:
            raise BadTargetsError
        z = normalize.divisor(normalize.divisor_rule(options, layout), valid)
        return Prepared(False, codes, coefficients, buffers.unused(3), offset, mass, z)

    def target_grad(self, scores, targets, label_weights, layout, options):
        weights = np.ones_like(targets) if label_weights is None else label_weights
        return label_weight_grad(scores, targets, weights, layout, options)


FORMS = {"dense": Dense(), "index": Index(), "labels": LabelLists()}


def form_of(layout: Layout):
    """The form object of a layout's targets."""
    return FORMS[layout.target_kind]
