"""What Caffe really asks of a Python loss layer about its targets' gradient (the README's
"Gradients to the targets" section), through real nets: Input data -> InnerProduct -> scores,
dense targets from an Input layer (data, as in training)."""

from __future__ import annotations

import numpy as np
import pytest
from nets import input_layer, net, softmax_loss_layer

pytestmark = pytest.mark.caffe
SENTINEL = 5.0  # written to the targets' diff before backward: still there = not asked


def build(make_net, caffe, rng, force_backward: bool, propagate_down=None, **params):
    loss = softmax_loss_layer("scores", "targets", propagate_down=propagate_down or (), **params)
    prototxt = net(
        input_layer(data=(4, 3), targets=(4, 5)),
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "scores"\n'
        '  inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 1 } } }\n',
        loss,
        force_backward=force_backward,
    )
    n = make_net(prototxt, caffe.TRAIN)
    n.blobs["data"].data[...] = rng.normal(size=(4, 3))
    n.blobs["targets"].data[...] = rng.uniform(0, 1, (4, 5)) * (rng.uniform(size=(4, 5)) < 0.5)
    n.blobs["targets"].data[:, 0] += 1
    n.blobs["targets"].diff[...] = SENTINEL
    n.forward()
    n.backward()
    return n


def asked_for_targets(n) -> bool:
    return not (n.blobs["targets"].diff == SENTINEL).all()


def test_without_force_backward_caffe_does_not_ask_for_data_targets(caffe, make_net, rng):
    n = build(make_net, caffe, rng, force_backward=False)
    assert not asked_for_targets(n)
    assert n.params["ip"][0].diff.any()  # the scores' gradient did flow


def test_force_backward_asks_for_the_targets_even_with_propagate_down_false(caffe, make_net, rng):
    """Net::Init ORs force_backward into every bottom of a layer that allows forced backward,
    and a Python layer always does: propagate_down: false is overridden."""
    n = build(make_net, caffe, rng, force_backward=True, propagate_down=(True, False))
    assert asked_for_targets(n)
    assert np.abs(n.blobs["targets"].diff).max() > 1e-3  # the real, exact gradient


def test_target_gradient_false_is_the_opt_out_that_works(caffe, make_net, rng):
    n = build(
        make_net,
        caffe,
        rng,
        force_backward=True,
        propagate_down=(True, False),
        target_gradient=False,
    )
    assert not n.blobs["targets"].diff.any()  # zeros: nothing computed, nothing stale
    assert n.params["ip"][0].diff.any()


def test_propagate_down_false_on_the_scores_is_obeyed_without_force_backward(caffe, make_net, rng):
    n = build(make_net, caffe, rng, force_backward=False, propagate_down=(False, False))
    assert not n.params["ip"][0].diff.any()
