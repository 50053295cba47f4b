"""The NetSpec helper writes a layer whose param_str the layer accepts and that runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.caffe


def test_softmax_loss_helper_builds_a_working_layer(caffe, make_net):
    from caffe import layers as L

    from python_layers.netspec import softmax_loss

    n = caffe.NetSpec()
    n.scores, n.targets = L.Input(shape=[dict(dim=[3, 4]), dict(dim=[3, 4])], ntop=2)
    n.loss, n.prob = softmax_loss(
        n.scores, n.targets, loss_weight=2, ntop=2, class_weights=np.array([1, 2, 1, 1.0])
    )
    proto = n.to_proto()
    layer = proto.layer[-1]
    assert layer.python_param.layer == "SoftmaxLossLayer"
    assert json.loads(layer.python_param.param_str) == {"class_weights": [1.0, 2.0, 1.0, 1.0]}
    assert list(layer.loss_weight) == [2.0, 0.0]
    net = make_net("force_backward: true\n" + str(proto))
    net.blobs["scores"].data[...] = 0
    net.blobs["targets"].data[...] = np.eye(4)[:3]
    loss = float(net.forward()["loss"])
    assert loss == pytest.approx(np.log(4) * (1 + 2 + 1) / 3)  # uniform p; class 1 weighs 2


def test_softmax_loss_helper_rejects_bad_keys_early(caffe):
    from python_layers.netspec import softmax_loss

    with pytest.raises(ValueError, match=r"unknown param_str key.*'normalisation'"):
        softmax_loss(None, None, normalisation="valid")
