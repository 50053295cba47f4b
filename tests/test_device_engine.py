"""The GPU engine's kernels (kernels.cu) against the CPU engine, run on the host.

kernels.cu is compiled by g++ with tests/cuda_host.h and driven by the real
DeviceSoftmaxCrossEntropy through a host backend (blocks of one thread), so that its
arithmetic, its bad-input codes and its launch plan are checked here and in CI; on a GPU the
same comparisons run through CuPy (tests/test_gpu.py, scripts/gpu_check.sh).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from cuda_host import HostBackend
from loss_cases import KINDS, OPTION_SETS, SHAPES, loss_inputs

from python_layers.loss.cuda.launch import (
    BAD_SCORES,
    BAD_TARGETS,
    KERNELS,
    DeviceInputError,
    DeviceSoftmaxCrossEntropy,
)
from python_layers.loss.engine import SoftmaxCrossEntropy, label_weight_grad, target_grad
from python_layers.loss.forms import layout_for
from python_layers.loss.options import Options


def _address(array):
    return 0 if array is None else array.ctypes.data


def _run_both(library, scores, targets, weights, form, options, block, outputs=("grad", "probs")):
    layout = layout_for(scores.shape, targets.shape, 1, form)
    cpu = SoftmaxCrossEntropy(options)
    expected = {name: np.zeros_like(scores) for name in outputs}
    expected_loss = cpu(
        scores,
        targets,
        layout,
        label_weights=weights,
        grad_out=expected.get("grad"),
        grad_scale=0.7,
        probs_out=expected.get("probs"),
    )
    got = {name: np.full_like(scores, np.nan) for name in outputs}
    loss_top = np.full(1, np.nan, np.float32)
    device = DeviceSoftmaxCrossEntropy(HostBackend(library), options, block=block)
    loss = device(
        scores.ctypes.data,
        targets.ctypes.data,
        layout,
        label_weights=_address(weights),
        grad_out=_address(got.get("grad")),
        grad_scale=0.7,
        probs_out=_address(got.get("probs")),
        loss_out=loss_top.ctypes.data,
    )
    return layout, (expected_loss, expected), (loss, got, loss_top[0])


@pytest.mark.parametrize("block", [True, False], ids=["block", "thread"])
@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: f"{o}"[8:60])
@pytest.mark.parametrize(
    "kind,shape_name",
    [(k, s) for k, s in itertools.product(KINDS, SHAPES) if s == "rows" or k in ("dense", "index")],
)
def test_device_kernels_match_cpu_engine(library, kind, shape_name, options, block):
    rng = np.random.default_rng([KINDS.index(kind), list(SHAPES).index(shape_name)])
    scores, targets, weights, form = loss_inputs(kind, SHAPES[shape_name], rng)
    if kind == "index":
        options = Options(**{**options.__dict__, "ignore_label": 255})
    _, (want_loss, want), (loss, got, top) = _run_both(
        library, scores, targets, weights, form, options, block
    )
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    np.testing.assert_allclose(top, want_loss, rtol=1e-5)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("options", OPTION_SETS[:4], ids=lambda o: f"{o}"[8:60])
@pytest.mark.parametrize("shape", [(4, 5), (2, 5, 3)], ids=["rows", "positions"])
def test_dense_target_gradient_matches(library, options, shape):
    rng = np.random.default_rng(3)
    scores, targets, _, _ = loss_inputs("dense", shape, rng)
    layout = layout_for(scores.shape, targets.shape, 1, "dense")
    want = target_grad(scores, targets, layout, options) * np.float32(0.3)
    got = np.full_like(scores, np.nan)
    device = DeviceSoftmaxCrossEntropy(HostBackend(library), options)
    device(
        scores.ctypes.data,
        targets.ctypes.data,
        layout,
        target_grad_out=got.ctypes.data,
        target_grad_scale=0.3,
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: f"{o}"[8:60])
def test_label_weight_gradient_matches(library, options):
    rng = np.random.default_rng(4)
    scores, labels, weights, form = loss_inputs("weighted", (6, 5), rng)
    layout = layout_for(scores.shape, labels.shape, 1, form)
    want = label_weight_grad(scores, labels, weights, layout, options) * np.float32(2.0)
    got = np.full_like(weights, np.nan)
    device = DeviceSoftmaxCrossEntropy(HostBackend(library), options)
    device(
        scores.ctypes.data,
        labels.ctypes.data,
        layout,
        label_weights=weights.ctypes.data,
        label_weight_grad_out=got.ctypes.data,
        target_grad_scale=2.0,
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_default_launch_plan(library):
    """Rows with many classes: a block per row; positions along inner or few classes: a
    thread per position; three launches, the outputs kernel only when outputs are wanted."""
    backend = HostBackend(library)
    device = DeviceSoftmaxCrossEntropy(backend)
    for shape, suffix in [((2, 40), "block"), ((2, 5), "thread"), ((2, 40, 3), "thread")]:
        scores = np.zeros(shape, np.float32)
        labels = np.zeros((shape[0], *shape[2:]), np.float32)
        layout = layout_for(shape, labels.shape)
        grad = np.empty_like(scores)
        backend.launches.clear()
        device(scores.ctypes.data, labels.ctypes.data, layout, grad_out=grad.ctypes.data)
        assert backend.launches == [f"stats_{suffix}", "finish", f"outputs_{suffix}"]
        np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-6)  # p - onehot sums to 0
        backend.launches.clear()
        device(scores.ctypes.data, labels.ctypes.data, layout)
        assert backend.launches == [f"stats_{suffix}", "finish"]


@pytest.mark.parametrize("block", [True, False], ids=["block", "thread"])
@pytest.mark.parametrize(
    "kind,spoil,code,row",
    [
        ("dense", lambda s, t, w: s.__setitem__((2, 1), np.nan), BAD_SCORES, 2),
        ("dense", lambda s, t, w: s.__setitem__((3, 0), -np.inf), BAD_SCORES, 3),
        ("dense", lambda s, t, w: t.__setitem__((2, 1), -0.5), BAD_TARGETS, 2),
        ("dense", lambda s, t, w: t.__setitem__((4, 2), np.inf), BAD_TARGETS, 4),
        ("index", lambda s, t, w: t.__setitem__(3, 5), BAD_TARGETS, 3),
        ("index", lambda s, t, w: t.__setitem__(3, 1.5), BAD_TARGETS, 3),
        ("index", lambda s, t, w: t.__setitem__(3, -1), BAD_TARGETS, 3),
        ("weighted", lambda s, t, w: t.__setitem__((3, 1), 7), BAD_TARGETS, 3),
        ("weighted", lambda s, t, w: t.__setitem__((3, 1), -2), BAD_TARGETS, 3),
        ("weighted", lambda s, t, w: w.__setitem__((3, 2), -1.0), BAD_TARGETS, 3),
        ("weighted", lambda s, t, w: w.__setitem__((3, 2), np.nan), BAD_TARGETS, 3),
    ],
)
def test_bad_input_writes_nothing_and_says_where(library, kind, spoil, code, row, block):
    rng = np.random.default_rng(5)
    scores, targets, weights, form = loss_inputs(kind, (6, 5), rng)
    if kind == "index":
        targets[1] = 0  # no ignore_label here
    spoil(scores, targets, weights)
    layout = layout_for(scores.shape, targets.shape, 1, form)
    grad, probs = np.full_like(scores, 9.0), np.full_like(scores, 9.0)
    top = np.full(1, 9.0, np.float32)
    device = DeviceSoftmaxCrossEntropy(HostBackend(library), block=block)
    with pytest.raises(DeviceInputError) as caught:
        device(
            scores.ctypes.data,
            targets.ctypes.data,
            layout,
            label_weights=_address(weights),
            grad_out=grad.ctypes.data,
            probs_out=probs.ctypes.data,
            loss_out=top.ctypes.data,
        )
    assert (caught.value.code, caught.value.position) == (code, row)
    assert (grad == 9.0).all() and (probs == 9.0).all() and top[0] == 9.0
    with pytest.raises(ValueError if code == BAD_TARGETS else FloatingPointError):
        SoftmaxCrossEntropy()(scores, targets, layout, label_weights=weights)


def test_fill(library):
    device = DeviceSoftmaxCrossEntropy(HostBackend(library))
    data = np.arange(7, dtype=np.float32)
    device.fill(data.ctypes.data, 3, 0.0)
    np.testing.assert_array_equal(data, [0, 0, 0, 3, 4, 5, 6])


@pytest.mark.parametrize("block", [True, False], ids=["block", "thread"])
def test_large_scores_are_shifted_by_their_maximum(library, block):
    """exp(s) overflows float32 past 88: only the max over all of a row's classes (not one
    thread's share) keeps it finite when one score stands far above the rest."""
    rng = np.random.default_rng(6)
    scores = rng.standard_normal((6, 40)).astype(np.float32)
    scores[np.arange(6), rng.integers(0, 40, 6)] += 400
    labels = rng.integers(0, 40, 6).astype(np.float32)
    _, (want_loss, want), (loss, got, _) = _run_both(
        library, scores, labels, None, "index", Options(), block
    )
    assert np.isfinite(loss)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-5)
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_kernels_compile_with_nvrtc():
    """The compiler CuPy uses on a GPU (NVRTC: no C library headers) takes kernels.cu for
    every architecture the CUDA build targets; runs where requirements-gpu.txt is installed
    (CAFFE_GPU=1), no GPU needed."""
    try:
        from cupy_backends.cuda.libs import nvrtc
    except ImportError as why:
        pytest.skip(f"NVRTC (requirements-gpu.txt) is not installed: {why}")
    source = KERNELS.read_text()
    for arch in ("sm_75", "sm_80", "sm_90", "sm_100", "sm_120"):
        program = nvrtc.createProgram(source, "kernels.cu", [], [])
        try:
            nvrtc.compileProgram(program, ["-std=c++17", f"-arch={arch}"])
        except Exception as why:
            pytest.fail(f"{arch}: {why}\n{nvrtc.getProgramLog(program)}")


def test_launch_plans_are_reused_until_a_buffer_grows(library):
    device = DeviceSoftmaxCrossEntropy(HostBackend(library))
    scores = np.zeros((4, 40), np.float32)
    labels = np.zeros(4, np.float32)
    layout = layout_for(scores.shape, labels.shape)
    for _ in range(3):
        device(scores.ctypes.data, labels.ctypes.data, layout)
    assert len(device._plans) == 1
    big = np.zeros((64, 40), np.float32)
    big_labels = np.ones(64, np.float32)
    loss = device(big.ctypes.data, big_labels.ctypes.data, layout_for(big.shape, (64,)))
    assert len(device._plans) == 1  # the growth dropped the old plan
    np.testing.assert_allclose(loss, np.log(40), rtol=1e-6)
