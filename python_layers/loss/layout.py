"""How scores split around the class axis, and which form the targets take.

Every array is handled as a view of shape ``(outer, C, inner)``: ``outer`` is the product of
the dims before the class axis, ``inner`` of those after it, and a *position* is one
``(outer, inner)`` pair. Targets come in three forms:

- ``dense``: the scores' shape, a real value >= 0 per class and position;
- ``index``: one integer label per position (Caffe's SoftmaxWithLoss form);
- ``labels``: a label list per row, shape (N, K), class indices padded with -1 (only for
  scores without an inner dimension: (N, C) or (N, C, 1, 1)).

Each form is an object in :mod:`.forms`, which owns what follows from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from .targets import TargetError

TargetKind = Literal["dense", "index", "labels"]
TARGET_FORMS = ("auto", "dense", "index", "labels")


@dataclass(frozen=True)
class Layout:
    """How the scores split around the class axis, and what kind the targets are."""

    outer: int  # product of the dims before the class axis
    classes: int  # C
    inner: int  # product of the dims after the class axis
    target_kind: TargetKind
    labels_per_row: int = 1  # K: label-list width (1 for index targets)

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


def _fits_dense(scores_shape, targets_shape) -> bool:
    return _drop_trailing_ones(scores_shape) == _drop_trailing_ones(targets_shape)


def _fits_index(scores_shape, targets_shape, axis) -> bool:
    positions_shape = scores_shape[:axis] + scores_shape[axis + 1 :]
    return _drop_ones(positions_shape) == _drop_ones(targets_shape)


def _label_width(scores_shape, targets_shape, axis) -> int | None:
    """K when the targets are (dims before the class axis..., K) plus trailing 1s, else None."""
    before = scores_shape[:axis]
    trimmed = _drop_trailing_ones(targets_shape)
    if trimmed == _drop_trailing_ones(before):
        return 1
    if len(trimmed) == len(before) + 1 and trimmed[: len(before)] == before:
        return trimmed[-1]
    return None


def layout_for(
    scores_shape: tuple[int, ...],
    targets_shape: tuple[int, ...],
    axis: int = 1,
    form: str = "auto",
) -> Layout:
    """Split the scores around ``axis`` and read the targets in ``form``.

    ``auto`` tells dense from index targets by shape (dense: the scores' shape, trailing
    singleton dims ignored; index: one value per position, all singleton dims ignored); it
    never guesses label lists, which must be asked for with ``labels``.
    """
    scores_shape, targets_shape = tuple(scores_shape), tuple(targets_shape)
    axis = class_axis(len(scores_shape), axis)
    outer = int(np.prod(scores_shape[:axis], dtype=np.int64))
    classes = scores_shape[axis]
    inner = int(np.prod(scores_shape[axis + 1 :], dtype=np.int64))
    if classes == 1:
        raise TargetError(
            f"bottom[0] (scores) has shape {scores_shape}, a class axis ({axis}) of size 1: "
            "softmax over one class is always 1, so the loss and its gradient are always 0. "
            "For one binary output per sample use Caffe's SigmoidCrossEntropyLoss; for a "
            "softmax, give the scores one channel per class (2 for a binary task)"
        )
    if form == "labels":
        return _label_list_layout(scores_shape, targets_shape, axis, outer, classes, inner)
    if form in ("auto", "dense") and _fits_dense(scores_shape, targets_shape):
        return Layout(outer, classes, inner, "dense")
    if form in ("auto", "index") and _fits_index(scores_shape, targets_shape, axis):
        return Layout(outer, classes, inner, "index")
    positions_shape = scores_shape[:axis] + scores_shape[axis + 1 :]
    accepted = {
        "auto": f"dense targets of the scores' shape {scores_shape}, or index targets with "
        f"one label per position, shape {positions_shape} (singleton dims may be added or "
        'dropped); label lists (N, K), padded with -1, need "targets": "labels" in param_str',
        "dense": f'dense targets ("targets": "dense") of the scores\' shape {scores_shape}',
        "index": f'index targets ("targets": "index") with one label per position, shape '
        f"{positions_shape} (singleton dims may be added or dropped)",
    }[form]
    raise TargetError(
        f"bottom[1] (targets) has shape {targets_shape}, which does not fit scores of shape "
        f"{scores_shape} (class axis {axis}); accepted: {accepted}"
    )


def _label_list_layout(scores_shape, targets_shape, axis, outer, classes, inner) -> Layout:
    if inner != 1:
        raise TargetError(
            f'label lists ("targets": "labels") need scores without dims after the class '
            f"axis, (N, C) or (N, C, 1, 1); got scores of shape {scores_shape} with class "
            f"axis {axis}; use dense or index targets for dense prediction"
        )
    width = _label_width(scores_shape, targets_shape, axis)
    if width is None:
        raise TargetError(
            f"bottom[1] (labels) has shape {targets_shape}; label lists for scores of shape "
            f"{scores_shape} must be {(*scores_shape[:axis], 'K')}: up to K class indices "
            "per row, padded with -1"
        )
    return Layout(outer, classes, inner, "labels", width)


def class_view(array: np.ndarray, layout: Layout) -> np.ndarray:
    """View scores or dense targets as (outer, C, inner)."""
    return array.reshape(layout.outer, layout.classes, layout.inner)


def label_view(labels: np.ndarray, layout: Layout) -> np.ndarray:
    """View index targets or label lists as (outer, K, inner) (K = 1 for index targets)."""
    return labels.reshape(layout.outer, layout.labels_per_row, layout.inner)
