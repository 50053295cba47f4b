"""Softmax cross-entropy with real-valued, multi-label targets: the math, in plain numpy.

No Caffe here: the functions take and return numpy arrays, so they can be used and tested
anywhere. The Caffe layer in :mod:`python_layers.softmax_loss` is a thin adapter around them.

Notation (see the README): scores ``s`` with a class axis of size ``C``; the dims before it
multiply to ``outer`` and those after it to ``inner``, so every array is handled as a view of
shape ``(outer, C, inner)`` and a *position* is one ``(outer, inner)`` pair. With
``p = softmax(s)`` over the class axis, targets ``t >= 0`` and class weights ``w``::

    loss      = (1/Z) * sum_positions sum_c  w_c t_c (-log p_c)
    dloss/ds_j = (1/Z) * ((sum_c w_c t_c) p_j - w_j t_j)

``log p`` is ``s - max - log(sum exp(s - max))``, with the sum accumulated in float64; it is
never ``log(softmax)`` and nothing is clamped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

NORMALIZATIONS = ("full", "valid", "batch_size", "none")
TargetKind = Literal["dense", "index"]


class TargetError(ValueError):
    """Targets with a bad shape or bad values (names the blob, the position and the value)."""


# --- Shapes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How the scores split around the class axis, and what kind the targets are."""

    outer: int  # product of the dims before the class axis
    classes: int  # C
    inner: int  # product of the dims after the class axis
    target_kind: TargetKind

    @property
    def positions(self) -> int:
        return self.outer * self.inner


def _drop_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _drop_trailing_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(shape)
    while shape and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def class_axis(ndim: int, axis: int) -> int:
    """Normalise a possibly negative class axis; raise if it does not exist."""
    if not -ndim <= axis < ndim:
        raise TargetError(f"axis {axis} is out of range for scores with {ndim} dims")
    return axis % ndim


def layout_for(
    scores_shape: tuple[int, ...], targets_shape: tuple[int, ...], axis: int = 1
) -> Layout:
    """Split the scores around ``axis`` and tell dense from index targets by their shape.

    Dense targets have the scores' shape (trailing singleton dims ignored); index targets
    have one value per position (all singleton dims ignored).
    """
    scores_shape, targets_shape = tuple(scores_shape), tuple(targets_shape)
    axis = class_axis(len(scores_shape), axis)
    outer = int(np.prod(scores_shape[:axis], dtype=np.int64))
    classes = scores_shape[axis]
    inner = int(np.prod(scores_shape[axis + 1 :], dtype=np.int64))
    if _drop_trailing_ones(scores_shape) == _drop_trailing_ones(targets_shape):
        return Layout(outer, classes, inner, "dense")
    positions_shape = scores_shape[:axis] + scores_shape[axis + 1 :]
    if _drop_ones(positions_shape) == _drop_ones(targets_shape):
        return Layout(outer, classes, inner, "index")
    raise TargetError(
        f"bottom[1] (targets) has shape {targets_shape}, which fits scores of shape "
        f"{scores_shape} (class axis {axis}) in neither accepted form: dense targets of the "
        f"scores' shape {scores_shape}, or index targets with one label per position, shape "
        f"{positions_shape} (singleton dims may be added or dropped)"
    )


def class_view(array: np.ndarray, layout: Layout) -> np.ndarray:
    """View scores or dense targets as (outer, C, inner)."""
    return array.reshape(layout.outer, layout.classes, layout.inner)


def label_view(labels: np.ndarray, layout: Layout) -> np.ndarray:
    """View index targets as (outer, inner)."""
    return labels.reshape(layout.outer, layout.inner)


