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

from .loss.bottoms import NETSPEC, check_bottoms
from .params import multilabel_data_params, multilabel_metrics_params, softmax_loss_params


def param_str(**params: Any) -> str:
    """JSON for ``python_param.param_str``; numpy arrays and scalars become plain lists/numbers.

    Keys are sorted so that generated prototxt files are stable.
    """
    plain = {k: v.tolist() if hasattr(v, "tolist") else v for k, v in params.items()}
    return json.dumps(plain, sort_keys=True)


def softmax_loss(
    scores, targets, label_weights=None, /, *, loss_weight: float = 1, ntop: int = 1, **params: Any
):
    """A ``SoftmaxLossLayer`` on ``scores`` and ``targets``; ``params`` are its param_str keys.

    For label lists pass ``targets="labels"`` (the param_str key) and, optionally, the weights
    top as the third argument. The keys are checked here, so a typo fails when the net is
    written, not when it runs. ``ntop=2`` also returns the ``prob`` top (with loss weight 0).
    """
    text = _checked(softmax_loss_params, label_weights, **params)
    return L.Python(
        *_bottoms(scores, targets, label_weights),
        python_param=dict(
            module="python_layers.softmax_loss", layer="SoftmaxLossLayer", param_str=text
        ),
        loss_weight=[loss_weight] + [0] * (ntop - 1),
        ntop=ntop,
    )


def multilabel_metrics(
    scores, targets, label_weights=None, /, *, k: int = 3, test_only: bool = True, **params: Any
):
    """A ``MultiLabelMetricsLayer``: tops precision@1, precision@k, recall@k, mAP.

    ``params``: its other param_str keys (``targets="labels"`` for label lists, with the
    optional weights top as the third argument). ``test_only`` adds
    ``include { phase: TEST }`` (the usual place for metrics).
    """
    text = _checked(multilabel_metrics_params, label_weights, k=k, **params)
    extra = {"include": dict(phase=caffe_pb2.TEST)} if test_only else {}
    return L.Python(
        *_bottoms(scores, targets, label_weights),
        python_param=dict(
            module="python_layers.multilabel_metrics",
            layer="MultiLabelMetricsLayer",
            param_str=text,
        ),
        ntop=4,
        **extra,
    )


def multilabel_image_data(ntop: int = 2, phase=None, name: str = "image_data", **params: Any):
    """A ``MultiLabelImageDataLayer`` (tops: data, labels[, label_weights]); ``params`` are its
    param_str keys (``source``, ``classes``, ``batch_size``, ...), checked here. Its state blob
    gets ``param { lr_mult: 0 decay_mult: 0 }``; ``phase`` adds ``include { phase: ... }``.

    The layer is named ``name``, not after its first top: Caffe loads weights by layer name,
    and a deploy net's ``Input`` layer named "data" cannot take this layer's parameter blob.
    """
    text = param_str(**params)
    multilabel_data_params(text)
    extra = {} if phase is None else {"include": dict(phase=phase)}
    return L.Python(
        name=name,
        python_param=dict(
            module="python_layers.multilabel_data",
            layer="MultiLabelImageDataLayer",
            param_str=text,
        ),
        param=[dict(lr_mult=0, decay_mult=0)],
        ntop=ntop,
        **extra,
    )


def _checked(parse, label_weights, **params: Any) -> str:
    """The param_str, checked as the layer will check it (same ValueError, raised now)."""
    text = param_str(**params)
    count = 2 if label_weights is None else 3  # the shapes are not known yet
    check_bottoms(parse(text)["targets"], [None] * count, NETSPEC)
    return text


def _bottoms(scores, targets, label_weights) -> tuple:
    return (scores, targets) if label_weights is None else (scores, targets, label_weights)
