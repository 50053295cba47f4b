"""Label-list targets ("targets": "labels"): (N, K) class indices padded with -1, optional
(N, K) weights. They mean the dense targets t_c = sum_j w_j [label_j == c], so every test
compares them with the same loss fed those dense targets: the float64 oracle for the math,
the same layer with dense targets for real caffe.Nets."""

from __future__ import annotations

import numpy as np
import pytest
from nets import input_layer, net, softmax_loss_layer
from oracle import reference, reference_target_grad

from python_layers import softmax_math as sm
from python_layers.labels import PADDING
from python_layers.loss.engine import SoftmaxCrossEntropy
from python_layers.loss.forms import DENSE, LABEL_LISTS, layout_for
from python_layers.loss.options import NORMALIZATIONS
from python_layers.testing import check_gradients


def label_case(rng, rows=9, classes=12, width=5, weighted=True):
    """Label lists with every awkward row: duplicates, padding in the middle, no labels at
    all, all weights 0, and full rows; plus weights and the equivalent dense targets."""
    labels = np.full((rows, width), PADDING, np.float32)
    for r in range(rows):
        k = rng.integers(1, width + 1)
        labels[r, :k] = rng.choice(classes, size=k, replace=True)  # duplicates happen
    labels[1] = PADDING  # a row with no labels: ignored
    labels[2, :3] = [4, PADDING, 4]  # padding between labels, a class listed twice
    if not weighted:
        labels[3] = PADDING  # (the weighted case's row 3 is ignored: keep the rows alike)
        return labels, None, densify(labels, None, classes)
    weights = rng.uniform(0.1, 2.0, labels.shape).astype(np.float32)
    weights[3] = 0  # all weights 0: ignored like a zero dense row
    return labels, weights, densify(labels, weights, classes)


def densify(labels, weights, classes):
    dense = np.zeros((labels.shape[0], classes))
    for (r, j), label in np.ndenumerate(labels):
        if label != PADDING:
            dense[r, int(label)] += 1.0 if weights is None else weights[r, j]
    return dense.astype(np.float32)


