"""SoftmaxLossLayer through real caffe.Nets: against Caffe's native layers where they overlap,
against the float64 oracle where they don't. Gradient checks: test_softmax_loss_gradients.py."""

from __future__ import annotations

import numpy as np
import pytest
from loss_cases import khot
from nets import input_layer, native_softmax_loss_layer, net, softmax_loss_layer
from oracle import reference, reference_target_grad

from python_layers.loss.options import NORMALIZATIONS

pytestmark = pytest.mark.caffe


def labels_for(rng, shape, classes, ignore_label=None):
    labels = rng.integers(0, classes, shape).astype(np.float32)
    if ignore_label is not None:
        labels.flat[::3] = ignore_label
    return labels


# (scores shape, labels shape, class axis)
INDEX_CASES = [((6, 7), (6,), 1), ((2, 5, 3, 4), (2, 1, 3, 4), 1), ((3, 4, 6), (3, 4), 2)]
# The normalizations Caffe's LossParameter has (it aborts on another name): the native peer's.
CAFFE_NORMALIZATIONS = ("full", "valid", "batch_size", "none")


def test_every_caffe_normalization_is_ours():
    assert set(CAFFE_NORMALIZATIONS) <= set(NORMALIZATIONS)


@pytest.mark.parametrize("normalization", CAFFE_NORMALIZATIONS)
@pytest.mark.parametrize("ignore_label", [None, 1])
@pytest.mark.parametrize("loss_weight", [1.0, 3.7])
@pytest.mark.parametrize("scores_shape,labels_shape,axis", INDEX_CASES)
@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
def test_index_targets_equal_native_softmax_with_loss(
    caffe,
    make_net,
    rng,
    normalization,
    ignore_label,
    loss_weight,
    scores_shape,
    labels_shape,
    axis,
    phase,
):
    """Same net, same blobs: our layer on (ours, label), Caffe's on (native, label_copy).

    TRAIN computes the gradient during forward; TEST computes it in backward."""
    params = dict(normalization=normalization, axis=axis)
    if ignore_label is not None:
        params["ignore_label"] = ignore_label
    n = make_net(
        net(
            input_layer(
                ours=scores_shape, native=scores_shape, label=labels_shape, label_copy=labels_shape
            ),
            softmax_loss_layer("ours", "label", loss_weight=loss_weight, **params),
            native_softmax_loss_layer(
                "native",
                "label_copy",
                normalization=normalization,
                ignore_label=ignore_label,
                axis=axis,
                loss_weight=loss_weight,
            ),
        ),
        phase=getattr(caffe, phase),
    )
    scores = rng.normal(0, 3, scores_shape).astype(np.float32)
    labels = labels_for(rng, labels_shape, scores_shape[axis], ignore_label)
    n.blobs["ours"].data[...] = n.blobs["native"].data[...] = scores
    n.blobs["label"].data[...] = n.blobs["label_copy"].data[...] = labels
    out = n.forward()
    n.backward()
    np.testing.assert_allclose(out["loss"], out["native_loss"], rtol=1e-5)
    np.testing.assert_allclose(n.blobs["ours"].diff, n.blobs["native"].diff, rtol=0, atol=1e-6)
    assert np.abs(n.blobs["ours"].diff).max() > 1e-3  # the comparison compared something


def test_prob_top_equals_native_softmax(make_net, rng):
    shape = (4, 6, 3)
    n = make_net(
        net(
            input_layer(scores=shape, label=(4, 3)),
            softmax_loss_layer("scores", "label", tops=("loss", "prob")),
            'layer { name: "softmax" type: "Softmax" bottom: "scores" top: "native_prob" }\n',
        )
    )
    n.blobs["scores"].data[...] = rng.normal(0, 4, shape)
    n.blobs["label"].data[...] = labels_for(rng, (4, 3), 6)
    n.forward()
    np.testing.assert_allclose(n.blobs["prob"].data, n.blobs["native_prob"].data, atol=1e-7)


def real_valued(rng, shape):
    targets = khot(shape, k_max=4, rng=rng) * rng.uniform(0.1, 3, shape).astype(np.float32)
    targets[1] = 0  # a position that sums to 0: ignored
    return targets


DENSE_OPTIONS = [
    dict(),
    dict(normalize_targets=False),
    dict(label_smoothing=0.1),
    dict(class_weights=[0.5, 1, 2, 0, 1.5]),
    dict(normalization="full", label_smoothing=0.3, class_weights=[1, 2, 3, 4, 5]),
    dict(normalization="batch_size", normalize_targets=False),
    dict(normalization="none"),
]


