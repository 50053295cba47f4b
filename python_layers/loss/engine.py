"""The engine: loss, gradients and probabilities for one layout, forward and backward.

Notation (see docs/loss.md): scores ``s`` viewed as ``(outer, C, inner)``; with
``p = softmax(s)`` over the class axis, targets ``t >= 0`` (after normalisation and
smoothing) and class weights ``w``::

    loss       = (1/Z) * sum_positions sum_c  w_c t_c (-log p_c)
    dloss/ds_j = (1/Z) * ((sum_c w_c t_c) p_j - w_j t_j)

``log p`` is ``s - max - log(sum exp(s - max))``, with the sum accumulated in float64; it is
never ``log(softmax)`` and nothing is clamped. The numba kernels do the work: :mod:`.fused_rows`
for (N, C) scores (a row at a time), :mod:`.fused_positions` for dims after the class axis
(blocks of positions); the kernel is picked once per layout. The target form
(:mod:`.forms`) prepares what the kernels read about the targets (every form's coefficients by
the one rule of :mod:`.coefficients`), and words bad input. Forward computes Z once
(:mod:`.normalize`, from what the pass counted) and keeps it, with what backward needs per
position (:class:`Saved`), so backward (the scores' gradient and the targets': dense targets
and label weights) is one pass from the inputs. :mod:`.reference` is the same math in float64
numpy, what the tests hold the kernels to. Buffers are reused across calls, reallocated
only when shapes change; outputs are written straight into the caller's arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bad_input import BadScoresError, BadTargetsError, non_finite_scores_message
from .buffers import Buffers
from .fused_positions import Positions
from .fused_rows import Rows
from .layout import Layout, class_view, label_view
from .normalize import divisor, divisor_rule
from .numba_parts import threads
from .options import DEFAULT_OPTIONS, Options


@dataclass(frozen=True)
class Saved:
    """What forward keeps for backward (arrays in the engine's buffers, valid until the next
    forward): the layout, Z, the targets' preparation and the kernel's per-position values."""

    layout: Layout
    divisor: float
    prepared: tuple
    kept: tuple


class SoftmaxCrossEntropy:
    """Loss, gradients and probabilities, with buffers reused across calls.

    :meth:`forward` validates the inputs (raising before writing anything), computes the loss
    and, when asked, the softmax, and keeps what :meth:`backward` needs; :meth:`backward`
    writes ``grad_scale * dloss/ds`` (and the dense targets' gradient) from the inputs.
    """

    def __init__(self, options: Options = DEFAULT_OPTIONS):
        self.options = options
        self.threads = threads()  # numba's, used by the parallel kernels
        self.buffers = Buffers()
        weights = options.class_weights
        self._weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self._kernel: tuple | None = None  # (layout, kernel): picked once per layout

    def retained_bytes(self) -> int:
        return self.buffers.nbytes()

    def kernel(self, layout: Layout):
        """The kernel for a layout: rows for (N, C) scores, positions otherwise."""
        if self._kernel is None or self._kernel[0] != layout:
            weights = self.buffers.ones(layout.classes) if self._weights is None else self._weights
            kind = Rows if layout.inner == 1 else Positions
            self._kernel = (layout, kind(self.buffers, self.options, weights))
        return self._kernel[1]

    def _views(self, layout, scores, targets, label_weights, outputs: dict) -> tuple:
        """(outer, C, inner) views of C-ordered inputs; outputs must be C-ordered already."""
        for name, out in outputs.items():
            if out is not None and not out.flags.c_contiguous:  # a reshape would write a copy
                raise ValueError(f"{name} must be C-contiguous (np.empty(shape, np.float32))")
        view = class_view if layout.form.view_as_classes else label_view
        return (
            class_view(np.ascontiguousarray(scores), layout),  # no copy for blobs (C order)
            view(np.ascontiguousarray(targets), layout),
            None if label_weights is None else label_view(label_weights, layout),
            *(None if out is None else class_view(out, layout) for out in outputs.values()),
        )

    def _check_scores(self, scores) -> None:
        """Non-finite scores, found without a scores-sized temporary."""
        shape = (scores.shape[0], 1, scores.shape[2])
        row_max = np.max(scores, axis=1, keepdims=True, out=self.buffers("row_max", shape))
        if not (np.isfinite(row_max).all() and np.isfinite(scores.min())):
            raise BadScoresError

    def forward(
        self,
        scores: np.ndarray,
        targets: np.ndarray,
        layout: Layout,
        *,
        label_weights: np.ndarray | None = None,
        probs_out: np.ndarray | None = None,
    ) -> tuple[float, Saved]:
        """The loss, p into ``probs_out``, and what :meth:`backward` needs. Raises
        :class:`TargetError` (bad targets) or ``FloatingPointError`` (non-finite scores)
        before writing to ``probs_out`` (a top: then the inputs are checked first)."""
        if label_weights is not None:
            label_weights = np.ascontiguousarray(label_weights)
        outputs = {"probs_out": probs_out}
        scores3, targets3, weights3, probs = self._views(
            layout, scores, targets, label_weights, outputs
        )
        form, kernel = layout.form, self.kernel(layout)
        try:
            if probs is not None:
                self._check_scores(scores3)
            prepared = form.prepare(self.buffers, targets3, weights3, layout, self.options)
            loss, counts, kept = kernel.forward(scores3, targets3, prepared, probs)
        except BadScoresError:
            raise FloatingPointError(non_finite_scores_message(scores)) from None
        except BadTargetsError:
            raise form.error(targets, label_weights, layout.classes, self.options) from None
        rule = divisor_rule(self.options, layout, form.counts_label_weights)
        z = divisor(rule, *counts)  # once: backward and the targets' gradient read it
        return loss / z, Saved(layout, z, prepared, kept)

    def backward(
        self,
        saved: Saved,
        scores: np.ndarray,
        targets: np.ndarray,
        *,
        label_weights: np.ndarray | None = None,
        grad_out: np.ndarray | None = None,
        grad_scale: float = 1.0,
        target_grad_out: np.ndarray | None = None,
        label_weight_grad_out: np.ndarray | None = None,
        target_grad_scale: float = 1.0,
    ) -> None:
        """``grad_scale * dloss/ds`` into ``grad_out``, and ``target_grad_scale`` times the
        dense targets' gradient into ``target_grad_out`` or the label weights' into
        ``label_weight_grad_out`` (as the GPU engine's backward), from the inputs
        :meth:`forward` was given and what it kept (Z included); nothing the output arrays
        held is read."""
        layout = saved.layout
        form, kernel = layout.form, self.kernel(layout)
        if target_grad_out is not None and form.gradient_bottom != 1:
            raise ValueError("target_grad_out is for dense targets")
        if label_weight_grad_out is not None and not (
            form.gradient_bottom == 2 and label_weights is not None
        ):
            raise ValueError("label_weight_grad_out is for label lists with label weights")
        outputs = {"grad_out": grad_out, "target_grad_out": target_grad_out}
        scores3, targets3, weights3, grad, t_grad = self._views(
            layout, scores, targets, label_weights, outputs
        )
        w_grad = None
        if label_weight_grad_out is not None:
            if not label_weight_grad_out.flags.c_contiguous:
                raise ValueError("label_weight_grad_out must be C-contiguous")
            w_grad = label_view(label_weight_grad_out, layout)
        grads = (grad, t_grad, w_grad)
        kernel.backward(saved, scores3, targets3, weights3, grads, grad_scale, target_grad_scale)

    def __call__(
        self,
        scores: np.ndarray,
        targets: np.ndarray,
        layout: Layout,
        *,
        label_weights: np.ndarray | None = None,
        grad_out: np.ndarray | None = None,
        grad_scale: float = 1.0,
        probs_out: np.ndarray | None = None,
        target_grad_out: np.ndarray | None = None,
        label_weight_grad_out: np.ndarray | None = None,
        target_grad_scale: float = 1.0,
    ) -> float:
        """:meth:`forward`, then :meth:`backward` when a gradient is asked for."""
        loss, saved = self.forward(
            scores, targets, layout, label_weights=label_weights, probs_out=probs_out
        )
        wanted = (grad_out, target_grad_out, label_weight_grad_out)
        if any(out is not None for out in wanted):
            self.backward(
                saved,
                scores,
                targets,
                label_weights=label_weights,
                grad_out=grad_out,
                grad_scale=grad_scale,
                target_grad_out=target_grad_out,
                label_weight_grad_out=label_weight_grad_out,
                target_grad_scale=target_grad_scale,
            )
        return loss


def target_grad(
    scores: np.ndarray, targets: np.ndarray, layout: Layout, options: Options = DEFAULT_OPTIONS
) -> np.ndarray:
    """d loss / d raw dense targets (the targets' shape, float32), unit loss weight."""
    out = np.empty(np.shape(targets), np.float32)
    scores, targets = np.asarray(scores, np.float32), np.asarray(targets, np.float32)
    SoftmaxCrossEntropy(options)(scores, targets, layout, target_grad_out=out)
    return out


def label_weight_grad(
    scores: np.ndarray,
    labels: np.ndarray,
    label_weights: np.ndarray,
    layout: Layout,
    options: Options = DEFAULT_OPTIONS,
) -> np.ndarray:
    """d loss / d label weights (the labels' shape, (N, K), float32), unit loss weight: the
    dense targets' gradient at the listed classes; padding (-1) gets 0."""
    out = np.empty(np.shape(label_weights), np.float32)
    scores, labels = np.asarray(scores, np.float32), np.asarray(labels, np.float32)
    label_weights = np.asarray(label_weights, np.float32)
    engine = SoftmaxCrossEntropy(options)
    engine(scores, labels, layout, label_weights=label_weights, label_weight_grad_out=out)
    return out
