"""The layer's GPU path through real caffe.Nets, on the host.

No GPU here, so the three things that need one are replaced: ``device.gpu_mode`` says GPU,
the blobs' "device addresses" are their host arrays' addresses, and the backend is the host
build of kernels.cu (tests/cuda_host.py). Everything else is the real layer in a real net:
its choice of engine, what it hands the GPU engine, the loss written into the top, backward's
rescaling and zeros, the label weights' gradient, and the bad-input errors. The CPU engine is
made to fail during these runs, so the results can only come from the GPU path.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from cuda_host import HostBackend
from nets import input_layer, net, softmax_loss_layer

from python_layers.loss import engine as cpu_engine
from python_layers.loss.cuda import device
from python_layers.params import softmax_loss_params
from python_layers.testing import check_gradients


@pytest.fixture
def gpu_path(monkeypatch, library):
    """Run the layer's GPU path on the host; returns the backend (it records launches)."""
    backend = HostBackend(library)
    monkeypatch.setattr(device, "gpu_mode", lambda: True)
    monkeypatch.setattr(device, "data_address", lambda blob: blob.data.ctypes.data)
    monkeypatch.setattr(device, "diff_address", lambda blob: blob.diff.ctypes.data)
    monkeypatch.setattr(device, "make_backend", lambda: backend)
    return backend