@pytest.mark.parametrize("options", DENSE_OPTIONS, ids=lambda o: json_id(o))
@pytest.mark.parametrize("kind", ["khot", "real"])
@pytest.mark.parametrize("loss_weight", [1.0, 2.5])
def test_dense_targets_equal_float64_oracle(make_net, rng, options, kind, loss_weight):
    shape = (6, 5)
    n = make_net(
        net(
            input_layer(scores=shape, targets=shape),
            softmax_loss_layer("scores", "targets", loss_weight=loss_weight, **options),
        )
    )
    scores = rng.normal(0, 3, shape).astype(np.float32)
    targets = khot(shape, rng=rng) if kind == "khot" else real_valued(rng, shape)
    n.blobs["scores"].data[...] = scores
    n.blobs["targets"].data[...] = targets
    loss = float(n.forward()["loss"])
    n.backward()
    ref_loss, ref_grad, _ = reference(scores, targets, **options)
    assert loss == pytest.approx(ref_loss, rel=1e-5)
    np.testing.assert_allclose(n.blobs["scores"].diff, loss_weight * ref_grad, rtol=1e-4, atol=1e-6)
    ref_target_grad = reference_target_grad(scores, targets, **options)
    valid = targets.sum(axis=1) > 0  # the oracle's finite differences are meaningless at 0 rows
    np.testing.assert_allclose(
        n.blobs["targets"].diff[valid], loss_weight * ref_target_grad[valid], rtol=1e-3, atol=1e-5
    )


@pytest.mark.parametrize("options", DENSE_OPTIONS[:4], ids=lambda o: json_id(o))
def test_distillation_over_iterations_in_train_phase(caffe, make_net, rng, options):
    """TRAIN phase, three iterations with new data each time; the bottoms' diffs hold garbage
    before backward (issue 18: backward once rescaled what forward had written there), and
    a loss weight changed between forward and backward is honoured for both gradients."""
    shape = (6, 5)
    n = make_net(
        net(
            input_layer(scores=shape, targets=shape),
            softmax_loss_layer("scores", "targets", loss_weight=1.5, **options),
        ),
        caffe.TRAIN,
    )
    for iteration in range(3):
        scores = rng.normal(0, 3, shape).astype(np.float32)
        targets = real_valued(rng, shape)
        n.blobs["scores"].data[...] = scores
        n.blobs["targets"].data[...] = targets
        n.forward()
        n.blobs["scores"].diff[...] = (0.0, np.nan, 1e30)[iteration]
        n.blobs["targets"].diff[...] = (np.nan, 0.0, -3.0)[iteration]
        weight = 1.5 if iteration < 2 else 4.0
        n.blobs["loss"].diff[...] = weight  # iteration 2: changed after forward
        n.backward()
        _, ref_grad, _ = reference(scores, targets, **options)
        np.testing.assert_allclose(n.blobs["scores"].diff, weight * ref_grad, rtol=1e-4, atol=1e-6)
        expected = weight * reference_target_grad(scores, targets, **options)
        expected[1] = 0  # the zero row: a kink for the oracle; the layer's convention is 0
        np.testing.assert_allclose(n.blobs["targets"].diff, expected, rtol=1e-3, atol=1e-5)


def json_id(options):
    return ",".join(f"{k}={v}" for k, v in options.items()) or "defaults"


def test_dense_prediction_shape_and_hdf5_style_labels(make_net, rng):
    """(N, C) dense labels fit (N, C, 1, 1) scores; (N, C, H, W) dense maps work too."""
    n = make_net(
        net(
            input_layer(
                flat=(3, 4, 1, 1), flat_targets=(3, 4), maps=(2, 4, 3, 3), map_targets=(2, 4, 3, 3)
            ),
            softmax_loss_layer("flat", "flat_targets", name="flat_loss", tops=("flat_loss",)),
            softmax_loss_layer("maps", "map_targets", name="map_loss", tops=("map_loss",)),
        )
    )
    for scores, targets in (("flat", "flat_targets"), ("maps", "map_targets")):
        n.blobs[scores].data[...] = rng.normal(0, 2, n.blobs[scores].data.shape)
        n.blobs[targets].data[...] = khot(n.blobs[targets].data.shape, rng=rng)
    out = n.forward()
    for scores, targets, top in (
        ("flat", "flat_targets", "flat_loss"),
        ("maps", "map_targets", "map_loss"),
    ):
        expected = reference(
            n.blobs[scores].data, n.blobs[targets].data.reshape(n.blobs[scores].data.shape)
        )[0]
        assert float(out[top]) == pytest.approx(expected, rel=1e-5)


def test_huge_logits_give_finite_loss_and_gradients(make_net):
    n = make_net(
        net(input_layer(scores=(3, 4), targets=(3, 4)), softmax_loss_layer("scores", "targets"))
    )
    n.blobs["scores"].data[...] = [[1e4, -1e4, 0, 5e3], [-1e4] * 4, [1e4, 1e4, -1e4, 0]]
    n.blobs["targets"].data[...] = [[0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 1, 0]]
    loss = float(n.forward()["loss"])
    n.backward()
    assert np.isfinite(loss) and np.isfinite(n.blobs["scores"].diff).all()
    assert loss == pytest.approx(((2e4 + 5e3) / 2 + np.log(4) + 2e4 + np.log(2)) / 3, rel=1e-6)
