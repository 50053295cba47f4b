"""SoftmaxLossLayer's gradients through real caffe.Nets: the finite-difference gradient checker
(python_layers.testing.check_gradients) in TEST and TRAIN phase for every target form, a
layer it must catch, and no gradient to index targets. Values against Caffe's native layers
and the float64 oracle: test_softmax_loss_layer.py."""

from __future__ import annotations

import numpy as np
import pytest
from loss_cases import khot
from nets import input_layer, net, softmax_loss_layer

from python_layers.labels import PADDING
from python_layers.testing import check_gradients

pytestmark = pytest.mark.caffe


# (scores shape, targets shape, param_str, bottoms checked): every form and both kernels
TRAIN_CASES = {
    "dense-rows": ((4, 5), (4, 5), {}, (0, 1)),
    "dense-positions": ((2, 4, 3), (2, 4, 3), {"label_smoothing": 0.2}, (0, 1)),
    "index-rows": ((5, 4), (5,), {"class_weights": [1, 2, 0.5, 1]}, (0,)),
    "index-positions": ((2, 4, 3), (2, 3), {"ignore_label": 1}, (0,)),
    "lists": ((4, 6), (4, 3), {"targets": "labels", "label_smoothing": 0.1}, (0, 2)),
}


@pytest.mark.parametrize("name", TRAIN_CASES)
def test_gradient_checker_passes_in_the_train_phase(caffe, make_net, name):
    """Issue 18.2: TRAIN-phase nets with force_backward; the checker zeroes the bottoms' diffs
    between forward and backward (19 mismatches, all 0.0, before the fix)."""
    scores_shape, targets_shape, params, bottoms = TRAIN_CASES[name]
    lists = params.get("targets") == "labels"
    blobs = dict(scores=scores_shape, targets=targets_shape)
    if lists:
        blobs["weights"] = targets_shape
    n = make_net(
        net(
            input_layer(**blobs),
            softmax_loss_layer(
                "scores", "targets", extra_bottoms=("weights",) if lists else (), **params
            ),
        ),
        caffe.TRAIN,
    )
    rng = np.random.default_rng(11)
    n.blobs["scores"].data[...] = rng.normal(0, 1, scores_shape)
    classes = scores_shape[1]
    if scores_shape == targets_shape:
        n.blobs["targets"].data[...] = rng.uniform(0.2, 1, targets_shape)
    elif lists:
        n.blobs["targets"].data[...] = [
            [0, 3, PADDING],
            [5, PADDING, PADDING],
            [1, 2, 4],
            [2, 2, 0],
        ]
        n.blobs["weights"].data[...] = rng.uniform(0.5, 2, targets_shape)
    else:
        n.blobs["targets"].data[...] = rng.integers(0, classes, targets_shape)
    assert check_gradients(n, "loss", bottoms=bottoms) == []


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(label_smoothing=0.2, normalize_targets=False),
        dict(class_weights=[1, 0.5, 2, 1]),
    ],
)
def test_gradient_checker_passes_for_scores_and_dense_targets(make_net, rng, options):
    n = make_net(
        net(
            input_layer(scores=(3, 4, 2), targets=(3, 4, 2)),
            softmax_loss_layer("scores", "targets", **options),
        )
    )
    n.blobs["scores"].data[...] = rng.normal(0, 1, (3, 4, 2))
    n.blobs["targets"].data[...] = rng.uniform(0.2, 1, (3, 4, 2))
    assert check_gradients(n, "loss", bottoms=(0, 1)) == []


def test_gradient_checker_catches_a_layer_that_ignores_the_loss_weight(make_net, rng, monkeypatch):
    """The checker sets top diff 2: a backward that drops the loss weight must be caught."""
    from python_layers import softmax_loss

    def backward_without_weight(self, top, propagate_down, bottom):
        # the gradient for loss weight 1, whatever top[0].diff says
        saved = self.adapter.saved
        self.engine.backward(saved, bottom[0].data, bottom[1].data, grad_out=bottom[0].diff)

    monkeypatch.setattr(softmax_loss.SoftmaxLossLayer, "backward", backward_without_weight)
    n = make_net(
        net(input_layer(scores=(2, 3), targets=(2, 3)), softmax_loss_layer("scores", "targets"))
    )
    n.blobs["scores"].data[...] = rng.normal(0, 1, (2, 3))
    n.blobs["targets"].data[...] = khot((2, 3), rng=rng)
    assert len(check_gradients(n, "loss")) > 0


def test_index_targets_get_zero_gradient_under_force_backward(make_net, rng):
    n = make_net(net(input_layer(scores=(4, 3), label=(4,)), softmax_loss_layer("scores", "label")))
    n.blobs["scores"].data[...] = rng.normal(0, 1, (4, 3))
    n.blobs["label"].data[...] = [0, 1, 2, 1]
    n.blobs["label"].diff[...] = 7
    n.forward()
    n.backward()
    assert not n.blobs["label"].diff.any()
