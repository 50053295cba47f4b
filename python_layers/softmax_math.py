"""Softmax cross-entropy with real-valued, multi-label targets: the public function.

No Caffe here: :func:`softmax_cross_entropy` takes and returns numpy arrays, so it can be used
and tested anywhere. The pieces live in :mod:`python_layers.loss` (layout, target checks, the
engine, target gradients); the names below are re-exported for existing callers. The Caffe
layer in :mod:`python_layers.softmax_loss` is a thin adapter around the same pieces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .loss.bad_input import TargetError
from .loss.bottoms import ARGUMENTS, check_bottoms
from .loss.engine import SoftmaxCrossEntropy, label_weight_grad, target_grad
from .loss.forms import TARGET_FORMS, layout_for
from .loss.layout import Layout, class_axis, class_view, label_view
from .loss.options import DEFAULT_OPTIONS, NORMALIZATIONS, Options

__all__ = [
    "NORMALIZATIONS",
    "TARGET_FORMS",
    "CrossEntropy",
    "Layout",
    "Options",
    "SoftmaxCrossEntropy",
    "TargetError",
    "class_axis",
    "class_view",
    "label_view",
    "label_weight_grad",
    "layout_for",
    "softmax_cross_entropy",
    "target_grad",
]


@dataclass(frozen=True)
class CrossEntropy:
    """Result of :func:`softmax_cross_entropy`; arrays have the shapes of the inputs."""

    loss: float
    score_grad: np.ndarray  # d loss / d scores, for loss weight 1
    probs: np.ndarray
    target_grad: np.ndarray | None  # d loss / d dense targets or label weights, when asked for


def softmax_cross_entropy(
    scores: np.ndarray,
    targets: np.ndarray,
    label_weights: np.ndarray | None = None,
    *,
    axis: int = 1,
    targets_form: str = TARGET_FORMS[0],
    normalization: str = DEFAULT_OPTIONS.normalization,
    normalize_targets: bool = DEFAULT_OPTIONS.normalize_targets,
    ignore_label: int | None = DEFAULT_OPTIONS.ignore_label,
    label_smoothing: float = DEFAULT_OPTIONS.label_smoothing,
    class_weights=DEFAULT_OPTIONS.class_weights,
    with_target_grad: bool = False,
) -> CrossEntropy:
    """Softmax cross-entropy of ``scores`` against ``targets``.

    ``targets_form``: ``"auto"`` (dense targets have the scores' shape; index targets one
    label per position), ``"dense"``, ``"index"`` or ``"labels"`` ((N, K) class indices padded
    with -1, with optional ``label_weights`` of the same shape). See the README for every
    option. ``with_target_grad`` adds d loss / d targets (dense) or d loss / d label_weights.
    """
    layout = layout_for(scores.shape, targets.shape, axis, targets_form)
    form = layout.form
    given = (scores, targets) if label_weights is None else (scores, targets, label_weights)
    check_bottoms(targets_form, [np.shape(array) for array in given], ARGUMENTS)
    options = Options(
        normalization,
        normalize_targets,
        ignore_label,
        label_smoothing,
        None if class_weights is None else tuple(np.asarray(class_weights, float)),
    )
    # Any layout in (Fortran, transposed or sliced views): the engines read and write C order.
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    targets = np.ascontiguousarray(targets, dtype=np.float32)
    if label_weights is not None:
        label_weights = np.ascontiguousarray(label_weights, dtype=np.float32)
    grad, probs = np.empty(scores.shape, np.float32), np.empty(scores.shape, np.float32)
    wanted = form.gradient_bottom if with_target_grad else None  # 1: dense targets, 2: weights
    if wanted == 2 and label_weights is None:
        label_weights = np.ones(targets.shape, np.float32)  # d loss / d w at w = 1
    grad_targets = np.empty(targets.shape, np.float32) if wanted else None
    loss = SoftmaxCrossEntropy(options)(
        scores,
        targets,
        layout,
        label_weights=label_weights,
        grad_out=grad,
        probs_out=probs,
        target_grad_out=grad_targets if wanted == 1 else None,
        label_weight_grad_out=grad_targets if wanted == 2 else None,
    )
    return CrossEntropy(loss=loss, score_grad=grad, probs=probs, target_grad=grad_targets)
