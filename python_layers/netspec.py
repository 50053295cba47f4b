"""NetSpec helpers: build the package's layers with a correct JSON ``param_str``.

from caffe import layers as L
from python_layers.netspec import softmax_loss
n.loss = softmax_loss(n.scores, n.label, label_smoothing=0.1)
"""

from __future__ import annotations

import json
from typing import Any

from caffe import layers as L
from caffe.proto import caffe_pb2

from .params import multilabel_metrics_params, softmax_loss_params


def param_str(**params: Any) -> str:
    """JSON for ``python_param.param_str``; numpy arrays and scalars become plain lists/numbers.

    Keys are sorted so that generated prototxt files are stable.
    """
    plain = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in params.items()}
    return json.dumps(plain, sort_keys=True)


def softmax_loss(scores, targets, loss_weight: float = 1, ntop: int = 1, **params: Any):
    """A ``SoftmaxLossLayer`` on ``scores`` and ``targets``; ``params`` are its param_str keys.

    The keys are checked here, so a typo fails when the net is written, not when it runs.
    ``ntop=2`` also returns the ``prob`` top (with loss weight 0).
    """
    text = param_str(**params)
    softmax_loss_params(text)  # raises the same ValueError the layer would
    return L.Python(
        scores,
        targets,
        python_param=dict(
            module="python_layers.softmax_loss", layer="SoftmaxLossLayer", param_str=text
        ),
        loss_weight=[loss_weight] + [0] * (ntop - 1),
        ntop=ntop,
    )


def multilabel_metrics(scores, targets, k: int = 3, test_only: bool = True):
    """A ``MultiLabelMetricsLayer``: tops precision@1, precision@k, recall@k, mAP.

    ``test_only`` adds ``include { phase: TEST }`` (the usual place for metrics).
    """
    text = param_str(k=k)
    multilabel_metrics_params(text)
    extra = {"include": dict(phase=caffe_pb2.TEST)} if test_only else {}
    return L.Python(
        scores,
        targets,
        python_param=dict(
            module="python_layers.multilabel_metrics",
            layer="MultiLabelMetricsLayer",
            param_str=text,
        ),
        ntop=4,
        **extra,
    )