def _forbid_cpu_engine(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the CPU engine ran on the GPU path")

    for method in ("__call__", "forward", "backward"):
        monkeypatch.setattr(cpu_engine.SoftmaxCrossEntropy, method, fail)


CASES = {
    "dense": dict(shape=(6, 40), targets=(6, 40), bottoms=(), params={}),
    "dense-positions": dict(shape=(2, 5, 3, 2), targets=(2, 5, 3, 2), bottoms=(), params={}),
    "index": dict(shape=(6, 40), targets=(6,), bottoms=(), params={"ignore_label": 3}),
    "lists": dict(shape=(6, 40), targets=(6, 3), bottoms=("w",), params={"targets": "labels"}),
}


def _feed(n, case, rng):
    scores = rng.standard_normal(case["shape"]).astype(np.float32) * 2
    n.blobs["s"].data[...] = scores
    classes = case["shape"][1]
    if case["targets"] == case["shape"]:
        t = (rng.random(case["shape"]) < 0.2) * rng.random(case["shape"])
        t.reshape(t.shape[0], -1)[0, :3] = 1.0  # no empty row
    elif case["bottoms"]:
        t = rng.integers(-1, classes, case["targets"])
        t[:, 0] = rng.integers(0, classes, case["targets"][0])
        n.blobs["w"].data[...] = rng.random(case["targets"]) + 0.1
    else:
        t = rng.integers(0, classes, case["targets"])
    n.blobs["t"].data[...] = t


def _net(make_net, caffe, case, phase, engine, loss_weight=1.5):
    blobs = {"s": case["shape"], "t": case["targets"]}
    if case["bottoms"]:
        blobs["w"] = case["targets"]
    prototxt = net(
        input_layer(**blobs),
        softmax_loss_layer(
            "s",
            "t",
            tops=("loss", "prob"),
            loss_weight=loss_weight,
            extra_bottoms=case["bottoms"],
            engine=engine,
            **case["params"],
        ),
    )
    return make_net(prototxt, getattr(caffe, phase))


def _step(n, seed, case):
    _feed(n, case, np.random.default_rng(seed))
    n.forward()
    n.backward()
    out = {"loss": float(n.blobs["loss"].data), "prob": n.blobs["prob"].data.copy()}
    for name in n.blobs:
        if name in ("s", "t", "w"):
            out[f"d{name}"] = n.blobs[name].diff.copy()
    return out


@pytest.mark.parametrize("phase", ["TRAIN", "TEST"])
@pytest.mark.parametrize("name", CASES)
def test_gpu_path_equals_cpu_path(caffe, make_net, gpu_path, monkeypatch, name, phase):
    case = CASES[name]
    want = [_step(_net(make_net, caffe, case, phase, "cpu"), seed, case) for seed in (1, 2)]
    _forbid_cpu_engine(monkeypatch)
    n = _net(make_net, caffe, case, phase, "auto")
    got = [_step(n, seed, case) for seed in (1, 2)]  # the second call reuses buffers
    for w, g in zip(want, got, strict=True):
        assert set(w) == set(g)
        for key in w:
            np.testing.assert_allclose(g[key], w[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert "stats_block" in gpu_path.launches or "stats_thread" in gpu_path.launches


def test_backward_reads_the_loss_weight_and_never_the_diffs(caffe, make_net, gpu_path, monkeypatch):
    """A top diff changed between forward and backward, and garbage in the bottoms' diffs:
    backward computes from the data and what forward kept, as the CPU path does."""
    case = CASES["dense"]
    runs = {}
    for engine in ("cpu", "auto"):
        if engine == "auto":
            _forbid_cpu_engine(monkeypatch)
        n = _net(make_net, caffe, case, "TRAIN", engine)
        _feed(n, case, np.random.default_rng(3))
        n.forward()
        n.blobs["loss"].diff[...] = 4.0
        n.blobs["s"].diff[...] = np.nan
        n.blobs["t"].diff[...] = 1e30
        n.backward()
        runs[engine] = (n.blobs["s"].diff.copy(), n.blobs["t"].diff.copy())
    for got, want in zip(runs["auto"], runs["cpu"], strict=True):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", CASES)
def test_gradient_checker_passes_on_the_gpu_path_in_the_train_phase(
    caffe, make_net, gpu_path, monkeypatch, name
):
    case = CASES[name]
    n = _net(make_net, caffe, case, "TRAIN", "auto", loss_weight=1.0)
    _feed(n, case, np.random.default_rng(12))
    if case["targets"] == case["shape"]:  # keep dense targets a step away from 0
        n.blobs["t"].data[...] += 0.5
    _forbid_cpu_engine(monkeypatch)
    bottoms = (0, 1) if case["targets"] == case["shape"] else (0, 2) if case["bottoms"] else (0,)
    assert check_gradients(n, "loss", bottoms=bottoms) == []


@pytest.mark.parametrize(
    "name,spoil,message",
    [
        ("dense", lambda n: n.blobs["s"].data.__setitem__((2, 5), np.nan), "non-finite"),
        ("dense", lambda n: n.blobs["t"].data.__setitem__((4, 1), -1), "dense targets must be"),
        ("index", lambda n: n.blobs["t"].data.__setitem__(2, 40), "index targets must be"),
        ("lists", lambda n: n.blobs["w"].data.__setitem__((1, 0), -1), "label weights must be"),
    ],
)
def test_bad_input_gets_the_cpu_engines_error(caffe, make_net, gpu_path, name, spoil, message):
    case = CASES[name]
    errors = {}
    for engine in ("cpu", "auto"):
        n = _net(make_net, caffe, case, "TRAIN", engine)
        _feed(n, case, np.random.default_rng(4))
        spoil(n)
        n.blobs["s"].diff[...] = 7.0
        with pytest.raises((ValueError, FloatingPointError)) as caught:
            n.forward()
        errors[engine] = str(caught.value)
        if engine == "auto":  # nothing written on the device path
            assert (n.blobs["s"].diff == 7.0).all()
    assert errors["auto"] == errors["cpu"]
    assert message in errors["auto"] and errors["auto"].startswith("SoftmaxLossLayer: ")


def test_engine_cpu_keeps_the_cpu_engine(caffe, make_net, gpu_path):
    n = _net(make_net, caffe, CASES["index"], "TRAIN", "cpu")
    _step(n, 5, CASES["index"])
    assert gpu_path.launches == []


def test_cpu_mode_uses_the_cpu_engine(caffe, make_net, monkeypatch):
    """CPU-only builds have no caffe.get_mode; GPU builds in CPU mode say "CPU": either way
    the device properties (which abort without a GPU) are never read."""
    monkeypatch.setattr(device, "data_address", lambda blob: pytest.fail("device address read"))
    monkeypatch.setattr(caffe, "get_mode", lambda: "CPU", raising=False)
    assert not device.gpu_mode()
    n = _net(make_net, caffe, CASES["index"], "TRAIN", "auto")
    assert np.isfinite(_step(n, 6, CASES["index"])["loss"])


def test_engine_gpu_errors(caffe, make_net, monkeypatch):
    case = CASES["index"]
    if not hasattr(caffe, "get_mode"):  # CPU-only pycaffe: refused at set-up
        with pytest.raises(ValueError, match='"engine": "gpu" needs the GPU build of Caffe'):
            _net(make_net, caffe, case, "TRAIN", "gpu")
        monkeypatch.setattr(caffe, "get_mode", lambda: "CPU", raising=False)
    # the adapter is picked at reshape: when the net is built, and again before each forward
    with pytest.raises(ValueError, match='"engine": "gpu" needs the net in GPU mode'):
        _net(make_net, caffe, case, "TRAIN", "gpu")


def test_gpu_net_without_cupy_falls_back_once(caffe, make_net, monkeypatch, capsys):
    def no_cupy():
        raise ImportError("the GPU engine needs CuPy for CUDA 13 (...): No module named 'cupy'")

    monkeypatch.setattr(caffe, "get_mode", lambda: "GPU", raising=False)  # a GPU build
    monkeypatch.setattr(device, "gpu_mode", lambda: True)
    monkeypatch.setattr(device, "make_backend", no_cupy)
    case = CASES["index"]
    n = _net(make_net, caffe, case, "TRAIN", "auto")
    first, second = _step(n, 8, case), _step(n, 8, case)
    assert first["loss"] == second["loss"]
    said = capsys.readouterr().out
    assert said.count("GPU net, CPU engine") == 1 and "cupy" in said
    with pytest.raises(ImportError, match="SoftmaxLossLayer: the GPU engine needs CuPy"):
        _net(make_net, caffe, case, "TRAIN", "gpu")


def test_param_str_engine_key_is_checked(caffe, make_net):
    with pytest.raises(ValueError, match="'engine' got 'cuda'; expected one of"):
        _net(make_net, caffe, CASES["index"], "TRAIN", "cuda")
    assert softmax_loss_params("")["engine"] == "auto"  # the default the README gives


def test_the_build_under_test(caffe):
    """CAFFE_GPU=1 runs (CI's second suite) really test the CUDA build, in CPU mode; the CPU
    build has neither get_mode nor NCCL."""
    if not hasattr(caffe, "get_mode"):
        assert os.environ.get("CAFFE_GPU") != "1", "CAFFE_GPU=1, but pycaffe is the CPU build"
        assert not caffe.has_nccl()
        return
    assert caffe.get_mode() == "CPU"  # conftest's caffe fixture; no GPU is touched
    assert caffe.has_nccl()  # multi-GPU python/train.py needs Caffe built with NCCL
    caffe.set_mode_gpu()  # only records the mode: safe without a GPU
    try:
        assert caffe.get_mode() == "GPU" and device.gpu_mode()
    finally:
        caffe.set_mode_cpu()
    assert not device.gpu_mode()