def _unravel(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


# --- Target validation ---------------------------------------------------------------------


def check_dense_targets(targets: np.ndarray) -> None:
    """Raise :class:`TargetError` unless every target is finite and >= 0 (any shape)."""
    smallest = targets.min() if targets.size else 0.0
    if smallest >= 0 and np.isfinite(targets.sum(dtype=np.float64)):
        return
    bad = np.flatnonzero(~(np.isfinite(targets) & (targets >= 0)))[0]
    raise TargetError(
        f"bottom[1] (targets) holds {float(targets.flat[bad])} at position "
        f"{_unravel(bad, targets.shape)}; dense targets must be finite and >= 0"
    )


def check_index_targets(labels: np.ndarray, classes: int, ignore_label: int | None) -> None:
    """Raise :class:`TargetError` unless every label is an integer in [0, C) or ignore_label."""
    good = (labels >= 0) & (labels < classes) & (labels == np.floor(labels))
    if ignore_label is not None:
        good |= labels == ignore_label
    if good.all():
        return
    bad = np.flatnonzero(~good)[0]
    allowed = f"an integer in [0, {classes})"
    if ignore_label is not None:
        allowed += f" or ignore_label {ignore_label}"
    raise TargetError(
        f"bottom[1] (targets) holds label {float(labels.flat[bad])} at position "
        f"{_unravel(bad, labels.shape)}; index targets must be {allowed}"
    )


# --- The math --------------------------------------------------------------------------------


def log_softmax(scores: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(shifted, log_sum)``: ``log p = shifted - log_sum`` along ``axis``.

    ``shifted = s - max`` (dtype of the scores), ``log_sum = log(sum(exp(shifted)))`` in
    float64 with the axis kept, so that callers never need ``log(softmax)``.
    """
    shifted = scores - scores.max(axis=axis, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=axis, keepdims=True, dtype=np.float64))
    return shifted, log_sum


def softmax(scores: np.ndarray, axis: int = 1) -> np.ndarray:
    """Softmax along ``axis`` in the scores' dtype, normalised with a float64 sum."""
    probs = np.exp(scores - scores.max(axis=axis, keepdims=True))
    probs *= (1.0 / probs.sum(axis=axis, keepdims=True, dtype=np.float64)).astype(probs.dtype)
    return probs


@dataclass(frozen=True)
class Targets:
    """Targets brought to one form: per-class weights times targets, per position.

    ``weighted`` is ``w_c t_c`` (outer, C, inner) after normalisation and smoothing, or None
    for index targets, which keep ``labels`` and are expanded on the fly; ``valid`` marks
    positions that count; ``divisor`` is Z.
    """

    valid: np.ndarray  # (outer, 1, inner) bool
    divisor: float
    weighted: np.ndarray | None = None  # dense: (outer, C, inner) float32
    labels: np.ndarray | None = None  # index: (outer, 1, inner) int64, 0 where ignored
    target_sums: np.ndarray | None = None  # dense: raw sum_c t_c, (outer, 1, inner) float64


def _divisor(normalization: str, layout: Layout, valid_count: float) -> float:
    counts = {
        "full": layout.positions,
        "valid": valid_count,
        "batch_size": layout.outer,
        "none": 1,
    }
    return float(max(1.0, counts[normalization]))


def dense_targets(
    targets: np.ndarray,
    *,
    normalization: str = "valid",
    normalize_targets: bool = True,
    label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
) -> Targets:
    """Prepare dense targets (outer, C, inner): normalise, smooth, weight; find Z.

    A position whose targets sum to 0 is ignored (no loss, no gradient, not counted by
    ``"valid"``).
    """
    outer, classes, inner = targets.shape
    sums = targets.sum(axis=1, keepdims=True, dtype=np.float64)  # (outer, 1, inner)
    valid = sums > 0
    if normalize_targets:
        scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=valid)
        weighted = targets * scale.astype(targets.dtype)
    else:
        weighted = targets * valid  # zero-sum positions stay all-zero
    if label_smoothing:
        weighted *= 1.0 - label_smoothing
        weighted += (label_smoothing / classes) * valid
    if class_weights is not None:
        weighted *= class_weights.reshape(1, classes, 1).astype(weighted.dtype)
    layout = Layout(outer, classes, inner, "dense")
    divisor = _divisor(normalization, layout, float(np.count_nonzero(valid)))
    return Targets(
        valid=valid,
        divisor=divisor,
        weighted=weighted.astype(np.float32, copy=False),
        target_sums=sums,
    )


def index_targets(
    labels: np.ndarray,
    classes: int,
    *,
    normalization: str = "valid",
    ignore_label: int | None = None,
    class_weights: np.ndarray | None = None,
) -> Targets:
    """Prepare index targets (outer, inner): valid mask, integer labels, Z.

    With class weights and ``"valid"``, Z is the sum of the valid labels' weights (PyTorch's
    ``weight`` with mean reduction); it falls back to 1 only when that sum is 0.
    """
    outer, inner = labels.shape
    valid = np.ones(labels.shape, dtype=bool) if ignore_label is None else labels != ignore_label
    label_ids = np.where(valid, labels, 0).astype(np.int64)
    layout = Layout(outer, classes, inner, "index")
    if class_weights is not None and normalization == "valid":
        weight_sum = float(class_weights[label_ids][valid].sum(dtype=np.float64))
        divisor = weight_sum if weight_sum > 0 else 1.0
    else:
        divisor = _divisor(normalization, layout, float(np.count_nonzero(valid)))
    return Targets(valid=valid[:, None, :], divisor=divisor, labels=label_ids[:, None, :])


def _expand_index(
    targets: Targets, classes: int, label_smoothing: float, class_weights: np.ndarray | None
) -> np.ndarray:
    """Dense ``w_c t_c`` (outer, C, inner) for index targets."""
    outer, _, inner = targets.labels.shape
    weighted = np.zeros((outer, classes, inner), dtype=np.float32)
    np.put_along_axis(weighted, targets.labels, np.float32(1.0 - label_smoothing), axis=1)
    if label_smoothing:
        weighted += np.float32(label_smoothing / classes)
    weighted *= targets.valid
    if class_weights is not None:
        weighted *= class_weights.reshape(1, classes, 1).astype(np.float32)
    return weighted


def loss_and_grad(
    scores: np.ndarray, weighted_targets: np.ndarray, divisor: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss, gradient w.r.t. the scores (unit loss weight) and the probabilities.

    ``scores`` and ``weighted_targets`` (``w_c t_c``) are (outer, C, inner). Uses
    ``sum_c a_c log p_c = sum_c a_c shifted_c - (sum_c a_c) log_sum`` so that ``log p`` is
    never materialised.
    """
    shifted, log_sum = log_softmax(scores, axis=1)
    probs = np.exp(shifted)
    probs *= np.exp(-log_sum).astype(np.float32)
    target_mass = weighted_targets.sum(axis=1, keepdims=True, dtype=np.float64)  # (outer,1,inner)
    dot = np.einsum("ocs,ocs->os", weighted_targets, shifted, dtype=np.float64)
    loss = (float((target_mass * log_sum).sum()) - float(dot.sum())) / divisor
    grad = probs * target_mass.astype(np.float32)
    grad -= weighted_targets
    grad *= np.float32(1.0 / divisor)
    return loss, grad, probs


def target_grad(
    scores: np.ndarray,
    targets: np.ndarray,
    prepared: Targets,
    *,
    normalize_targets: bool = True,
    label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
) -> np.ndarray:
    """d loss / d raw dense targets (outer, C, inner), unit loss weight.

    Chain rule through weighting, smoothing and (optionally) normalisation by the sum.
    Ignored (zero-sum) positions get 0.
    """
    shifted, log_sum = log_softmax(scores, axis=1)
    grad = (log_sum - shifted) / prepared.divisor  # d loss / d (w t_smoothed), float64
    if class_weights is not None:
        grad *= class_weights.reshape(1, -1, 1)
    grad *= 1.0 - label_smoothing  # through t <- (1-eps) t + eps/C
    if normalize_targets:  # through t <- t / sum(t)
        sums = prepared.target_sums
        normalized = np.divide(targets, sums, out=np.zeros(targets.shape), where=prepared.valid)
        projection = (grad * normalized).sum(axis=1, keepdims=True)
        grad = np.divide(grad - projection, sums, out=np.zeros_like(grad), where=prepared.valid)
    else:
        grad *= prepared.valid
    return grad.astype(np.float32)


# --- One call for everything ----------------------------------------------------------------


@dataclass(frozen=True)
class CrossEntropy:
    """Result of :func:`softmax_cross_entropy`; arrays have the shapes of the inputs."""

    loss: float
    score_grad: np.ndarray  # d loss / d scores, for loss weight 1
    probs: np.ndarray
    target_grad: np.ndarray | None  # d loss / d dense targets, when asked for


def softmax_cross_entropy(
    scores: np.ndarray,
    targets: np.ndarray,
    *,
    axis: int = 1,
    normalization: str = "valid",
    normalize_targets: bool = True,
    ignore_label: int | None = None,
    label_smoothing: float = 0.0,
    class_weights: np.ndarray | None = None,
    with_target_grad: bool = False,
) -> CrossEntropy:
    """Softmax cross-entropy of ``scores`` against dense or index ``targets``.

    Dense targets have the scores' shape; index targets one label per position. See the
    module docstring for the formula and the README for every option.
    """
    layout = layout_for(scores.shape, targets.shape, axis)
    scores3 = class_view(np.asarray(scores, dtype=np.float32), layout)
    weights = None if class_weights is None else np.asarray(class_weights, dtype=np.float64)
    if layout.target_kind == "dense":
        check_dense_targets(targets)  # positions are reported in the blob's own shape
        targets3 = class_view(np.asarray(targets, dtype=np.float32), layout)
        prepared = dense_targets(
            targets3,
            normalization=normalization,
            normalize_targets=normalize_targets,
            label_smoothing=label_smoothing,
            class_weights=weights,
        )
        weighted = prepared.weighted
    else:
        check_index_targets(targets, layout.classes, ignore_label)
        labels = label_view(np.asarray(targets), layout)
        prepared = index_targets(
            labels,
            layout.classes,
            normalization=normalization,
            ignore_label=ignore_label,
            class_weights=weights,
        )
        weighted = _expand_index(prepared, layout.classes, label_smoothing, weights)
    loss, grad, probs = loss_and_grad(scores3, weighted, prepared.divisor)
    grad_targets = None
    if with_target_grad and layout.target_kind == "dense":
        grad_targets = target_grad(
            scores3,
            targets3,
            prepared,
            normalize_targets=normalize_targets,
            label_smoothing=label_smoothing,
            class_weights=weights,
        ).reshape(targets.shape)
    return CrossEntropy(
        loss=loss,
        score_grad=grad.reshape(scores.shape),
        probs=probs.reshape(scores.shape),
        target_grad=grad_targets,
    )
