"""The engine: its kernels against the float64 reference (python_layers/loss/reference.py),
for every target form, both kernels (rows, positions) and both drivers (serial, parallel);
its memory behaviour: buffers reused across calls and reallocated only when shapes change,
nothing of the scores' size kept (but the rows' exps) or allocated per call."""

from __future__ import annotations

import os
import re
import tracemalloc

import numpy as np
import pytest

from python_layers import softmax_math as sm
from python_layers.loss import fused_positions, fused_rows
from python_layers.loss.engine import SoftmaxCrossEntropy
from python_layers.loss.forms import FORMS, layout_for
from python_layers.loss.options import Options
from python_layers.loss.reference import reference


def dense_case(shape, rng):
    scores = rng.normal(0, 3, shape).astype(np.float32)
    targets = (rng.uniform(size=shape) < 3 / shape[1]).astype(np.float32)
    targets[:, 0] += 1
    return scores, targets


def case(kind, shape, rng):
    """Scores and targets of a form: dense (k-hot plus reals), index, or label lists."""
    scores, targets = dense_case(shape, rng)
    if kind == "dense":
        targets *= rng.uniform(0.2, 2, shape).astype(np.float32)
        targets[1] = 0  # an ignored position
        return scores, targets, None, "dense"
    if kind == "index":
        return scores, targets.argmax(axis=1).astype(np.float32), None, "index"
    labels = rng.integers(-1, shape[1], (shape[0], 4)).astype(np.float32)
    labels[2] = -1  # a row with no label
    return scores, labels, rng.uniform(0.1, 2, labels.shape).astype(np.float32), "labels"


def peak_allocation(engine, scores, targets, layout, grad):
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    engine(scores, targets, layout, grad_out=grad)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - before