# --- The math, against the float64 oracle (both drivers: serial, parallel) ------------------


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("normalize_targets", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("class_weighted", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_label_lists_match_the_oracle_on_the_dense_targets(
    engine_path, rng, normalization, normalize_targets, smoothing, class_weighted, weighted
):
    labels, weights, dense = label_case(rng, weighted=weighted)
    scores = rng.normal(0, 3, dense.shape).astype(np.float32)
    options = dict(
        normalization=normalization,
        normalize_targets=normalize_targets,
        label_smoothing=smoothing,
        class_weights=rng.uniform(0, 3, dense.shape[1]) if class_weighted else None,
    )
    ours = sm.softmax_cross_entropy(
        scores, labels, weights, targets_form="labels", with_target_grad=True, **options
    )
    loss, grad, probs = reference(scores, dense, **options)
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.score_grad, grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.probs, probs, rtol=1e-5, atol=1e-7)
    assert not ours.score_grad[[1, 3]].any()  # no labels, or all weights 0: ignored
    # d loss / d w_j is the dense targets' gradient at label_j (0 for padding, and 0 on an
    # ignored row, where the loss has a kink: the convention of the dense target gradient)
    dense_grad = reference_target_grad(scores, dense, **options)
    expected = np.zeros(labels.shape)
    for (r, j), label in np.ndenumerate(labels):
        if label != PADDING and dense[r].sum() > 0:
            expected[r, j] = dense_grad[r, int(label)]
    np.testing.assert_allclose(ours.target_grad, expected, rtol=1e-3, atol=1e-5)


def test_index_targets_are_label_lists_of_one(engine_path, rng):
    scores = rng.normal(0, 3, (20, 30)).astype(np.float32)
    index = rng.integers(0, 30, 20).astype(np.float32)
    as_index = sm.softmax_cross_entropy(scores, index, label_smoothing=0.1)
    as_list = sm.softmax_cross_entropy(
        scores, index[:, None], targets_form="labels", label_smoothing=0.1
    )
    assert as_list.loss == pytest.approx(as_index.loss, rel=1e-6)
    np.testing.assert_allclose(as_list.score_grad, as_index.score_grad, atol=1e-7)


def test_label_lists_never_build_a_dense_target_array(rng):
    """Allocation per call does not grow with C (no (N, C) targets); the fused path."""
    import tracemalloc

    sizes = {}
    for classes in (1000, 16000):
        scores = rng.normal(0, 1, (64, classes)).astype(np.float32)
        labels, weights, _ = label_case(rng, 64, classes, 8)
        layout = layout_for(scores.shape, labels.shape, form="labels")
        loss = SoftmaxCrossEntropy()
        grad = np.empty_like(scores)
        loss(scores, labels, layout, label_weights=weights, grad_out=grad)  # buffers, compile
        tracemalloc.start()
        loss(scores, labels, layout, label_weights=weights, grad_out=grad)
        sizes[classes] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # the kept exp(s - max) for backward (the scores' size, as Caffe's prob_), per-row and
        # per-label buffers, and C-sized vectors: class weights of 1 and a row of kernel
        # scratch per thread; no (N, C) targets
        vectors = 1 + loss.threads
        assert loss.retained_bytes() < scores.nbytes + 64 * 8 * 64 + 4 * classes * vectors
    assert sizes[16000] <= sizes[1000] + 1024, sizes


@pytest.mark.parametrize(
    "labels,weights,message",
    [
        (
            [[0, 5]],
            None,
            r"bottom\[1\] \(labels\) holds 5\.0 at position \(0, 1\); a label list "
            r"holds integers in \[0, 4\), padded with -1",
        ),
        ([[0, -2]], None, r"bottom\[1\] \(labels\) holds -2\.0 at position \(0, 1\)"),
        ([[1.5, PADDING]], None, r"bottom\[1\] \(labels\) holds 1\.5 at position \(0, 0\)"),
        (
            [[0, 1]],
            [[1, -0.5]],
            r"bottom\[2\] \(label_weights\) holds -0\.5 at position \(0, 1\); "
            r"label weights must be finite and >= 0",
        ),
        ([[0, 1]], [[np.nan, 1]], r"bottom\[2\] \(label_weights\) holds nan at position \(0, 0\)"),
        ([[0, 1]], [[1, np.inf]], r"bottom\[2\] \(label_weights\) holds inf at position \(0, 1\)"),
    ],
)
def test_bad_label_lists_are_named_and_nothing_is_written(engine_path, labels, weights, message):
    scores = np.zeros((1, 4), np.float32)
    labels = np.asarray(labels, np.float32)
    layout = layout_for(scores.shape, labels.shape, form="labels")
    grad = np.full_like(scores, 7.0)
    with pytest.raises(ValueError, match=message):
        SoftmaxCrossEntropy()(
            scores,
            labels,
            layout,
            label_weights=None if weights is None else np.asarray(weights, np.float32),
            grad_out=grad,
        )
    assert (grad == 7.0).all()


def test_label_lists_are_never_guessed_from_the_shape():
    with pytest.raises(ValueError, match=r"does not fit scores of shape \(4, 5\)"):
        layout_for((4, 5), (4, 3))  # auto: neither dense nor index
    assert layout_for((4, 5), (4, 5)).form is DENSE  # K = C stays dense by default
    assert layout_for((4, 5), (4, 5), form="labels").form is LABEL_LISTS
    assert layout_for((4, 5, 1, 1), (4, 3, 1, 1), form="labels").labels_per_row == 3
    assert layout_for((4, 5), (4,), form="labels").labels_per_row == 1


# --- Through real caffe.Nets ----------------------------------------------------------------


def twin_nets(make_net, caffe, rng, labels, weights, dense, loss_weight, phase, **params):
    """A net with the layer on label lists and the same layer on the equivalent dense targets;
    each loss on its own copy of the scores, force_backward so every bottom gets a gradient."""
    shapes = dict(
        scores_l=dense.shape, scores_d=dense.shape, labels=labels.shape, dense=dense.shape
    )
    extra = ()
    if weights is not None:
        shapes["weights"] = labels.shape
        extra = ("weights",)
    prototxt = net(
        input_layer(**shapes),
        softmax_loss_layer(
            "scores_l",
            "labels",
            tops=("loss_l",),
            name="on_lists",
            loss_weight=loss_weight,
            extra_bottoms=extra,
            targets="labels",
            **params,
        ),
        softmax_loss_layer(
            "scores_d",
            "dense",
            tops=("loss_d",),
            name="on_dense",
            loss_weight=loss_weight,
            targets="dense",
            **params,
        ),
    )
    n = make_net(prototxt, getattr(caffe, phase))
    scores = rng.normal(0, 2, dense.shape).astype(np.float32)
    n.blobs["scores_l"].data[...] = scores
    n.blobs["scores_d"].data[...] = scores
    n.blobs["labels"].data[...] = labels
    n.blobs["dense"].data[...] = dense
    if weights is not None:
        n.blobs["weights"].data[...] = weights
    return n


@pytest.mark.caffe
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize(
    "options",
    [{}, {"normalize_targets": False}, {"label_smoothing": 0.1}, {"class_weights": "random"}],
    ids=["default", "unnormalised", "smoothing", "class-weights"],
)
@pytest.mark.parametrize("loss_weight", [1.0, 2.5])
@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
@pytest.mark.parametrize("weighted", [False, True])
def test_label_lists_equal_the_same_layer_on_dense_targets(
    caffe, make_net, rng, normalization, options, loss_weight, phase, weighted
):
    labels, weights, dense = label_case(rng, weighted=weighted)
    if options.get("class_weights") == "random":
        options = {"class_weights": rng.uniform(0, 3, dense.shape[1]).round(3).tolist()}
    n = twin_nets(
        make_net,
        caffe,
        rng,
        labels,
        weights,
        dense,
        loss_weight,
        phase,
        normalization=normalization,
        **options,
    )
    out = n.forward()
    n.backward()
    assert float(out["loss_l"]) == pytest.approx(float(out["loss_d"]), rel=1e-5, abs=1e-7)
    np.testing.assert_allclose(n.blobs["scores_l"].diff, n.blobs["scores_d"].diff, atol=1e-6)
    assert not n.blobs["labels"].diff.any()  # labels are not differentiable
    if weights is not None:  # d loss / d w_j = d loss / d t at label_j
        expected = np.zeros(labels.shape, np.float32)
        for (r, j), label in np.ndenumerate(labels):
            if label != PADDING:
                expected[r, j] = n.blobs["dense"].diff[r, int(label)]
        np.testing.assert_allclose(n.blobs["weights"].diff, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.caffe
def test_gradient_checker_on_scores_and_label_weights(make_net, rng):
    labels, weights, dense = label_case(rng, rows=5, classes=6, width=4)
    n = make_net(
        net(
            input_layer(scores=dense.shape, labels=labels.shape, weights=labels.shape),
            softmax_loss_layer(
                "scores",
                "labels",
                extra_bottoms=("weights",),
                targets="labels",
                label_smoothing=0.1,
            ),
        )
    )
    n.blobs["scores"].data[...] = rng.normal(0, 1, dense.shape)
    n.blobs["labels"].data[...] = labels
    n.blobs["weights"].data[...] = weights + 0.5  # away from 0, where the sum has a kink
    assert check_gradients(n, "loss", bottoms=(0, 2), max_elements=20) == []


@pytest.mark.caffe
@pytest.mark.parametrize("kind", ["dense", "labels"])
def test_target_gradient_false_writes_zeros_under_force_backward(make_net, rng, kind):
    labels, weights, dense = label_case(rng)
    targets = dense if kind == "dense" else weights
    shapes = dict(scores=dense.shape, targets=targets.shape)
    extra = ()
    params = dict(target_gradient=False)
    if kind == "labels":
        shapes = dict(scores=dense.shape, labels=labels.shape, targets=labels.shape)
        extra, params["targets"] = ("targets",), "labels"
    first = "labels" if kind == "labels" else "targets"
    n = make_net(
        net(
            input_layer(**shapes),
            softmax_loss_layer("scores", first, extra_bottoms=extra, **params),
        )
    )
    n.blobs["scores"].data[...] = rng.normal(0, 1, dense.shape)
    n.blobs["targets"].data[...] = targets
    if kind == "labels":
        n.blobs["labels"].data[...] = labels
    n.blobs["targets"].diff[...] = 5.0
    n.forward()
    n.backward()
    assert not n.blobs["targets"].diff.any()
    assert n.blobs["scores"].diff.any()
