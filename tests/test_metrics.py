"""Multi-label metrics: the numpy functions and the Caffe layer against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from nets import input_layer, net
from sklearn.metrics import average_precision_score

from python_layers import metrics

RNG = np.random.default_rng(3)


def random_case(n=40, c=6, ties=False):
    scores = RNG.normal(size=(n, c)).astype(np.float32)
    if ties:
        scores = np.round(scores, 1)  # many tied scores: AP must treat them as one threshold
    targets = (RNG.uniform(size=(n, c)) < 0.3) * RNG.uniform(0.1, 1, (n, c))
    targets[0, :] = 0  # a sample with nothing relevant
    return scores, targets.astype(np.float32)


@pytest.mark.parametrize("ties", [False, True])
def test_average_precision_equals_sklearn(ties):
    scores, targets = random_case(ties=ties)
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


@pytest.mark.caffe
def test_metrics_layer_equals_sklearn(make_net):
    scores, targets = random_case(n=50, c=7)
    layer = (
        'layer { name: "metrics" type: "Python" bottom: "scores" bottom: "targets"\n'
        '  top: "p1" top: "pk" top: "rk" top: "map"\n'
        '  python_param { module: "python_layers.multilabel_metrics"\n'
        '    layer: "MultiLabelMetricsLayer" param_str: \'{"k": 2}\' } }\n'
    )
    n = make_net(net(input_layer(scores=scores.shape, targets=targets.shape), layer))
    n.blobs["scores"].data[...] = scores
    n.blobs["targets"].data[...] = targets
    out = n.forward()
    relevant = targets > 0
    has_positive = relevant.any(axis=0)
    expected_map = average_precision_score(relevant[:, has_positive], scores[:, has_positive])
    assert float(out["map"]) == pytest.approx(expected_map, rel=1e-6)
    top1 = scores.argmax(axis=1)
    assert float(out["p1"]) == pytest.approx(relevant[np.arange(50), top1].mean())
    top2 = np.argsort(-scores, axis=1)[:, :2]
    hits = np.take_along_axis(relevant, top2, axis=1).sum(axis=1)
    assert float(out["pk"]) == pytest.approx((hits / 2).mean())
    rows = relevant.sum(axis=1) > 0
    assert float(out["rk"]) == pytest.approx((hits[rows] / relevant.sum(axis=1)[rows]).mean())


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