def retained_budget(engine, layout) -> int:
    """What the engine may keep between calls, in bytes: at most 48 bytes per position (the
    targets' preparation) and the class weights of 1; for (N, C) scores also exp(s - max)
    (one array of the scores' size, as Caffe's SoftmaxWithLoss keeps its probabilities), the
    rows' statistics and a row of int32 scratch per thread; otherwise nothing of the scores'
    size: forward's max and sum of exp per position, a block of C x BLOCK floats of scratch
    per thread and the blocks' statistics."""
    classes, threads, positions = layout.classes, engine.threads, layout.positions
    common = 48 * positions + 4 * classes + 1024
    if layout.inner == 1:
        kept = 4 * positions * classes + 8 * fused_rows.N_STATS * positions
        return common + kept + 4 * classes * threads
    block = fused_positions.BLOCK
    scratch = threads * (4 * classes * block + 16 * block)
    return common + 12 * positions + scratch + 24 * -(-positions // block)


@pytest.mark.parametrize(
    "shape,kind",
    [
        ((64, 17000), "dense"),
        ((64, 17000), "index"),
        ((4, 21, 128, 128), "index"),
        ((4, 21, 128, 128), "dense"),
    ],
)
def test_buffers_are_reused_and_calls_allocate_nothing_batch_sized(shape, kind):
    """After the first call the buffers stay the same objects, what the engine keeps is
    within :func:`retained_budget`, and what a call allocates does not grow with the batch
    (nothing of the scores' size: under 256 KiB where the scores are 4-17 MB)."""
    rng = np.random.default_rng(1)
    peaks = []
    for batch in (shape[0], 2 * shape[0]):
        scores, targets = dense_case((batch, *shape[1:]), rng)
        if kind == "index":
            targets = targets.argmax(axis=1).astype(np.float32)
        layout = layout_for(scores.shape, targets.shape)
        engine = SoftmaxCrossEntropy(Options(label_smoothing=0.1))
        grad = np.empty_like(scores)
        engine(scores, targets, layout, grad_out=grad)
        buffers = {name: id(buffer) for name, buffer in engine.buffers.names().items()}
        peaks.append(peak_allocation(engine, scores, targets, layout, grad))
        assert {name: id(b) for name, b in engine.buffers.names().items()} == buffers
        retained = {name: b.nbytes for name, b in engine.buffers.names().items()}
        assert engine.retained_bytes() <= retained_budget(engine, layout), retained
        assert peaks[-1] < 256 * 1024, (peaks, scores.nbytes)
    assert peaks[1] <= peaks[0] + 4096, peaks  # twice the batch: no more allocated


def test_buffers_are_reallocated_on_reshape():
    loss, rng = SoftmaxCrossEntropy(), np.random.default_rng(2)
    for shape in [(8, 50), (16, 50), (8, 50)]:
        scores, targets = dense_case(shape, rng)
        loss(scores, targets, layout_for(shape, shape))
        assert loss.buffers.names()["row_stats"].shape == (shape[0], fused_rows.N_STATS)


OPTIONS = [
    Options(),
    Options(normalization="full", label_smoothing=0.1),
    Options(normalization="batch_size", normalize_targets=False),
    Options(normalization="none", label_smoothing=0.2, class_weights=(0.5, 2.0) * 20),
    Options(class_weights=(0.5, 2.0, 1.0, 0.0) * 10),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: repr(o)[8:50])
@pytest.mark.parametrize("driver", ["serial", "parallel"])
@pytest.mark.parametrize(
    "kind,shape",
    [
        *[("dense", (9, 40)), ("index", (9, 40)), ("labels", (9, 40))],
        *[("dense", (3, 40, 5, 70)), ("index", (3, 40, 300))],  # positions: over a block
    ],
)
def test_kernels_match_the_float64_reference(kind, shape, driver, options, monkeypatch):
    """Loss, gradient and probabilities to float32 rounding; the gradient's tolerance is
    scaled to its own size (entries are ~1/Z), not to the scores'."""
    for module in (fused_rows, fused_positions):
        monkeypatch.setattr(module, "PARALLEL_ELEMENTS", 1 if driver == "parallel" else 1 << 40)
    rng = np.random.default_rng(3)
    scores, targets, weights, form = case(kind, shape, rng)
    layout = layout_for(scores.shape, targets.shape, form=form)
    grad, probs = np.full_like(scores, np.nan), np.full_like(scores, np.nan)
    loss = SoftmaxCrossEntropy(options)(
        scores, targets, layout, label_weights=weights, grad_out=grad, probs_out=probs
    )
    want = reference(scores, targets, layout, options, weights)
    assert loss == pytest.approx(want.loss, rel=1e-5)
    size = np.abs(want.score_grad).max()
    np.testing.assert_allclose(grad, want.score_grad, rtol=1e-4, atol=1e-5 * size)
    np.testing.assert_allclose(probs, want.probs, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kind", tuple(FORMS))
def test_serial_and_parallel_drivers_give_the_same_bits(kind, monkeypatch):
    rng = np.random.default_rng(4)
    scores, targets, weights, form = case(kind, (64, 900), rng)
    layout = layout_for(scores.shape, targets.shape, form=form)
    results = []
    for threshold in (1 << 40, 1):
        monkeypatch.setattr(fused_rows, "PARALLEL_ELEMENTS", threshold)
        grad = np.empty_like(scores)
        loss = SoftmaxCrossEntropy()(scores, targets, layout, label_weights=weights, grad_out=grad)
        results.append((loss, grad))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    np.testing.assert_array_equal(results[0][1], results[1][1])


@pytest.mark.parametrize("shape", [(6, 300), (2, 5, 20, 30)])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_scores_are_caught_by_both_kernels(shape, bad):
    scores, targets = dense_case(shape, np.random.default_rng(5))
    where = (1, 3) + (0,) * (len(shape) - 2)
    scores[where] = bad
    probs = np.full_like(scores, 0.5)
    message = (
        rf"bottom\[0\] \(scores\) holds 1 non-finite value\(s\), the first {bad} at "
        + re.escape(str(where))
    )
    layout = layout_for(shape, shape)
    with pytest.raises(FloatingPointError, match=message):
        SoftmaxCrossEntropy()(
            scores, targets, layout, grad_out=np.empty_like(scores), probs_out=probs
        )
    assert (probs == 0.5).all()  # a top: nothing written
    with pytest.raises(FloatingPointError, match=message):  # the kernels check as they go
        SoftmaxCrossEntropy()(scores, targets, layout, grad_out=np.empty_like(scores))


@pytest.mark.parametrize("shape", [(6, 300), (2, 5, 20, 30)])
@pytest.mark.parametrize("bad", [-0.25, np.inf, np.nan])
def test_bad_dense_targets_are_caught_before_any_probability_is_written(shape, bad):
    """The row kernel writes p row by row and reads dense targets itself; a bad target in a
    late row still raises before anything is written to the top (checked first)."""
    scores, targets = dense_case(shape, np.random.default_rng(6))
    where = (shape[0] - 1, 2) + (0,) * (len(shape) - 2)
    targets[where] = bad
    probs = np.full_like(scores, 0.5)
    layout = layout_for(shape, shape)
    message = rf"bottom\[1\] \(targets\) holds {bad} at position " + re.escape(str(where))
    with pytest.raises(sm.TargetError, match=message):
        SoftmaxCrossEntropy()(
            scores, targets, layout, grad_out=np.empty_like(scores), probs_out=probs
        )
    assert (probs == 0.5).all()  # a top: nothing written
    with pytest.raises(sm.TargetError, match=message):  # the kernels check as they go
        SoftmaxCrossEntropy()(scores, targets, layout, grad_out=np.empty_like(scores))


NRT_PROBE = """
import json, sys
import numpy as np
from numba.core.runtime import rtsys
from python_layers.loss.engine import SoftmaxCrossEntropy
from python_layers.loss.forms import layout_for
shape, kind, seed = json.loads(sys.argv[1])
rng = np.random.default_rng(seed)
scores = rng.normal(0, 2, shape).astype("f4")
if kind == "dense":
    targets = (rng.uniform(size=shape) < 0.01).astype("f4")
    targets[:, 0] = 1
else:
    targets = rng.integers(0, shape[1], (shape[0], *shape[2:])).astype("f4")
layout = layout_for(shape, targets.shape)
loss, grad = SoftmaxCrossEntropy(), np.empty_like(scores)
target_grad = np.empty_like(scores) if kind == "dense" and len(shape) == 2 else None
loss(scores, targets, layout, grad_out=grad, target_grad_out=target_grad)
before = rtsys.get_allocation_stats()
for _ in range(3):
    loss(scores, targets, layout, grad_out=grad, target_grad_out=target_grad)
after = rtsys.get_allocation_stats()
print(after.alloc - before.alloc)
"""


@pytest.mark.parametrize("kind", ["dense", "index"])
@pytest.mark.parametrize("shape", [(16, 5000), (2, 21, 64, 64)])
def test_fused_kernels_allocate_nothing_per_row(rng, kind, shape):
    """numba's own allocations (invisible to tracemalloc), counted by its runtime statistics:
    the same count for 4x the rows, so nothing is allocated per row or per position (what
    remains are the few wrappers of the argument arrays, per call)."""
    import json
    import subprocess
    import sys

    from paths import REPO

    seed = int(rng.integers(2**32))  # the probe's inputs, from this test's generator
    counts = []
    for rows in (shape[0], 4 * shape[0]):
        done = subprocess.run(
            [sys.executable, "-c", NRT_PROBE, json.dumps([[rows, *shape[1:]], kind, seed])],
            env={**os.environ, "NUMBA_NRT_STATS": "1"},
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        counts.append(int(done.stdout.split()[-1]))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 3 * 2 * 20, counts  # a few wrappers per kernel call (forward, backward)
