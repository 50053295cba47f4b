"""Caffe layer: softmax cross-entropy with multi-label, real-valued targets.

Prototxt::

    layer {
      name: "loss"  type: "Python"
      bottom: "scores"  bottom: "targets"
      top: "loss"            # optional second top: "prob"
      python_param { module: "python_layers.softmax_loss"  layer: "SoftmaxLossLayer"
                     param_str: '{"normalization": "valid"}' }
      loss_weight: 1
    }

The math is in :mod:`python_layers.softmax_math`; the parameters are checked in
:mod:`python_layers.params`. This class only moves data between Caffe's blobs and them.
"""

from __future__ import annotations

import caffe
import numpy as np

from . import softmax_math as sm
from .params import softmax_loss_params

LAYER = "SoftmaxLossLayer"


class SoftmaxLossLayer(caffe.Layer):
    """Softmax cross-entropy; a drop-in for SoftmaxWithLoss that also takes dense targets.

    Bottoms:
      0. scores:  any shape with the class axis ``axis`` (default 1), e.g. (N, C) or (N, C, H, W).
      1. targets: dense, the scores' shape (trailing singleton dims ignored), real values >= 0,
                  normalised per position to sum 1 by default (k-hot -> 1/k);
                  or index, one integer label per position, e.g. (N,) or (N, 1, H, W).
    Tops:
      0. loss: scalar, ``(1/Z) sum_positions sum_c w_c t_c (-log p_c)``.
      1. prob (optional): softmax of the scores, the scores' shape.
    Backward: exact gradient to the scores; to dense targets too when ``propagate_down[1]``
    (targets from a teacher net); zeros to index targets.
    """

    def setup(self, bottom, top) -> None:
        self.params = softmax_loss_params(self.param_str)
        if len(bottom) != 2:
            raise ValueError(f"{LAYER}: needs 2 bottoms (scores, targets), got {len(bottom)}")
        if len(top) not in (1, 2):
            raise ValueError(f"{LAYER}: needs 1 or 2 tops (loss[, prob]), got {len(top)}")
        self.result: sm.CrossEntropy | None = None

    def reshape(self, bottom, top) -> None:
        try:
            self.layout = sm.layout_for(
                bottom[0].data.shape, bottom[1].data.shape, self.params["axis"]
            )
        except ValueError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        self._check_params_fit(self.layout)
        top[0].reshape()  # a scalar, like Caffe's own loss layers
        if len(top) == 2:
            top[1].reshape(*bottom[0].data.shape)

    def _check_params_fit(self, layout: sm.Layout) -> None:
        weights = self.params["class_weights"]
        if weights is not None and len(weights) != layout.classes:
            raise ValueError(
                f"{LAYER}: param_str key 'class_weights' has {len(weights)} entries; "
                f"expected one per class, {layout.classes} (the size of the scores' class axis)"
            )
        if self.params["ignore_label"] is not None and layout.target_kind == "dense":
            raise ValueError(
                f"{LAYER}: param_str key 'ignore_label' applies to index targets only; "
                f"bottom[1] (targets) is dense (shape {layout.outer}x{layout.classes}x"
                f"{layout.inner} as outer x C x inner); a dense row of zeros is ignored instead"
            )

    def forward(self, bottom, top) -> None:
        # 1. Compute everything before writing anything, so an error leaves the tops untouched.
        try:
            result = sm.softmax_cross_entropy(
                bottom[0].data, bottom[1].data, with_target_grad=False, **self.params
            )
        except ValueError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        # 2. A non-finite loss means non-finite scores (targets were checked): say where.
        if not np.isfinite(result.loss):
            raise FloatingPointError(self._non_finite_message(bottom, result.loss))
        # 3. Write the tops; keep the result for backward.
        top[0].data[...] = result.loss
        if len(top) == 2:
            top[1].data[...] = result.probs
        self.result = result

    def backward(self, top, propagate_down, bottom) -> None:
        loss_weight = top[0].diff.flat[0]  # the prototxt's loss_weight reaches us here
        if propagate_down[0]:
            # bottom[0].diff (scores' shape) = loss_weight * d loss / d scores
            np.multiply(self.result.score_grad, loss_weight, out=bottom[0].diff)
        if propagate_down[1]:
            bottom[1].diff[...] = loss_weight * self._target_grad(bottom)

    def _target_grad(self, bottom) -> np.ndarray:
        """d loss / d targets: exact for dense targets, zeros for (non-differentiable) labels."""
        if self.layout.target_kind == "index":
            return np.zeros(bottom[1].data.shape, dtype=np.float32)
        return sm.softmax_cross_entropy(
            bottom[0].data, bottom[1].data, with_target_grad=True, **self.params
        ).target_grad

    @staticmethod
    def _non_finite_message(bottom, loss: float) -> str:
        for index, name in enumerate(("scores", "targets")):
            data = bottom[index].data
            bad = np.flatnonzero(~np.isfinite(data))
            if bad.size:
                position = tuple(int(i) for i in np.unravel_index(bad[0], data.shape))
                return (
                    f"{LAYER}: loss is {loss}: bottom[{index}] ({name}) holds {bad.size} "
                    f"non-finite value(s), the first {data.flat[bad[0]]} at {position}"
                )
        return f"{LAYER}: loss is {loss} although both bottoms are finite"
