"""The three forms targets take, as objects: each owns fitting the targets' shape to the
scores', its validation and error wording, the preparation its kernels read, and its gradient
to the targets. A :class:`~.layout.Layout` holds its form: engines and the layers ask
``layout.form``; they never compare its name.

The kernels read targets as ``a_c = w_c (scale t_c + offset)`` (dense) or ``a_c = w_c offset
+ sum_j coefficient_j [c == label_j]`` (index targets: lists of one; label lists), with
``mass = sum_c a_c``, all per position in (outer, K or 1, inner) arrays; see :class:`Prepared`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..labels import PADDING, relevance_from_dense, relevance_from_index, relevance_from_labels
from . import normalize
from .bad_input import (
    BadTargetsError,
    TargetError,
    check_index_targets,
    check_label_lists,
    first_bad_dense,
)
from .buffers import Buffers
from .fused_rows import prepare_lists
from .layout import Layout, drop_ones, drop_trailing_ones, positions_shape, split_scores
from .options import Options
from .target_grad import label_weight_grad, target_grad


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


class Form:
    """What every form declares (each is a singleton below, so that layouts compare by it).

    ``takes_label_weights``: a third bottom, label_weights, goes with these targets
    (:mod:`.bottoms` holds the bottoms' rules); :meth:`ignore_label_refusal`: why
    ``ignore_label`` does not apply to them (None: it does).
    """

    name: str
    view_as_classes: bool
    counts_label_weights: bool
    gradient_bottom: int | None
    takes_label_weights = False

    def ignore_label_refusal(self, layout: Layout) -> str | None:
        return None

    def __repr__(self) -> str:
        return f"<{self.name} targets>"


class Dense(Form):
    """The scores' shape, real values >= 0; a position summing to 0 is ignored."""

    name = "dense"
    view_as_classes = True  # viewed as (outer, C, inner), like the scores
    counts_label_weights = False  # Z under "valid": the valid positions
    gradient_bottom = 1  # d loss / d targets goes to bottom[1]

    def fit(self, scores_shape, targets_shape, axis: int) -> int | None:
        """Labels per row (1) when the targets fit: the scores' shape, trailing 1s ignored."""
        return 1 if drop_trailing_ones(scores_shape) == drop_trailing_ones(targets_shape) else None

    def accepted(self, scores_shape, axis: int) -> str:
        return f'dense targets ("targets": "dense") of the scores\' shape {scores_shape}'

    def relevant(self, targets, label_weights, layout: Layout) -> np.ndarray:
        """(N, C) bools: the classes with a target above 0."""
        return relevance_from_dense(targets.reshape(layout.outer, layout.classes))

    def padding(self, options: Options) -> float | None:
        """The label value that marks no label (None: none does)."""
        return None

    def ignore_label_refusal(self, layout: Layout) -> str | None:
        return (
            f"bottom[1] (targets) is dense (shape {layout.outer}x{layout.classes}x"
            f"{layout.inner} as outer x C x inner); a dense row of zeros is ignored instead"
        )

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


class Index(Form):
    """One integer label per position, in [0, C) or ignore_label."""

    name = "index"
    view_as_classes = False
    counts_label_weights = True  # Z under "valid", class weights: the labels' weights
    gradient_bottom = None  # labels are not differentiable: zeros

    def fit(self, scores_shape, targets_shape, axis: int) -> int | None:
        """1 when there is one label per position, all singleton dims ignored."""
        positions = positions_shape(scores_shape, axis)
        return 1 if drop_ones(positions) == drop_ones(targets_shape) else None

    def accepted(self, scores_shape, axis: int) -> str:
        return (
            'index targets ("targets": "index") with one label per position, shape '
            f"{positions_shape(scores_shape, axis)} (singleton dims may be added or dropped)"
        )

    def relevant(self, targets, label_weights, layout: Layout) -> np.ndarray:
        """(N, C) bools: each sample's label."""
        check_index_targets(targets, layout.classes, None)
        return relevance_from_index(targets, layout.classes)

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


class LabelLists(Form):
    """(N, K) class indices padded with -1, optional weights: t_c = sum_j w_j [label_j == c]."""

    name = "labels"
    view_as_classes = False
    counts_label_weights = False
    gradient_bottom = 2  # d loss / d label weights goes to bottom[2]
    takes_label_weights = True

    def fit(self, scores_shape, targets_shape, axis: int) -> int:
        """K, for targets (dims before the class axis..., K) plus trailing 1s and scores
        without dims after the class axis; anything else is an error naming the shape."""
        if int(np.prod(scores_shape[axis + 1 :], dtype=np.int64)) != 1:
            raise TargetError(
                f'label lists ("targets": "labels") need scores without dims after the class '
                f"axis, (N, C) or (N, C, 1, 1); got scores of shape {scores_shape} with class "
                f"axis {axis}; use dense or index targets for dense prediction"
            )
        before, trimmed = scores_shape[:axis], drop_trailing_ones(targets_shape)
        if trimmed == drop_trailing_ones(before):
            return 1
        if len(trimmed) == len(before) + 1 and trimmed[: len(before)] == before:
            return trimmed[-1]
        raise TargetError(
            f"bottom[1] (labels) has shape {targets_shape}; label lists for scores of shape "
            f"{scores_shape} must be {(*before, 'K')}: up to K class indices per row, "
            "padded with -1"
        )

    def relevant(self, targets, label_weights, layout: Layout) -> np.ndarray:
        """(N, C) bools: the listed classes (with a weight above 0, when weighted)."""
        check_label_lists(targets, label_weights, layout.classes)
        shape = (layout.outer, layout.labels_per_row)
        weights = None if label_weights is None else label_weights.reshape(shape)
        return relevance_from_labels(targets.reshape(shape), layout.classes, weights)

    def padding(self, options: Options) -> float | None:
        return PADDING

    def ignore_label_refusal(self, layout: Layout) -> str | None:
        return (
            f"label lists mark missing labels with {PADDING} padding, and a row with none is "
            "ignored"
        )

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


DENSE, INDEX, LABEL_LISTS = Dense(), Index(), LabelLists()
FORMS = {form.name: form for form in (DENSE, INDEX, LABEL_LISTS)}
# param_str's "targets": the forms each choice tries, in order ("auto" tells them by shape)
CHOICES = {"auto": (DENSE, INDEX), **{name: (form,) for name, form in FORMS.items()}}
TARGET_FORMS = tuple(CHOICES)
_AUTO_ACCEPTS = (
    "dense targets of the scores' shape {scores}, or index targets with one label per "
    "position, shape {positions} (singleton dims may be added or dropped); label lists (N, K), "
    'padded with -1, need "targets": "labels" in param_str'
)


def layout_for(
    scores_shape: tuple[int, ...],
    targets_shape: tuple[int, ...],
    axis: int = 1,
    form: str = TARGET_FORMS[0],
) -> Layout:
    """Split the scores around ``axis`` and fit the targets in ``form`` (a key of
    :data:`CHOICES`). ``auto`` tells dense from index targets by shape (dense: the scores'
    shape, trailing singleton dims ignored; index: one value per position, all singleton dims
    ignored); it never guesses label lists, which must be asked for with ``labels``.
    """
    scores_shape, targets_shape = tuple(scores_shape), tuple(targets_shape)
    axis, outer, classes, inner = split_scores(scores_shape, axis)
    candidates = CHOICES[form]
    for candidate in candidates:
        width = candidate.fit(scores_shape, targets_shape, axis)
        if width is not None:
            return Layout(outer, classes, inner, candidate, width)
    if len(candidates) == 1:
        accepted = candidates[0].accepted(scores_shape, axis)
    else:
        positions = positions_shape(scores_shape, axis)
        accepted = _AUTO_ACCEPTS.format(scores=scores_shape, positions=positions)
    raise TargetError(
        f"bottom[1] (targets) has shape {targets_shape}, which does not fit scores of shape "
        f"{scores_shape} (class axis {axis}); accepted: {accepted}"
    )
