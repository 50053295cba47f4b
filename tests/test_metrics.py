"""Multi-label metrics: the numpy functions and the Caffe layer against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from nets import input_layer, net
from sklearn.metrics import average_precision_score

from python_layers import metrics
from python_layers.labels import PADDING
from python_layers.testing import check_gradients


def random_case(rng, n=40, c=6, ties=False):
    scores = rng.normal(size=(n, c)).astype(np.float32)
    if ties:
        scores = np.round(scores, 1)  # many tied scores: AP must treat them as one threshold
    targets = (rng.uniform(size=(n, c)) < 0.3) * rng.uniform(0.1, 1, (n, c))
    targets[0, :] = 0  # a sample with nothing relevant
    return scores, targets.astype(np.float32)


@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_equals_sklearn(rng, ties):
    scores, targets = random_case(rng, ties=ties)
    for c in range(scores.shape[1]):
        expected = average_precision_score(targets[:, c] > 0, scores[:, c])
        assert metrics.average_precision(scores[:, c], targets[:, c] > 0) == pytest.approx(expected)
    expected_map = average_precision_score(targets > 0, scores, average="macro")
    assert metrics.mean_average_precision(scores, targets) == pytest.approx(expected_map)


def test_precision_and_recall_at_k_by_hand():
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.1, 0.2, 0.3, 0.9]])
    targets = np.array([[1, 0, 0.5, 0], [0, 0, 0, 1]])
    assert metrics.precision_at_k(scores, targets, 1) == 1.0
    assert metrics.precision_at_k(scores, targets, 2) == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert metrics.recall_at_k(scores, targets, 2) == pytest.approx((1 / 2 + 1) / 2)


def metrics_layer(param_str: str, bottoms=("scores", "targets")) -> str:
    bottom_lines = " ".join(f'bottom: "{b}"' for b in bottoms)
    return (
        f'layer {{ name: "metrics" type: "Python" {bottom_lines}\n'
        '  top: "p1" top: "pk" top: "rk" top: "map"\n'
        '  python_param { module: "python_layers.multilabel_metrics"\n'
        f"    layer: \"MultiLabelMetricsLayer\" param_str: '{param_str}' }} }}\n"
    )


def expected_metrics(scores, relevant, k):
    """Each top's value computed here, independently: sklearn's AP, sorting for the top k."""
    n = scores.shape[0]
    has_positive = relevant.any(axis=0)
    top1 = scores.argmax(axis=1)
    top_k = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    hits = np.take_along_axis(relevant, top_k, axis=1).sum(axis=1)
    rows = relevant.sum(axis=1) > 0
    return {
        "p1": relevant[np.arange(n), top1].mean(),
        "pk": (hits / min(k, scores.shape[1])).mean(),
        "rk": (hits[rows] / relevant.sum(axis=1)[rows]).mean(),
        "map": average_precision_score(relevant[:, has_positive], scores[:, has_positive]),
    }


def assert_tops(out, expected):
    for name, value in expected.items():
        assert float(out[name]) == pytest.approx(value, rel=1e-6), name


@pytest.mark.caffe
@pytest.mark.parametrize("k", range(1, 9))  # C = 7: k = 1 (the names coincide) up to k > C
def test_metrics_layer_equals_sklearn_for_every_k(make_net, rng, k):
    scores, targets = random_case(rng, n=50, c=7)
    n = make_net(
        net(input_layer(scores=scores.shape, targets=targets.shape), metrics_layer(f'{{"k": {k}}}'))
    )
    n.blobs["scores"].data[...] = scores
    n.blobs["targets"].data[...] = targets
    assert_tops(n.forward(), expected_metrics(scores, targets > 0, k))


def label_lists(rng, relevant, width):
    """(N, C) relevance -> (N, width) shuffled label lists padded with -1, with a duplicate."""
    lists = np.full((relevant.shape[0], width), PADDING, np.float32)
    for row, classes in enumerate(relevant):
        listed = rng.permutation(np.flatnonzero(classes))
        lists[row, : listed.size] = listed
        if 0 < listed.size < width:
            lists[row, listed.size] = listed[0]  # a class listed twice is still one class
    return lists


@pytest.mark.caffe
@pytest.mark.parametrize("weighted", [False, True])
def test_metrics_layer_on_label_lists_equals_sklearn(make_net, rng, weighted):
    scores, targets = random_case(rng, n=60, c=9)
    relevant = targets > 0
    lists = label_lists(rng, relevant, width=9)
    bottoms = ("scores", "labels") + (("weights",) if weighted else ())
    shapes = dict(scores=scores.shape, labels=lists.shape)
    if weighted:
        shapes["weights"] = lists.shape
    n = make_net(
        net(input_layer(**shapes), metrics_layer('{"k": 3, "targets": "labels"}', bottoms))
    )
    n.blobs["scores"].data[...] = scores
    n.blobs["labels"].data[...] = lists
    if weighted:  # weight 0 on the first listed label of rows 1..9: no longer relevant there
        weights = np.ones_like(lists)
        for row in range(1, 10):
            dropped = lists[row, 0]
            if dropped != PADDING:
                weights[row, lists[row] == dropped] = 0
                relevant[row, int(dropped)] = False
        n.blobs["weights"].data[...] = weights
    assert_tops(n.forward(), expected_metrics(scores, relevant, 3))


@pytest.mark.caffe
def test_metrics_layer_on_index_targets(make_net, rng):
    scores, _ = random_case(rng, n=30, c=5)
    labels = rng.integers(0, 5, 30).astype(np.float32)
    n = make_net(net(input_layer(scores=scores.shape, targets=(30,)), metrics_layer('{"k": 2}')))
    n.blobs["scores"].data[...] = scores
    n.blobs["targets"].data[...] = labels
    assert_tops(n.forward(), expected_metrics(scores, np.eye(5, dtype=bool)[labels.astype(int)], 2))


@pytest.mark.caffe
def test_metrics_layer_names_a_bad_label(make_net):
    n = make_net(
        net(
            input_layer(scores=(2, 3), labels=(2, 2)),
            metrics_layer('{"targets": "labels"}', ("scores", "labels")),
        )
    )
    n.blobs["labels"].data[...] = [[0, PADDING], [1, 3]]
    with pytest.raises(
        ValueError,
        match=r"MultiLabelMetricsLayer: bottom\[1\] \(labels\) holds "
        r"3\.0 at position \(1, 1\)",
    ):
        n.forward()


@pytest.mark.caffe
@pytest.mark.parametrize(
    "params,weights,message",
    [
        (
            "{}",
            (2, 2),
            r'a third bottom \(label_weights\) needs "targets": "labels" in param_str; '
            r'got "targets": "auto"',
        ),
        (
            '{"targets": "labels"}',
            (2, 3),
            r"bottom\[2\] \(label_weights\) has shape \(2, 3\); expected the labels' shape "
            r"\(2, 2\)",
        ),
    ],
)
def test_metrics_layer_checks_its_third_bottom_as_the_loss_does(make_net, params, weights, message):
    with pytest.raises(ValueError, match=r"MultiLabelMetricsLayer: " + message):
        make_net(
            net(
                input_layer(scores=(2, 3), labels=(2, 2), weights=weights),
                metrics_layer(params, ("scores", "labels", "weights")),
            )
        )


@pytest.mark.caffe
def test_metrics_layer_names_the_tops_it_needs(make_net):
    layer = metrics_layer("{}").replace(' top: "map"', "")
    with pytest.raises(
        ValueError,
        match=r"MultiLabelMetricsLayer: needs 4 tops \(precision_at_1, precision_at_k, "
        r"recall_at_k, map\), got 3",
    ):
        make_net(net(input_layer(scores=(2, 3), targets=(2, 3)), layer))


@pytest.mark.caffe
def test_metrics_layer_rejects_bad_k(make_net):
    layer = (
        'layer { name: "metrics" type: "Python" bottom: "scores" bottom: "targets"\n'
        '  top: "p1" top: "pk" top: "rk" top: "map"\n'
        '  python_param { module: "python_layers.multilabel_metrics"\n'
        '    layer: "MultiLabelMetricsLayer" param_str: \'{"k": 0}\' } }\n'
    )
    with pytest.raises(ValueError, match=r"MultiLabelMetricsLayer: param_str key 'k' got 0"):
        make_net(net(input_layer(scores=(2, 3), targets=(2, 3)), layer))


@pytest.mark.caffe
def test_metrics_layer_passes_the_gradient_checker_in_the_train_phase(caffe, make_net):
    """Issue 18.2, every layer with a backward: the metrics are piecewise constant in the
    scores (zero gradient), and the layer writes zeros whatever the diffs held. (The targets
    are not differenced: a step from 0 makes a class relevant.)"""
    rng = np.random.default_rng(13)
    scores = rng.permutation(24).reshape(4, 6).astype(np.float32) / 4  # ranks a step apart
    n = make_net(
        net(input_layer(scores=scores.shape, targets=scores.shape), metrics_layer('{"k": 2}')),
        caffe.TRAIN,
    )
    n.blobs["scores"].data[...] = scores
    n.blobs["targets"].data[...] = rng.uniform(size=scores.shape) < 0.4
    assert check_gradients(n, "metrics", bottoms=(0,)) == []


@pytest.mark.caffe
def test_metrics_layer_backward_overwrites_whatever_the_diffs_held(caffe, make_net):
    """The checker zeroes the bottoms' diffs before its backward, so a backward that writes
    nothing passes it; Caffe does not zero them (a shared blob's diff, a previous iteration's
    values), so the layer must write its zeros itself: NaN in, zeros out."""
    n = make_net(
        net(input_layer(scores=(3, 5), targets=(3, 5)), metrics_layer('{"k": 2}')), caffe.TRAIN
    )
    n.blobs["scores"].data[...] = np.random.default_rng(14).normal(size=(3, 5))
    n.blobs["targets"].data[...] = np.eye(3, 5)
    n.forward()
    for name in ("scores", "targets"):
        n.blobs[name].diff[...] = np.nan
    layer = list(n._layer_names).index("metrics")
    n._backward(layer, layer)
    for name in ("scores", "targets"):
        assert (n.blobs[name].diff == 0).all(), (name, n.blobs[name].diff)
