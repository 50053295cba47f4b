"""The pure-numpy math against the float64 oracle (no Caffe needed)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from loss_cases import khot
from oracle import reference, reference_target_grad

from python_layers import softmax_math as sm
from python_layers.loss.engine import SoftmaxCrossEntropy
from python_layers.loss.forms import FORMS, layout_for
from python_layers.loss.normalize import NORMALIZATIONS


def compare(scores, targets, with_target_grad=False, **options):
    ours = sm.softmax_cross_entropy(scores, targets, with_target_grad=with_target_grad, **options)
    loss, grad, probs = reference(scores, targets, **options)
    np.testing.assert_allclose(ours.loss, loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.score_grad, grad, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ours.probs, probs, rtol=1e-5, atol=1e-7)
    return ours


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("normalize_targets", [True, False])
@pytest.mark.parametrize("shape,axis", [((6, 10), 1), ((2, 5, 3, 4), 1), ((3, 4, 7), -1)])
def test_dense_targets_match_oracle(rng, shape, axis, normalization, normalize_targets):
    scores = rng.normal(0, 3, shape).astype(np.float32)
    targets = khot(shape, axis, rng=rng) * rng.uniform(0.2, 2, shape).astype(np.float32)
    compare(
        scores, targets, axis=axis, normalization=normalization, normalize_targets=normalize_targets
    )


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.5])
@pytest.mark.parametrize("weighted", [False, True])
def test_zero_rows_smoothing_and_weights_match_oracle(rng, smoothing, weighted):
    scores = rng.normal(0, 2, (8, 6)).astype(np.float32)
    targets = khot((8, 6), rng=rng)
    targets[[1, 5]] = 0  # ignored positions
    weights = rng.uniform(0, 3, 6) if weighted else None
    ours = compare(scores, targets, label_smoothing=smoothing, class_weights=weights)
    assert not ours.score_grad[[1, 5]].any()


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("ignore_label", [None, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_index_targets_match_oracle(rng, normalization, ignore_label, weighted):
    scores = rng.normal(0, 2, (4, 5, 3, 2)).astype(np.float32)
    labels = rng.integers(0, 5, (4, 1, 3, 2)).astype(np.float32)
    weights = rng.uniform(0.1, 2, 5) if weighted else None
    compare(
        scores,
        labels,
        normalization=normalization,
        ignore_label=ignore_label,
        class_weights=weights,
        label_smoothing=0.1,
    )


def test_onehot_dense_equals_index(rng):
    scores = rng.normal(0, 2, (7, 9)).astype(np.float32)
    labels = rng.integers(0, 9, 7)
    onehot = np.eye(9, dtype=np.float32)[labels]
    dense = sm.softmax_cross_entropy(scores, onehot)
    index = sm.softmax_cross_entropy(scores, labels.astype(np.float32))
    assert dense.loss == pytest.approx(index.loss, rel=1e-6)
    np.testing.assert_allclose(dense.score_grad, index.score_grad, atol=1e-7)


@pytest.mark.parametrize("normalize_targets", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_target_gradient_matches_numeric_oracle(rng, normalize_targets, smoothing):
    scores = rng.normal(0, 2, (3, 4, 2)).astype(np.float32)
    targets = rng.uniform(0.1, 1, (3, 4, 2)).astype(np.float32)
    options = dict(
        normalize_targets=normalize_targets, label_smoothing=smoothing, class_weights=[1, 2, 0.5, 1]
    )
    ours = sm.softmax_cross_entropy(scores, targets, with_target_grad=True, **options)
    np.testing.assert_allclose(
        ours.target_grad, reference_target_grad(scores, targets, **options), rtol=1e-4, atol=1e-6
    )


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("normalize_targets", [True, False])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("shape,axis", [((7, 9), 1), ((3, 2, 5), 1)])
def test_target_gradient_of_rows_matches_numeric_oracle(
    rng, normalization, normalize_targets, smoothing, shape, axis
):
    """Distillation targets on (N, C) rows (the fused kernel's own target gradient) and on
    an inner dimension, with a zero (ignored) row, class weights and every normalization."""
    scores = rng.normal(0, 2, shape).astype(np.float32)
    targets = rng.uniform(0.1, 1, shape).astype(np.float32)
    targets[1] = 0
    options = dict(
        normalization=normalization,
        normalize_targets=normalize_targets,
        label_smoothing=smoothing,
        class_weights=rng.uniform(0.2, 2, shape[axis]),
    )
    ours = compare(scores, targets, with_target_grad=True, **options)
    expected = reference_target_grad(scores, targets, **options)
    expected[1] = 0  # an ignored row: the loss has a kink there; the convention is 0
    np.testing.assert_allclose(ours.target_grad, expected, rtol=1e-4, atol=1e-6)


def test_huge_logits_stay_finite():
    scores = np.array([[1e4, -1e4, 0], [-1e4, -1e4, 1e4]], np.float32)
    result = sm.softmax_cross_entropy(scores, np.array([[0, 1, 1], [1, 0, 0]], np.float32))
    assert np.isfinite(result.loss) and np.isfinite(result.score_grad).all()
    assert result.loss == pytest.approx((1e4 + 5e3 + 2e4) / 2, rel=1e-6)


@pytest.mark.parametrize(
    "targets,message",
    [
        (np.array([[0.5, -0.1, 0]], np.float32), r"-0\.1.* at position \(0, 1\).*>= 0"),
        (np.array([[0.5, np.nan, 0]], np.float32), r"nan.*position \(0, 1\)"),
        (np.array([[0, np.inf, 0]], np.float32), r"inf.*position \(0, 1\)"),
    ],
)
def test_bad_dense_targets_name_position_and_value(targets, message):
    with pytest.raises(sm.TargetError, match=message):
        sm.softmax_cross_entropy(np.zeros((1, 3), np.float32), targets)


@pytest.mark.parametrize(
    "label,message", [(3.0, r"label 3\.0 at position \(1,\)"), (1.5, r"1\.5"), (-1.0, r"-1\.0")]
)
def test_bad_labels_name_position_and_value(label, message):
    labels = np.array([0, label], np.float32)
    with pytest.raises(sm.TargetError, match=message + r".*integer in \[0, 3\)"):
        sm.softmax_cross_entropy(np.zeros((2, 3), np.float32), labels)


def test_bad_target_shape_shows_both_shapes_and_forms():
    with pytest.raises(sm.TargetError, match=r"\(4, 2\).*\(4, 3\).*dense.*index"):
        layout_for((4, 3), (4, 2))


@pytest.mark.parametrize(
    "targets_shape,kind",
    [((4, 3), "dense"), ((4, 3, 1, 1), "dense"), ((4,), "index"), ((4, 1), "index")],
)
def test_layout_detects_the_target_form(targets_shape, kind):
    assert layout_for((4, 3), targets_shape).form is FORMS[kind]


@pytest.mark.parametrize("shape,axis", [((5, 400), 1), ((2, 300, 3, 2), 1), ((3, 2, 500), 2)])
@pytest.mark.parametrize("weighted", [False, True])
def test_sparse_khot_targets_match_oracle(rng, shape, axis, weighted):
    """Few non-zeros per position: the engine's sparse dot product path."""
    scores = rng.normal(0, 3, shape).astype(np.float32)
    targets = khot(shape, axis, k_max=3, rng=rng)
    weights = rng.uniform(0.5, 2, shape[axis]) if weighted else None
    compare(scores, targets, axis=axis, class_weights=weights)


@pytest.mark.parametrize("kind", ["khot", "index"])
def test_large_inputs_match_oracle(rng, kind):
    """Over a million scores: the multi-threaded kernels (numba's and the numpy blocks')."""
    shape = (80, 14000)
    scores = rng.normal(0, 3, shape).astype(np.float32)
    labels = rng.integers(0, shape[1], shape[0])
    targets = khot(shape, rng=rng) if kind == "khot" else labels.astype(np.float32)
    compare(scores, targets, label_smoothing=0.05)


LAYOUTS = ["C", "F", "transposed", "sliced", "reversed"]


def relayout(array, how, rng):
    """The same values in another memory layout: Fortran order, a view with permuted
    strides, every other element of a larger array, or a view with negative strides."""
    if how == "F":
        return np.asfortranarray(array)
    if how == "transposed":
        order = rng.permutation(array.ndim)
        return np.ascontiguousarray(array.transpose(order)).transpose(np.argsort(order))
    if how == "sliced":
        larger = np.full([2 * d + 1 for d in array.shape], np.nan, array.dtype)
        view = larger[tuple(slice(1, None, 2) for _ in array.shape)]
        view[...] = array
        return view
    if how == "reversed":
        return np.ascontiguousarray(array[::-1])[::-1]
    return np.ascontiguousarray(array)


@st.composite
def layout_cases(draw):
    """Scores and targets (dense, index or label lists), each in a drawn memory layout."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    form = draw(st.sampled_from(tuple(FORMS)))
    ndim = 2 if form == "labels" else draw(st.integers(2, 4))
    shape = tuple(draw(st.integers(1, 5)) for _ in range(ndim))
    shape = (shape[0], draw(st.integers(2, 40)), *shape[2:])
    scores = rng.normal(0, 3, shape).astype(np.float32)
    if form == "dense":
        targets = khot(shape, 1, k_max=2, rng=rng) * rng.uniform(0.2, 2, shape).astype(np.float32)
    elif form == "index":
        targets = rng.integers(0, shape[1], (shape[0], *shape[2:])).astype(np.float32)
    else:
        targets = rng.integers(-1, shape[1], (shape[0], 3)).astype(np.float32)
    layouts = [draw(st.sampled_from(LAYOUTS)) for _ in range(2)]
    return form, scores, targets, layouts, rng


@given(case=layout_cases())
def test_any_memory_layout_gives_the_c_ordered_result(case):
    """Issue 18.8: a transposed view used to get uninitialised memory as its gradient."""
    form, scores, targets, layouts, rng = case
    options = dict(targets_form=form, label_smoothing=0.1, with_target_grad=form != "index")
    want = sm.softmax_cross_entropy(scores, targets, **options)
    got = sm.softmax_cross_entropy(
        relayout(scores, layouts[0], rng), relayout(targets, layouts[1], rng), **options
    )
    assert got.loss == pytest.approx(want.loss, rel=1e-6)
    for name in ("score_grad", "probs", "target_grad"):
        if getattr(want, name) is not None:
            np.testing.assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-6, atol=0)
    if form != "labels":
        loss, grad, probs = reference(scores, targets, label_smoothing=0.1)
        np.testing.assert_allclose(got.loss, loss, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(got.score_grad, grad, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got.probs, probs, rtol=1e-5, atol=1e-7)


def test_a_transposed_view_of_scores_gets_the_right_gradient(rng):
    """The case the issue reports: (2, 3, 4, 5) float32 with its last two axes transposed."""
    x = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    scores = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
    targets = rng.uniform(size=scores.shape).astype(np.float32)
    ours = sm.softmax_cross_entropy(scores, targets)
    loss, grad, _ = reference(scores, targets)
    assert ours.loss == pytest.approx(loss, rel=1e-5)
    np.testing.assert_allclose(ours.score_grad, grad, rtol=1e-4, atol=1e-6)
    assert ours.score_grad.flags.c_contiguous


def test_the_engine_refuses_outputs_it_cannot_write_in_place(rng):
    scores = rng.normal(size=(4, 6)).astype(np.float32)
    labels = rng.integers(0, 6, 4).astype(np.float32)
    with pytest.raises(ValueError, match="grad_out must be C-contiguous"):
        SoftmaxCrossEntropy()(
            scores, labels, layout_for((4, 6), (4,)), grad_out=np.empty((6, 4), np.float32).T
        )


def test_softmax_math_names_moved_still_resolve_with_a_warning():
    """softmax_math is the public function; the names it once re-exported reach their one
    home, saying where it is."""
    with pytest.warns(DeprecationWarning, match="python_layers.loss.engine"):
        assert sm.SoftmaxCrossEntropy is SoftmaxCrossEntropy
    with pytest.warns(DeprecationWarning, match="python_layers.loss.forms"):
        assert sm.layout_for is layout_for
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        sm.nothing_here  # noqa: B018
    assert set(sm.__all__) == {"CrossEntropy", "TargetError", "softmax_cross_entropy"}
