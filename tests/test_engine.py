"""The blocked engine's memory behaviour: buffers are reused across calls and reallocated only
when shapes change; a call allocates nothing of the scores' size; results do not depend on the
number of threads or the block size."""

from __future__ import annotations

import os
import re
import tracemalloc

import numpy as np
import pytest

from python_layers import softmax_math as sm
from python_layers.loss import engine

RNG = np.random.default_rng(7)
needs_numba = pytest.mark.skipif(engine._fused is None, reason="numba is not importable")


def dense_case(shape):
    scores = RNG.normal(0, 3, shape).astype(np.float32)
    targets = (RNG.uniform(size=shape) < 3 / shape[1]).astype(np.float32)
    targets[:, 0] += 1
    return scores, targets


def peak_allocation(engine, scores, targets, layout, grad):
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    engine(scores, targets, layout, grad_out=grad)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - before


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
    """After the first call the buffers stay the same objects, and what a call allocates
    (per-block temporaries) does not grow with the batch: nothing of the scores' size."""
    for batch in (shape[0], 2 * shape[0]):
        scores, targets = dense_case((batch, *shape[1:]))
        if kind == "index":
            targets = targets.argmax(axis=1).astype(np.float32)
        layout = sm.layout_for(scores.shape, targets.shape)
        engine = sm.SoftmaxCrossEntropy(sm.Options(label_smoothing=0.1))
        grad = np.empty_like(scores)
        engine(scores, targets, layout, grad_out=grad)
        buffers = {name: id(buffer) for name, buffer in engine._buffers.items()}
        peak = peak_allocation(engine, scores, targets, layout, grad)
        assert {name: id(buffer) for name, buffer in engine._buffers.items()} == buffers
        assert engine.retained_bytes() <= 2 * scores.nbytes
        assert peak < 0.25 * scores.nbytes, (peak, scores.nbytes)


@pytest.mark.parametrize(
    "fused,name,per_row",
    [(False, "row_max", (1, 1)), pytest.param(True, "row_stats", (11,), marks=needs_numba)],
)
def test_buffers_are_reallocated_on_reshape(fused, name, per_row):
    loss = sm.SoftmaxCrossEntropy(fused=fused)
    for shape in [(8, 50), (16, 50), (8, 50)]:
        scores, targets = dense_case(shape)
        loss(scores, targets, sm.layout_for(shape, shape))
        assert loss._buffers[name].shape == (shape[0], *per_row)


def _run(engine_, scores, targets, layout):
    grad, probs = np.empty_like(scores), np.empty_like(scores)
    loss = engine_(scores, targets, layout, grad_out=grad, probs_out=probs)
    return loss, grad, probs


def _assert_same(results):
    for loss, grad, probs in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-12)
        np.testing.assert_array_equal(grad, results[0][1])
        np.testing.assert_array_equal(probs, results[0][2])


@pytest.mark.parametrize("kind", ["dense", "index"])
@pytest.mark.parametrize("shape", [(64, 9000), (3, 40, 50, 60)])
def test_numpy_engine_threads_and_block_size_do_not_change_results(kind, shape, monkeypatch):
    """The numpy block engine (fused=False, so the numba rows cannot stand in for it): 1 or 2
    threads, and blocks of 1 MiB or of 1000 floats, give the same bits."""
    scores, targets = dense_case(shape)
    if kind == "index":
        targets = targets.argmax(axis=1).astype(np.float32)
    layout = sm.layout_for(scores.shape, targets.shape)
    monkeypatch.setattr(engine, "PARALLEL_ELEMENTS", 1)
    results, blocks_seen = [], set()
    for threads, block in [(1, engine.BLOCK_ELEMENTS), (2, engine.BLOCK_ELEMENTS), (2, 1000)]:
        monkeypatch.setattr(engine, "BLOCK_ELEMENTS", block)
        engine_ = sm.SoftmaxCrossEntropy(threads=threads, fused=False)
        results.append(_run(engine_, scores, targets, layout))
        blocks_seen.add(len(engine_._blocks(layout)))
        assert (engine_._pool is not None) == (threads > 1)  # the threaded path really ran
    assert len(blocks_seen) == 2  # and the block size really changed the split
    _assert_same(results)


@needs_numba
@pytest.mark.parametrize("kind", ["dense", "index"])
def test_fused_rows_serial_and_parallel_kernels_agree(kind, monkeypatch):
    """The fused kernels' two drivers: one thread, and chunks of rows over numba's threads."""
    scores, targets = dense_case((64, 9000))
    if kind == "index":
        targets = targets.argmax(axis=1).astype(np.float32)
    layout = sm.layout_for(scores.shape, targets.shape)
    called = []
    results = []
    for driver, threshold in [("serial", 1 << 40), ("parallel", 1)]:
        monkeypatch.setattr(engine, "FUSED_PARALLEL_ELEMENTS", threshold)
        for phase in ("forward", "backward"):
            name = f"{phase}_{driver}"
            kernel = getattr(engine._fused, name)
            monkeypatch.setattr(
                engine._fused, name, lambda *a, _k=kernel, _n=name: called.append(_n) or _k(*a)
            )
        results.append(_run(sm.SoftmaxCrossEntropy(), scores, targets, layout))
    assert called == ["forward_serial", "backward_serial", "forward_parallel", "backward_parallel"]
    _assert_same(results)


