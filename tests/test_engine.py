"""The blocked engine's memory behaviour: buffers are reused across calls and reallocated only
when shapes change; a call allocates nothing of the scores' size; results do not depend on the
number of threads or the block size."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from python_layers import softmax_math as sm

RNG = np.random.default_rng(7)


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


def test_buffers_are_reallocated_on_reshape():
    engine = sm.SoftmaxCrossEntropy()
    for shape in [(8, 50), (16, 50), (8, 50)]:
        scores, targets = dense_case(shape)
        engine(scores, targets, sm.layout_for(shape, shape))
        assert engine._buffers["row_max"].shape == (shape[0], 1, 1)


@pytest.mark.parametrize("kind", ["dense", "index"])
def test_threads_and_block_size_do_not_change_results(kind, monkeypatch):
    scores, targets = dense_case((64, 9000))
    if kind == "index":
        targets = targets.argmax(axis=1).astype(np.float32)
    layout = sm.layout_for(scores.shape, targets.shape)
    results = []
    for threads, block in [(1, sm.BLOCK_ELEMENTS), (2, sm.BLOCK_ELEMENTS), (2, 1000)]:
        monkeypatch.setattr(sm, "BLOCK_ELEMENTS", block)
        monkeypatch.setattr(sm, "PARALLEL_ELEMENTS", 1)
        grad, probs = np.empty_like(scores), np.empty_like(scores)
        loss = sm.SoftmaxCrossEntropy(threads=threads)(
            scores, targets, layout, grad_out=grad, probs_out=probs
        )
        results.append((loss, grad, probs))
    for loss, grad, probs in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-12)
        np.testing.assert_array_equal(grad, results[0][1])
        np.testing.assert_array_equal(probs, results[0][2])
