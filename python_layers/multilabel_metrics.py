"""Caffe layer: multi-label metrics for the TEST phase (Caffe's Accuracy is single-label).

Prototxt::

    layer {
      name: "metrics"  type: "Python"
      bottom: "scores"  bottom: "labels"       # optional third bottom: "label_weights"
      top: "precision_at_1"  top: "precision_at_k"  top: "recall_at_k"  top: "map"
      python_param { module: "python_layers.multilabel_metrics"  layer: "MultiLabelMetricsLayer"
                     param_str: '{"k": 3, "targets": "labels"}' }
      include { phase: TEST }
    }

The math is in :mod:`python_layers.metrics`. Caffe averages each top over the test
iterations, so ``map`` in the log is the mean of per-batch mAPs; the dataset-level numbers
come from ``examples.digits_multilabel.evaluate``.
"""

from __future__ import annotations

import caffe
import numpy as np

from . import metrics
from .errors import reports_errors
from .loss.bottoms import check_bottoms
from .loss.forms import layout_for
from .params import multilabel_metrics_params

LAYER = "MultiLabelMetricsLayer"


@reports_errors
class MultiLabelMetricsLayer(caffe.Layer):
    """Precision@1, precision@k, recall@k and mAP of a batch.

    Bottoms:
      0. scores:  (N, C) (trailing singleton dims allowed), higher is more likely.
      1. targets, in the form of param_str key ``targets`` (as for SoftmaxLossLayer):
         dense (N, C), a class relevant where its target is > 0; index (N,), one label per
         sample; or ``"labels"``: label lists (N, K), class indices padded with -1.
      2. label_weights (optional, label lists only): (N, K); a listed class whose weights
         are all 0 is not relevant.
    Tops (scalars, in this order): precision_at_1, precision_at_k, recall_at_k, map.
    No backward (metrics are not differentiated).
    """

    def setup(self, bottom, top) -> None:
        params = multilabel_metrics_params(self.param_str)
        self.k, self.form = params["k"], params["targets"]
        if len(top) != len(metrics.LAYER_TOPS):
            raise ValueError(
                f"{LAYER}: needs {len(metrics.LAYER_TOPS)} tops "
                f"({', '.join(metrics.LAYER_TOPS)}), got {len(top)}"
            )

    def reshape(self, bottom, top) -> None:
        shapes = [tuple(bottom[i].data.shape) for i in range(len(bottom))]
        try:
            check_bottoms(self.form, shapes)  # how many, and the label weights' shape
            self.layout = layout_for(shapes[0], shapes[1], 1, self.form)
        except ValueError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        if self.layout.inner != 1:
            raise ValueError(
                f"{LAYER}: scores of shape {shapes[0]} have dims after the class "
                "axis; metrics are per sample: give (N, C) scores"
            )
        for index in range(len(top)):  # pycaffe's blob vectors can be indexed, not iterated
            top[index].reshape()

    def _relevant(self, bottom) -> np.ndarray:
        """(N, C) bools: the classes each sample's targets mark as relevant."""
        weights = bottom[2].data if len(bottom) == 3 else None
        try:
            return self.layout.form.relevant(bottom[1].data, weights, self.layout)
        except ValueError as why:
            raise ValueError(f"{LAYER}: {why}") from None

    def forward(self, bottom, top) -> None:
        # 1. scores (N, C, ...) -> (N, C); targets of any form -> relevant classes (N, C).
        scores = bottom[0].data.reshape(self.layout.outer, self.layout.classes)
        relevant = self._relevant(bottom)
        # 2. The metrics, written to the tops by name.
        values = metrics.layer_metrics(scores, relevant, self.k)
        for index, name in enumerate(metrics.LAYER_TOPS):
            top[index].data[...] = values[name]

    def backward(self, top, propagate_down, bottom) -> None:
        for index, needed in enumerate(propagate_down):
            if needed:
                bottom[index].diff[...] = 0.0
