"""Caffe layer: multi-label metrics for the TEST phase (Caffe's Accuracy is single-label).

Prototxt::

    layer {
      name: "metrics"  type: "Python"
      bottom: "scores"  bottom: "label"
      top: "precision_at_1"  top: "precision_at_k"  top: "recall_at_k"  top: "map"
      python_param { module: "python_layers.multilabel_metrics"  layer: "MultiLabelMetricsLayer"
                     param_str: '{"k": 3}' }
      include { phase: TEST }
    }

The math is in :mod:`python_layers.metrics`. Caffe averages each top over the test
iterations, so ``map`` in the log is the mean of per-batch mAPs; the dataset-level numbers
come from ``examples.digits_multilabel.evaluate``.
"""

from __future__ import annotations

import caffe

from . import metrics
from .params import multilabel_metrics_params

LAYER = "MultiLabelMetricsLayer"


class MultiLabelMetricsLayer(caffe.Layer):
    """Precision@1, precision@k, recall@k and mAP of a batch.

    Bottoms:
      0. scores:  (N, C) (trailing singleton dims allowed), higher is more likely.
      1. targets: dense, the scores' shape; a class is relevant where its target is > 0.
    Tops (scalars): precision@1, precision@k, recall@k, mAP over the batch's classes.
    No backward (metrics are not differentiated).
    """

    def setup(self, bottom, top) -> None:
        self.k = multilabel_metrics_params(self.param_str)["k"]
        if len(bottom) != 2 or len(top) != 4:
            raise ValueError(
                f"{LAYER}: needs 2 bottoms (scores, targets) and 4 tops (precision_at_1, "
                f"precision_at_k, recall_at_k, map); got {len(bottom)} and {len(top)}"
            )

    def reshape(self, bottom, top) -> None:
        scores, targets = bottom[0].data, bottom[1].data
        if scores.reshape(scores.shape[0], -1).shape != targets.reshape(targets.shape[0], -1).shape:
            raise ValueError(
                f"{LAYER}: bottom[1] (targets) has shape {targets.shape}; expected dense targets "
                f"of the scores' shape {scores.shape}"
            )
        for index in range(len(top)):  # pycaffe's blob vectors can be indexed, not iterated
            top[index].reshape()

    def forward(self, bottom, top) -> None:
        # scores, targets: (N, C, ...) -> (N, C)
        scores = bottom[0].data.reshape(bottom[0].data.shape[0], -1)
        targets = bottom[1].data.reshape(scores.shape)
        values = metrics.summary(scores, targets, self.k)
        for index, value in enumerate(values.values()):
            top[index].data[...] = value

    def backward(self, top, propagate_down, bottom) -> None:
        for index, needed in enumerate(propagate_down):
            if needed:
                bottom[index].diff[...] = 0.0
