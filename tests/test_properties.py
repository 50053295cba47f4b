"""Property-based tests: random shapes, axes, options, target formats and loss weights, run
through a real caffe.Net and compared with the float64 oracle and the gradient checker.

`HYPOTHESIS_PROFILE=nightly pytest tests/test_properties.py` runs the long profile."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from nets import input_layer, net, softmax_loss_layer
from oracle import reference, reference_target_grad

from python_layers.loss.options import NORMALIZATIONS
from python_layers.params import SOFTMAX_LOSS_KEYS, softmax_loss_params
from python_layers.testing import check_gradients


@st.composite
def cases(draw):
    """A scores shape with its class axis, targets of some format, options and a loss weight."""
    ndim = draw(st.integers(2, 5))  # N plus 1-4 dims
    classes = draw(st.integers(2, 300))
    axis = draw(st.integers(1, ndim - 1))
    budget = max(1, 600 // classes)  # keep nets small: positions * C <= ~600 (+ C)
    shape = [draw(st.integers(1, 3))] + [1] * (ndim - 1)
    for d in range(1, ndim):
        if d != axis:
            shape[d] = draw(st.integers(1, max(1, min(3, budget // int(np.prod(shape))))))
    shape[axis] = classes
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    magnitude = draw(st.sampled_from([1.0, 30.0, 1e4]))
    scores = (rng.normal(0, 1, shape) * magnitude).astype(np.float32)
    kind = draw(st.sampled_from(["index", "khot", "real", "with_zero_rows"]))
    options = {
        "axis": axis - ndim if draw(st.booleans()) else axis,
        "normalization": draw(st.sampled_from(NORMALIZATIONS)),
    }
    if draw(st.booleans()):
        options["label_smoothing"] = draw(st.sampled_from([0.05, 0.3, 0.9]))
    if draw(st.booleans()):
        options["class_weights"] = np.round(rng.uniform(0, 3, classes), 3).tolist()
    positions_shape = shape[:axis] + shape[axis + 1 :]
    if kind == "index":
        targets = rng.integers(0, classes, positions_shape).astype(np.float32)
        if draw(st.booleans()):
            options["ignore_label"] = int(draw(st.sampled_from([0, classes - 1, 255])))
    else:
        moved = rng.uniform(0.1, 2, (*positions_shape, classes))
        moved *= rng.uniform(size=moved.shape) < (0.5 if kind == "real" else 3 / classes)
        moved[..., 0] += kind == "khot"  # at least one positive per position
        if kind == "khot":
            moved = (moved > 0).astype(float)
        if kind == "with_zero_rows":
            moved.reshape(-1, classes)[::2] = 0
        targets = np.moveaxis(moved, -1, axis).astype(np.float32)
        if draw(st.booleans()):
            options["normalize_targets"] = False
    loss_weight = draw(st.sampled_from([1.0, 0.5, 3.7]))
    return scores, targets, options, loss_weight


def build(make_net, scores, targets, options, loss_weight, phase=None):
    n = make_net(
        net(
            input_layer(scores=scores.shape, targets=targets.shape),
            softmax_loss_layer("scores", "targets", loss_weight=loss_weight, **options),
        ),
        phase,
    )
    n.blobs["scores"].data[...] = scores
    n.blobs["targets"].data[...] = targets
    return n


def gradient_size(scores, targets, options) -> float:
    """The gradient's own scale, the largest mass / Z = sum_c w_c t_c / Z of a position: with
    class 0 (or 1) far above the rest, p is one-hot and grad_0 is (mass - a_0) / Z (or
    -a_0 / Z), so their difference is mass / Z."""
    axis = options["axis"] % scores.ndim
    grads = []
    for top in (0, 1):
        s = np.zeros_like(scores)
        np.moveaxis(s, axis, 0)[top] = 1e4
        grads.append(np.take(reference(s, targets, **options)[1], 0, axis=axis))
    return float((grads[0] - grads[1]).max())


@pytest.mark.caffe
@given(case=cases())
def test_loss_and_both_gradients_match_the_oracle(make_net, case):
    scores, targets, options, loss_weight = case
    n = build(make_net, scores, targets, options, loss_weight)
    loss = float(n.forward()["loss"])
    n.backward()
    ref_loss, ref_grad, _ = reference(scores, targets, **options)
    scale = max(1.0, float(np.abs(scores).max()))  # the loss is ~|s|: float32's rounding of it
    assert loss == pytest.approx(ref_loss, rel=1e-4, abs=1e-6 * scale)
    # The gradient is (mass p - w t) / Z, never ~|s|: its tolerance is scaled to mass / Z.
    size = loss_weight * gradient_size(scores, targets, options)
    np.testing.assert_allclose(
        n.blobs["scores"].diff, loss_weight * ref_grad, rtol=1e-3, atol=1e-6 * size + 1e-12
    )
    if targets.shape == scores.shape and np.abs(scores).max() < 100:
        rng = np.random.default_rng(0)
        picked = rng.choice(targets.size, size=min(12, targets.size), replace=False)
        ref_target = reference_target_grad(scores, targets, elements=picked, **options)
        sums = np.moveaxis(targets, options["axis"], -1).sum(axis=-1)
        valid = np.expand_dims(sums > 0, options["axis"] % scores.ndim)
        keep = np.broadcast_to(valid, targets.shape).reshape(-1)[picked]
        got = n.blobs["targets"].diff.reshape(-1)[picked][keep]
        np.testing.assert_allclose(
            got, loss_weight * ref_target.reshape(-1)[picked][keep], rtol=2e-3, atol=1e-5
        )


@pytest.mark.caffe
@given(case=cases(), phase=st.sampled_from(["TRAIN", "TEST"]))
def test_gradients_pass_the_gradient_checker(caffe, make_net, case, phase):
    """Both phases (force_backward): the checker zeroes the bottoms' diffs before backward."""
    scores, targets, options, loss_weight = case
    scores = np.clip(scores, -5, 5)  # a float32 loss top resolves 1e-2 steps only when small
    dense = targets.shape == scores.shape
    if dense:  # keep every target a step away from 0, where targets stop being valid
        targets = targets + np.float32(0.5)  # (and sums >> the step, for the 1/sum)
    n = build(make_net, scores, targets, options, loss_weight, getattr(caffe, phase))
    # The checker differences a float32 loss: at |loss| ~ 1e3 its rounding alone is ~1e-2.
    assume(abs(float(n.forward()["loss"])) < 30)
    bottoms = (0, 1) if dense else (0,)
    assert check_gradients(n, "loss", bottoms=bottoms, max_elements=8) == []