@pytest.mark.parametrize("kind", ["dense", "index"])
@pytest.mark.parametrize("shape", [(64, 3000), (4, 21, 40, 50), (2, 7, 300)])
def test_fused_and_numpy_engines_agree(kind, shape):
    """The fused kernels (rows, or blocks of positions) against the numpy blocks, with label
    smoothing and class weights, to float32 rounding."""
    scores, targets = dense_case(shape)
    if kind == "index":
        targets = targets.argmax(axis=1).astype(np.float32)
    layout = sm.layout_for(scores.shape, targets.shape)
    options = sm.Options(label_smoothing=0.1, class_weights=tuple(RNG.uniform(0.5, 2, shape[1])))
    fused, plain = (
        _run(sm.SoftmaxCrossEntropy(options, fused=f), scores, targets, layout) for f in (1, 0)
    )
    assert fused[0] == pytest.approx(plain[0], rel=1e-6)
    np.testing.assert_allclose(fused[1], plain[1], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fused[2], plain[2], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("fused", [pytest.param(True, marks=needs_numba), False])
@pytest.mark.parametrize("shape", [(6, 300), (2, 5, 20, 30)])
@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_scores_are_caught_by_every_path(fused, shape, bad):
    scores, targets = dense_case(shape)
    where = (1, 3) + (0,) * (len(shape) - 2)
    scores[where] = bad
    probs = np.full_like(scores, 0.5)
    with pytest.raises(
        FloatingPointError,
        match=rf"bottom\[0\] \(scores\) holds 1 non-finite "
        rf"value\(s\), the first {bad} at {re.escape(str(where))}",
    ):
        sm.SoftmaxCrossEntropy(fused=fused)(
            scores,
            targets,
            sm.layout_for(shape, shape),
            grad_out=np.empty_like(scores),
            probs_out=probs,
        )
    assert (probs == 0.5).all()  # a top: nothing written
    with pytest.raises(FloatingPointError):  # without probs the kernels check as they go
        sm.SoftmaxCrossEntropy(fused=fused)(
            scores, targets, sm.layout_for(shape, shape), grad_out=np.empty_like(scores)
        )


NRT_PROBE = """
import json, sys
import numpy as np
from numba.core.runtime import rtsys
from python_layers import softmax_math as sm
shape, kind = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
scores = rng.normal(0, 2, shape).astype("f4")
if kind == "dense":
    targets = (rng.uniform(size=shape) < 0.01).astype("f4")
    targets[:, 0] = 1
else:
    targets = rng.integers(0, shape[1], (shape[0], *shape[2:])).astype("f4")
layout = sm.layout_for(shape, targets.shape)
loss, grad = sm.SoftmaxCrossEntropy(), np.empty_like(scores)
target_grad = np.empty_like(scores) if kind == "dense" and len(shape) == 2 else None
loss(scores, targets, layout, grad_out=grad, target_grad_out=target_grad)
before = rtsys.get_allocation_stats()
for _ in range(3):
    loss(scores, targets, layout, grad_out=grad, target_grad_out=target_grad)
after = rtsys.get_allocation_stats()
print(after.alloc - before.alloc)
"""


@needs_numba
@pytest.mark.parametrize("kind", ["dense", "index"])
@pytest.mark.parametrize("shape", [(16, 5000), (2, 21, 64, 64)])
def test_fused_kernels_allocate_nothing_per_row(kind, shape):
    """numba's own allocations (invisible to tracemalloc), counted by its runtime statistics:
    the same count for 4x the rows, so nothing is allocated per row or per position (what
    remains are the few wrappers of the argument arrays, per call)."""
    import json
    import subprocess
    import sys

    from conftest import REPO

    counts = []
    for rows in (shape[0], 4 * shape[0]):
        done = subprocess.run(
            [sys.executable, "-c", NRT_PROBE, json.dumps([[rows, *shape[1:]], kind])],
            env={**os.environ, "NUMBA_NRT_STATS": "1"},
            capture_output=True,
            text=True,
            cwd=REPO,
            check=True,
        )
        counts.append(int(done.stdout.split()[-1]))
    assert counts[0] == counts[1], counts
    assert counts[0] <= 3 * 2 * 20, counts  # a few wrappers per kernel call (forward, backward)
