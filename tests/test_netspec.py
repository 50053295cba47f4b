"""The NetSpec helper writes a layer whose param_str the layer accepts and that runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from python_layers.labels import PADDING

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


def test_helpers_take_label_lists_with_weights(caffe, make_net):
    from caffe import layers as L

    from python_layers.netspec import multilabel_metrics, softmax_loss

    n = caffe.NetSpec()
    n.scores, n.labels, n.label_weights = L.Input(
        shape=[dict(dim=[2, 4]), dict(dim=[2, 3]), dict(dim=[2, 3])], ntop=3
    )
    n.loss = softmax_loss(n.scores, n.labels, n.label_weights, targets="labels")
    n.p1, n.pk, n.rk, n.map = multilabel_metrics(
        n.scores, n.labels, n.label_weights, k=2, targets="labels", test_only=False
    )
    proto = n.to_proto()
    assert [list(layer.bottom) for layer in proto.layer[1:]] == [
        ["scores", "labels", "label_weights"]
    ] * 2
    net = make_net(str(proto))
    net.blobs["scores"].data[...] = [[0, 0, 0, 5], [0, 9, 0, 0]]
    net.blobs["labels"].data[...] = [[3, 0, PADDING], [1, PADDING, PADDING]]
    net.blobs["label_weights"].data[...] = [[1, 1, 0], [2, 0, 0]]
    out = net.forward()
    uniform_but_3 = np.log(3 + np.exp(5))
    expected = ((uniform_but_3 - 5) + uniform_but_3) / 2 / 2  # row 0: t = (1/2, 0, 0, 1/2)
    expected += (np.log(3 + np.exp(9)) - 9) / 2  # row 1: t = e_1
    assert float(out["loss"]) == pytest.approx(expected, rel=1e-5)
    assert float(out["p1"]) == 1.0


def test_helpers_refuse_weights_without_label_lists(caffe):
    from python_layers.netspec import softmax_loss

    with pytest.raises(ValueError, match='a label_weights bottom needs targets="labels"'):
        softmax_loss("s", "l", "w")
