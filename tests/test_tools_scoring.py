"""evaluate's numbers equal python_layers.metrics and scikit-learn on the same probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from python_layers import metrics
from python_layers.tools import evaluate, scoring

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def sample(seed: int, n: int = 300, c: int = 7):
    """Probabilities that carry signal about the relevance, with ties (rounded to 2 places)."""
    rng = np.random.default_rng(seed)
    relevant = rng.random((n, c)) < np.linspace(0.05, 0.4, c)
    relevant[:, -1] = False  # a class with no positive: AP undefined, F1 0
    logits = rng.normal(size=(n, c)) + 2.0 * relevant
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return np.round(probs, 2).astype(np.float32), relevant


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_report_equals_sklearn(seed):
    probs, relevant = sample(seed)
    val_probs, val_relevant = sample(seed + 100)
    names = [f"c{i}" for i in range(probs.shape[1])]
    thresholds = scoring.choose_thresholds(val_probs, val_relevant)
    got = evaluate.report(probs, relevant, names, (1, 3), thresholds)
    positive = relevant.any(axis=0)
    ap = [
        sklearn_metrics.average_precision_score(relevant[:, c], probs[:, c])
        for c in np.flatnonzero(positive)
    ]
    assert got["map"] == pytest.approx(np.mean(ap), abs=1e-12)
    assert [got["per_class_ap"][names[c]] for c in np.flatnonzero(positive)] == pytest.approx(ap)
    assert got["per_class_ap"][names[-1]] is None
    assert got["precision_at_k"]["3"] == metrics.precision_at_k(probs, relevant, 3)
    assert got["recall_at_k"]["1"] == metrics.recall_at_k(probs, relevant, 1)
    for kind, threshold in (
        ("f1_global_threshold", thresholds[0]),
        ("f1_per_class_thresholds", thresholds[1]),
    ):
        predicted = probs >= threshold
        for average in ("micro", "macro"):
            expected = sklearn_metrics.f1_score(
                relevant, predicted, average=average, zero_division=0
            )
            assert got[kind][average] == pytest.approx(expected, abs=1e-12)
    per_class = sklearn_metrics.f1_score(
        relevant, probs >= thresholds[1], average=None, zero_division=0
    )
    assert list(got["f1_per_class_thresholds"]["per_class"].values()) == pytest.approx(per_class)


@pytest.mark.parametrize("seed", [3, 4])
def test_thresholds_are_the_best_f1_of_sklearns_curve(seed):
    probs, relevant = sample(seed)
    global_threshold, per_class = scoring.choose_thresholds(probs, relevant)
    for c in np.flatnonzero(relevant.any(axis=0)):
        precision, recall, cuts = sklearn_metrics.precision_recall_curve(
            relevant[:, c], probs[:, c]
        )
        with np.errstate(invalid="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))[:-1]
        best = f1.max()
        assert sklearn_metrics.f1_score(relevant[:, c], probs[:, c] >= per_class[c]) == (
            pytest.approx(best, abs=1e-12)
        )
        assert per_class[c] == cuts[f1 >= best - 1e-12].max()  # of equal F1s, the highest
    assert per_class[-1] == 1.0  # nothing relevant: predict nothing
    micro = sklearn_metrics.f1_score(relevant.ravel(), probs.ravel() >= global_threshold)
    cuts = np.unique(probs)
    assert micro == pytest.approx(
        max(sklearn_metrics.f1_score(relevant.ravel(), probs.ravel() >= t) for t in cuts)
    )


def test_precision_recall_curve_equals_sklearn():
    probs, relevant = sample(5)
    precision, recall, cuts = metrics.precision_recall_curve(probs[:, 2], relevant[:, 2])
    p, r, t = sklearn_metrics.precision_recall_curve(relevant[:, 2], probs[:, 2])
    np.testing.assert_allclose(precision, p[:-1][::-1], rtol=1e-12)
    np.testing.assert_allclose(recall, r[:-1][::-1], rtol=1e-12)
    np.testing.assert_array_equal(cuts, t[::-1])