KEYS = list(SOFTMAX_LOSS_KEYS)  # the table itself: a new key needs no edit here
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)


@given(text=st.text(max_size=200))
def test_any_param_string_gives_params_or_a_value_error(text):
    try:
        softmax_loss_params(text)
    except ValueError as why:
        assert str(why).startswith("SoftmaxLossLayer: ")


@given(params=st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4))
def test_any_json_value_for_any_key_gives_params_or_an_error_naming_the_key(params):
    text = json.dumps(params)
    try:
        parsed = softmax_loss_params(text)
    except ValueError as why:
        assert any(f"'{key}'" in str(why) for key in params), str(why)
    else:
        assert set(parsed) == set(KEYS)


@given(depth=st.integers(1, 100_000))
def test_deeply_nested_param_str_is_a_value_error_not_a_crash(depth):
    with pytest.raises(ValueError, match=r"^SoftmaxLossLayer: param_str "):
        softmax_loss_params("[" * depth + "]" * depth if depth % 2 else "{" * depth)


CRASH_PROBE = """
import sys, threading
from python_layers.params import SOFTMAX_LOSS_KEYS, softmax_loss_params
text = sys.stdin.read()
sys.setrecursionlimit(10**6)  # only the C stack is left to stop a recursing parser
threading.stack_size(512 * 1024)
said = []
def parse():
    try:
        softmax_loss_params(text)
    except ValueError as why:
        said.append(str(why))
thread = threading.Thread(target=parse)
thread.start()
thread.join()
print(said[0])
"""


@pytest.mark.parametrize(  # short ids: pytest puts the id in the child's environment
    "text", ["[" * 200_000 + "]" * 200_000, '{"a": ' * 200_000], ids=["lists", "objects"]
)
def test_deep_nesting_is_refused_before_any_parser_recurses(text):
    """Python 3.9 died in json.loads ('Cannot recover from stack overflow') on deep nesting:
    with a small stack and no recursion limit, any parser that recursed would crash here."""
    import subprocess
    import sys

    from paths import REPO

    done = subprocess.run(
        [sys.executable, "-c", CRASH_PROBE], input=text, capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert "param_str nests brackets 200000 deep; at most" in done.stdout


@pytest.mark.parametrize(
    "text,depth",
    [
        ('{"class_weights": [1, 2]}', 2),
        ('{"a": "[[[[{{{("}', 1),  # brackets inside strings do not count
        ("{'a': '\\'[[['}", 1),  # nor after an escaped quote
        ('{"a": "\\"", "b": [[1]]}', 3),
    ],
)
def test_nesting_depth_counts_brackets_outside_strings(text, depth):
    from python_layers.params import nesting_depth

    assert nesting_depth(text) == depth
