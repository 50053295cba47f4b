"""Caffe layer: softmax cross-entropy with multi-label, real-valued targets.

Prototxt::

    layer {
      name: "loss"  type: "Python"
      bottom: "scores"  bottom: "targets"     # "labels" [+ "label_weights"] for label lists
      top: "loss"            # optional second top: "prob"
      python_param { module: "python_layers.softmax_loss"  layer: "SoftmaxLossLayer"
                     param_str: '{"normalization": "valid"}' }
      loss_weight: 1
    }

The math is in :mod:`python_layers.loss`; the parameters are checked in
:mod:`python_layers.params`. This class only moves data between Caffe's blobs and them.
"""

from __future__ import annotations

import caffe
import numpy as np

from .loss.engine import Options, SoftmaxCrossEntropy
from .loss.layout import Layout, layout_for
from .loss.target_grad import label_weight_grad, target_grad
from .params import softmax_loss_params

LAYER = "SoftmaxLossLayer"


class SoftmaxLossLayer(caffe.Layer):
    """Softmax cross-entropy; a drop-in for SoftmaxWithLoss that also takes dense targets.

    Bottoms:
      0. scores:  any shape with the class axis ``axis`` (default 1), e.g. (N, C) or (N, C, H, W).
      1. targets, in the form param_str key ``targets`` names (default ``"auto"``: by shape):
         dense, the scores' shape (trailing singleton dims ignored), real values >= 0,
         normalised per position to sum 1 by default (k-hot -> 1/k);
         index, one integer label per position, e.g. (N,) or (N, 1, H, W);
         ``"labels"``: label lists (N, K), class indices padded with -1, scores (N, C).
      2. label_weights (optional, label lists only): (N, K), a weight >= 0 per listed label;
         row r's targets are ``t_c = sum_j w_rj [label_rj == c]``.
    Tops:
      0. loss: scalar, ``(1/Z) sum_positions sum_c w_c t_c (-log p_c)``.
      1. prob (optional): softmax of the scores, the scores' shape.
    Backward: exact gradient to the scores; to dense targets and label weights when Caffe
    asks (targets from a teacher net), unless ``"target_gradient": false``, which writes
    zeros instead; zeros to index labels and label lists.

    In the TRAIN phase the gradient is computed in the same pass as the loss and written to
    ``bottom[0].diff`` during forward (scaled by the loss weight, which Caffe puts in
    ``top[0].diff`` at set-up); backward then only rescales it if that weight changed.
    """

    def setup(self, bottom, top) -> None:
        params = softmax_loss_params(self.param_str)
        self.axis = params.pop("axis")
        self.form = params.pop("targets")
        self.target_gradient = params.pop("target_gradient")
        self.options = Options(**params)
        self.engine = SoftmaxCrossEntropy(self.options)
        if len(bottom) == 3 and self.form != "labels":
            raise ValueError(
                f'{LAYER}: a third bottom (label_weights) needs "targets": "labels" in '
                f'param_str; got "targets": "{self.form}"'
            )
        if self.form == "labels" and self.options.ignore_label is not None:
            raise ValueError(
                f"{LAYER}: param_str key 'ignore_label' applies to index targets only; label "
                "lists mark missing labels with -1 padding, and a row with none is ignored"
            )
        if len(bottom) not in (2, 3):
            raise ValueError(
                f"{LAYER}: needs 2 bottoms (scores, targets) or 3 (scores, labels, "
                f"label_weights), got {len(bottom)}"
            )
        if len(top) not in (1, 2):
            raise ValueError(f"{LAYER}: needs 1 or 2 tops (loss[, prob]), got {len(top)}")
        self.grad_weight: float | None = None  # loss weight of the gradient in bottom[0].diff

    def reshape(self, bottom, top) -> None:
        try:
            self.layout = layout_for(
                bottom[0].data.shape, bottom[1].data.shape, self.axis, self.form
            )
        except ValueError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        if len(bottom) == 3 and bottom[2].data.shape != bottom[1].data.shape:
            raise ValueError(
                f"{LAYER}: bottom[2] (label_weights) has shape {bottom[2].data.shape}; "
                f"expected the labels' shape {bottom[1].data.shape}"
            )
        self._check_options_fit(self.layout)
        top[0].reshape()  # a scalar, like Caffe's own loss layers
        if len(top) == 2:
            top[1].reshape(*bottom[0].data.shape)

    def _check_options_fit(self, layout: Layout) -> None:
        weights = self.options.class_weights
        if weights is not None and len(weights) != layout.classes:
            raise ValueError(
                f"{LAYER}: param_str key 'class_weights' has {len(weights)} entries; "
                f"expected one per class, {layout.classes} (the size of the scores' class axis)"
            )
        if self.options.ignore_label is not None and layout.target_kind == "dense":
            raise ValueError(
                f"{LAYER}: param_str key 'ignore_label' applies to index targets only; "
                f"bottom[1] (targets) is dense (shape {layout.outer}x{layout.classes}x"
                f"{layout.inner} as outer x C x inner); a dense row of zeros is ignored instead"
            )

    def _run(self, bottom, top, grad_weight: float | None) -> float:
        """The engine on the blobs; the gradient goes to bottom[0].diff if grad_weight is set."""
        try:
            loss = self.engine(
                bottom[0].data,
                bottom[1].data,
                self.layout,
                label_weights=bottom[2].data if len(bottom) == 3 else None,
                grad_out=None if grad_weight is None else bottom[0].diff,
                grad_scale=grad_weight or 0.0,
                probs_out=top[1].data if len(top) == 2 else None,
            )
        except ValueError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        except FloatingPointError as why:
            raise FloatingPointError(f"{LAYER}: {why}") from None
        if not np.isfinite(loss):  # finite inputs overflowing (|scores| near float32's max)
            raise FloatingPointError(f"{LAYER}: loss is {loss} although both bottoms are finite")
        return loss

    def forward(self, bottom, top) -> None:
        # 1. Validate, then loss (and in TRAIN the gradient) in one blocked pass.
        training = self.phase == caffe.TRAIN
        self.grad_weight = float(top[0].diff.flat[0]) if training else None
        # 2. Write the loss; prob and the gradient were written by the engine.
        top[0].data[...] = self._run(bottom, top, self.grad_weight)

    def backward(self, top, propagate_down, bottom) -> None:
        loss_weight = float(top[0].diff.flat[0])  # the prototxt's loss_weight reaches us here
        if propagate_down[0]:
            if not self.grad_weight:  # TEST phase (or weight 0): compute it now
                self._run(bottom, top, loss_weight)
            elif loss_weight != self.grad_weight:  # someone changed the top diff since forward
                bottom[0].diff[...] *= np.float32(loss_weight / self.grad_weight)
            self.grad_weight = loss_weight
        # Targets: Caffe asks under force_backward even with propagate_down: false (a Python
        # layer always allows forced backward), so "target_gradient": false is the opt-out.
        for index in range(1, len(bottom)):
            if propagate_down[index]:
                bottom[index].diff[...] = loss_weight * self._target_grad(bottom, index)

    def _target_grad(self, bottom, index: int) -> np.ndarray | float:
        """d loss / d bottom[index]: exact for dense targets and label weights, else 0."""
        kind = self.layout.target_kind
        if not self.target_gradient or kind == "index" or (kind == "labels" and index == 1):
            return 0.0  # labels are not differentiable; or the user said not to bother
        scores = bottom[0].data
        if kind == "dense":
            return target_grad(scores, bottom[1].data, self.layout, self.options)
        return label_weight_grad(scores, bottom[1].data, bottom[2].data, self.layout, self.options)
