"""The three forms targets take, as objects: each owns fitting the targets' shape to the
scores', its validation and error wording, the preparation its kernels read, and which bottom
gets the gradient to the targets (the kernels compute it). A :class:`~.layout.Layout` holds
its form: engines and the layers ask ``layout.form``; they never compare its name.

The kernels read targets as ``a_c = w_c (scale t_c + offset)`` (dense) or ``a_c = w_c offset
+ sum_j coefficient_j [c == label_j]`` (index targets: lists of one; label lists), with
``mass = sum_c a_c``, all per position in (outer, K or 1, inner) arrays; see :class:`Prepared`.
The rule that gives them is :func:`.coefficients.coefficients`, for every form.
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
from .coefficients import prepare_lists
from .layout import Layout, drop_ones, drop_trailing_ones, positions_shape, split_scores
from .options import Options


class Prepared(NamedTuple):
    """What the kernels read about the targets (label lists and index targets; the kernels
    read dense targets themselves, through :mod:`.coefficients`), and Z's counts."""

    dense: bool
    labels: np.ndarray  # int64 (outer, K, inner), 0 where padded or ignored
    coefficients: np.ndarray  # float32 (outer, K, inner), 0 likewise
    offset: np.ndarray  # float32 (outer, 1, inner)
    mass: np.ndarray  # float64 (outer, 1, inner)
    counts: tuple[float, float]  # (valid positions, their weighted sum); dense: the kernel's


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

    def prepare(self, buffers: Buffers, targets, weights, layout, options) -> Prepared:
        """Nothing to prepare: the kernels read dense targets (and check them) themselves."""
        unused = buffers.unused(3)
        return Prepared(True, buffers.unused(3, np.int64), unused, unused, unused, (0.0, 0.0))


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

    def prepare(self, buffers: Buffers, targets, weights, layout, options) -> Prepared:
        """Lists of one label, padded with ignore_label."""
        return _prepare_lists(buffers, targets, None, layout, options, options.ignore_label)


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

    def prepare(self, buffers: Buffers, targets, weights, layout, options) -> Prepared:
        return _prepare_lists(buffers, targets, weights, layout, options, PADDING)


def _prepare_lists(buffers: Buffers, targets, weights, layout, options, pad) -> Prepared:
    """Label lists (outer, K, inner) with K == 1 or inner == 1, in one numba pass: codes and
    coefficients a label, offset and mass a position (:mod:`.coefficients`)."""
    width = targets.shape[1]
    lists, shape = targets.shape, (layout.outer, 1, layout.inner)
    codes, coefficients = buffers("labels", lists, np.int64), buffers("label_weight", lists)
    offset, mass = buffers("offset", shape), buffers("mass", shape, np.float64)
    class_weights = _class_weights(options)
    valid, counted, bad = prepare_lists(
        targets.reshape(-1, width),
        buffers.unused(2) if weights is None else weights.reshape(-1, width),
        weights is not None,
        buffers.ones(layout.classes) if class_weights is None else class_weights,
        normalize.weight_sum(options, layout.classes),
        *(options.label_smoothing, options.normalize_targets, pad is not None, float(pad or 0)),
        *(codes.reshape(-1, width), coefficients.reshape(-1, width)),
        *(offset.reshape(-1), mass.reshape(-1)),
    )
    if bad:
        raise BadTargetsError
    return Prepared(False, codes, coefficients, offset, mass, (float(valid), counted))


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
