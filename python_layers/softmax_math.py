"""Softmax cross-entropy with real-valued, multi-label targets: the public function.

No Caffe here: :func:`softmax_cross_entropy` takes and returns numpy arrays, so it can be used
and tested anywhere; it raises :class:`TargetError` on bad targets. The pieces live in
:mod:`python_layers.loss` (the layout, the forms, the engine), and the Caffe layer in
:mod:`python_layers.softmax_loss` is a thin adapter around the same pieces. Names this module
once re-exported from there (``SoftmaxCrossEntropy``, ``layout_for``, ``Layout``, ...) still
resolve, with a ``DeprecationWarning`` naming their home.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

import numpy as np

from .loss import engine, forms
from .loss.bad_input import TargetError
from .loss.bottoms import ARGUMENTS, check_bottoms
from .loss.options import DEFAULT_OPTIONS, Options

__all__ = ["CrossEntropy", "TargetError", "softmax_cross_entropy"]

# The names this module re-exported before they were given one home each (release 0.1).
_MOVED = {
    "NORMALIZATIONS": "python_layers.loss.normalize",
    "TARGET_FORMS": "python_layers.loss.forms",
    "Layout": "python_layers.loss.layout",
    "SoftmaxCrossEntropy": "python_layers.loss.engine",
    "class_axis": "python_layers.loss.layout",
    "class_view": "python_layers.loss.layout",
    "label_view": "python_layers.loss.layout",
    "label_weight_grad": "python_layers.loss.engine",
    "layout_for": "python_layers.loss.forms",
    "target_grad": "python_layers.loss.engine",
}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    home = _MOVED[name]
    warnings.warn(
        f"python_layers.softmax_math.{name} moved: import it from {home}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)


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
    targets_form: str = forms.TARGET_FORMS[0],
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
    layout = forms.layout_for(scores.shape, targets.shape, axis, targets_form)
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
    loss = engine.SoftmaxCrossEntropy(options)(
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
