"""On a GPU: the GPU engine through CuPy against the CPU engine, and GPU nets against CPU nets.

These need the GPU build of Caffe, CuPy and a CUDA device; elsewhere they skip (the same
kernels are checked on the host by test_device_engine.py and test_device_layer.py).
scripts/gpu/check.sh runs them on a GPU machine. Targets: loss rtol 1e-5, gradients atol 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from loss_cases import KINDS, OPTION_SETS, SHAPES, loss_inputs
from nets import input_layer, native_softmax_loss_layer, net, softmax_loss_layer

from python_layers.loss.engine import SoftmaxCrossEntropy
from python_layers.loss.forms import layout_for
from python_layers.loss.options import Options


def _gpu_or_skip():
    """CuPy with a CUDA device, or one skip for the whole module."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (requirements-gpu.txt)")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as why:  # no driver: CUDARuntimeError
        pytest.skip(f"no CUDA device ({why})", allow_module_level=True)
    if count == 0:
        pytest.skip("no CUDA device", allow_module_level=True)
    return cupy


_cupy = _gpu_or_skip()


@pytest.fixture(scope="module")
def cupy():
    return _cupy


@pytest.fixture(scope="module")
def backend(cupy):
    from python_layers.loss.cuda.cupy_backend import CupyBackend

    return CupyBackend()


def _on_gpu(cupy, backend, scores, targets, weights, form, options, block=None, scale=0.7):
    from python_layers.loss.cuda.launch import DeviceSoftmaxCrossEntropy

    layout = layout_for(scores.shape, targets.shape, 1, form)
    s, t = cupy.asarray(scores), cupy.asarray(targets)
    w = None if weights is None else cupy.asarray(weights)
    grad, probs = cupy.full_like(s, np.nan), cupy.full_like(s, np.nan)
    top = cupy.full(1, np.nan, np.float32)
    engine = DeviceSoftmaxCrossEntropy(backend, options, block=block)
    loss = engine(
        s.data.ptr,
        t.data.ptr,
        layout,
        label_weights=0 if w is None else w.data.ptr,
        grad_out=grad.data.ptr,
        grad_scale=scale,
        probs_out=probs.data.ptr,
        loss_out=top.data.ptr,
    )
    return loss, grad.get(), probs.get(), float(top.get()[0])


def _on_cpu(scores, targets, weights, form, options, scale=0.7):
    layout = layout_for(scores.shape, targets.shape, 1, form)
    grad, probs = np.zeros_like(scores), np.zeros_like(scores)
    loss = SoftmaxCrossEntropy(options)(
        scores,
        targets,
        layout,
        label_weights=weights,
        grad_out=grad,
        grad_scale=scale,
        probs_out=probs,
    )
    return loss, grad, probs


def _assert_same(gpu, cpu):
    loss, grad, probs, top = gpu
    np.testing.assert_allclose(loss, cpu[0], rtol=1e-5)
    np.testing.assert_allclose(top, cpu[0], rtol=1e-5)
    np.testing.assert_allclose(grad, cpu[1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(probs, cpu[2], rtol=0, atol=1e-6)


@pytest.mark.parametrize("block", [True, False, None], ids=["block", "thread", "default"])
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: f"{o}"[8:60])
@pytest.mark.parametrize("kind", KINDS)
def test_small_inputs_match_cpu(cupy, backend, kind, options, block):
    rng = np.random.default_rng(11)
    scores, targets, weights, form = loss_inputs(kind, SHAPES["rows"], rng)
    if kind == "index":
        options = Options(**{**options.__dict__, "ignore_label": 255})
    gpu = _on_gpu(cupy, backend, scores, targets, weights, form, options, block)
    _assert_same(gpu, _on_cpu(scores, targets, weights, form, options))


@pytest.mark.parametrize(
    "shape,kind",
    [
        ((256, 1000), "index"),
        ((256, 17000), "index"),
        ((256, 17000), "weighted"),
        ((256, 1000), "dense"),
        ((8, 21, 128, 128), "index"),
        ((8, 21, 16, 16), "dense"),
    ],
)
def test_benchmark_shapes_match_cpu(cupy, backend, shape, kind):
    rng = np.random.default_rng(12)
    scores, targets, weights, form = loss_inputs(kind, shape, rng, width=8)
    if kind == "index":
        targets[targets >= shape[1]] = 0
    gpu = _on_gpu(cupy, backend, scores, targets, weights, form, Options())
    _assert_same(gpu, _on_cpu(scores, targets, weights, form, Options()))


def _native_pair(make_net, caffe, shape):
    prototxt = net(
        input_layer(s=shape, t=(shape[0],)),
        softmax_loss_layer("s", "t", tops=("loss",), name="ours"),
        native_softmax_loss_layer("s", "t", loss_weight=0.0),
    )
    return make_net(prototxt, caffe.TRAIN)


def test_gpu_net_matches_native_gpu_softmax_with_loss(cupy, caffe, make_net):
    """In GPU mode, ours and Caffe's native GPU SoftmaxWithLoss give the same loss."""
    caffe.set_mode_gpu()
    try:
        n = _native_pair(make_net, caffe, (64, 1000))
        rng = np.random.default_rng(13)
        n.blobs["s"].data[...] = rng.standard_normal((64, 1000)) * 3
        n.blobs["t"].data[...] = rng.integers(0, 1000, 64)
        n.forward()
        np.testing.assert_allclose(n.blobs["loss"].data, n.blobs["native_loss"].data, rtol=1e-5)
        assert caffe.get_mode() == "GPU"
    finally:
        caffe.set_mode_cpu()
