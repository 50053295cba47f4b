"""How scores split around the class axis, and which form the targets take.

Every array is handled as a view of shape ``(outer, C, inner)``: ``outer`` is the product of
the dims before the class axis, ``inner`` of those after it, and a *position* is one
``(outer, inner)`` pair. The targets' form is one of the objects of :mod:`.forms` (dense,
index, label lists), which owns what follows from it, fitting the targets' shape to the
scores' (:func:`.forms.layout_for`) included; a :class:`Layout` holds that object, so code
that has a layout asks ``layout.form`` and never compares names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .bad_input import TargetError

if TYPE_CHECKING:  # forms.py imports this module
    from .forms import Form


@dataclass(frozen=True)
class Layout:
    """How the scores split around the class axis, and which form the targets take.

    Hashable and compared by value (the engines pick a kernel once per layout): the form
    objects are singletons, compared by identity.
    """

    outer: int  # product of the dims before the class axis
    classes: int  # C
    inner: int  # product of the dims after the class axis
    form: Form  # one of forms.DENSE, forms.INDEX, forms.LABEL_LISTS
    labels_per_row: int = 1  # K: label-list width (1 for index targets)

    @property
    def positions(self) -> int:
        return self.outer * self.inner


def class_axis(ndim: int, axis: int) -> int:
    """Normalise a possibly negative class axis; raise if it does not exist."""
    if not -ndim <= axis < ndim:
        raise TargetError(f"axis {axis} is out of range for scores with {ndim} dims")
    return axis % ndim


def drop_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape without its singleton dims."""
    return tuple(d for d in shape if d != 1)


def drop_trailing_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    """The shape without its trailing singleton dims."""
    shape = tuple(shape)
    while shape and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def positions_shape(scores_shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
    """The scores' shape without the class axis: one entry per position."""
    return scores_shape[:axis] + scores_shape[axis + 1 :]


def split_scores(scores_shape: tuple[int, ...], axis: int) -> tuple[int, int, int, int]:
    """(class axis, outer, C, inner) of scores of this shape; a class axis of size 1 is an
    error (its softmax is always 1)."""
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
    return axis, outer, classes, inner


def class_view(array: np.ndarray, layout: Layout) -> np.ndarray:
    """View scores or dense targets as (outer, C, inner)."""
    return array.reshape(layout.outer, layout.classes, layout.inner)


def label_view(labels: np.ndarray, layout: Layout) -> np.ndarray:
    """View index targets or label lists as (outer, K, inner) (K = 1 for index targets)."""
    return labels.reshape(layout.outer, layout.labels_per_row, layout.inner)
