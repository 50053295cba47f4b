"""Errors about the bottoms and the loss weight, through real caffe.Nets: non-finite scores,
the number of bottoms, label weights (shape, values), a zero loss weight in the TRAIN phase.
The table-driven cases (param_str, shapes, target values) are in test_errors.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from nets import input_layer, net, softmax_loss_layer

from python_layers.labels import PADDING

pytestmark = pytest.mark.caffe

P = "SoftmaxLossLayer: "


def test_non_finite_scores_raise_floating_point_error_naming_the_bottom(make_net):
    n = make_net(
        net(input_layer(scores=(2, 3), targets=(2, 3)), softmax_loss_layer("scores", "targets"))
    )
    n.blobs["scores"].data[...] = [[0, 1, 2], [0, np.inf, 1]]
    n.blobs["targets"].data[...] = [[1, 0, 0], [0, 0, 1]]
    with pytest.raises(
        FloatingPointError,
        match=P + r"bottom\[0\] \(scores\) holds 1 non-finite "
        r"value\(s\), the first inf at \(1, 1\)",
    ):
        n.forward()


def test_wrong_number_of_bottoms(make_net):
    prototxt = net(
        input_layer(scores=(2, 3)),
        softmax_loss_layer("scores", None),
    )
    with pytest.raises(
        ValueError,
        match=P
        + r"needs 2 bottoms \(scores, targets\) or 3 \(scores, labels, label_weights\), got 1",
    ):
        make_net(prototxt)


def _three_bottoms(make_net, weights_shape, **params):
    return make_net(
        net(
            input_layer(scores=(2, 3), labels=(2, 2), weights=weights_shape),
            softmax_loss_layer("scores", "labels", extra_bottoms=("weights",), **params),
        )
    )


def test_a_third_bottom_needs_label_lists(make_net):
    with pytest.raises(
        ValueError,
        match=P + r'a third bottom \(label_weights\) needs "targets": "labels" in param_str; '
        r'got "targets": "auto"',
    ):
        _three_bottoms(make_net, (2, 2))


def test_label_weights_must_have_the_labels_shape(make_net):
    with pytest.raises(
        ValueError,
        match=P + r"bottom\[2\] \(label_weights\) has shape \(2, 3\); expected the labels' "
        r"shape \(2, 2\)",
    ):
        _three_bottoms(make_net, (2, 3), targets="labels")


@pytest.mark.parametrize(
    "weights,message",
    [
        ([[1, -2], [1, 1]], r"holds -2\.0 at position \(0, 1\); label weights must be finite"),
        ([[1, 1], [np.inf, 1]], r"holds inf at position \(1, 0\)"),
        ([[np.nan, 1], [1, 1]], r"holds nan at position \(0, 0\)"),
    ],
)
def test_bad_label_weights_raise_at_forward_and_write_nothing(make_net, weights, message):
    n = _three_bottoms(make_net, (2, 2), targets="labels")
    n.blobs["loss"].data[...] = 123.0
    n.blobs["labels"].data[...] = [[0, 1], [2, PADDING]]
    n.blobs["weights"].data[...] = weights
    with pytest.raises(ValueError, match=P + r"bottom\[2\] \(label_weights\) " + message):
        n.forward()
    assert float(n.blobs["loss"].data) == 123.0


def _zero_weight_net(make_net, caffe, phase, **params):
    n = make_net(
        net(
            input_layer(scores=(4, 3), targets=(4,)),
            softmax_loss_layer("scores", "targets", loss_weight=0, **params),
        ),
        getattr(caffe, phase),
    )
    n.blobs["scores"].data[...] = np.arange(12).reshape(4, 3) / 10
    n.blobs["targets"].data[...] = [0, 1, 2, 1]
    return n


def test_a_zero_loss_weight_in_train_is_an_error_naming_the_fix(caffe, make_net):
    """Issue 18.3: without `loss_weight: 1` (a Python layer's default is 0) nothing trains,
    and Caffe only says "loss does not need backward computation"."""
    n = _zero_weight_net(make_net, caffe, "TRAIN")
    with pytest.raises(
        ValueError,
        match=P + r"loss_weight is 0 in the TRAIN phase, so Caffe computes no gradient.*"
        r"Add `loss_weight: 1` to the layer.*'\"allow_zero_loss_weight\": true' to param_str",
    ):
        n.forward()


@pytest.mark.parametrize(
    "phase,params", [("TEST", {}), ("TRAIN", {"allow_zero_loss_weight": True})]
)
def test_a_zero_loss_weight_is_fine_in_test_or_when_asked_for(caffe, make_net, phase, params):
    n = _zero_weight_net(make_net, caffe, phase, **params)
    for _ in range(2):
        assert float(n.forward()["loss"]) > 0
