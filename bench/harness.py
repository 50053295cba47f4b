"""The loss benchmarks' harness (bench/bench.py, bench/bench_gpu.py): interleaved timing, the
loss nets (ours, ours with the targets' gradient, Caffe's native loss) built with NetSpec and
fed from numpy, PyTorch's CPU peer, and what an iteration allocates and the engine retains."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
import tracemalloc

import caffe
import numpy as np
from caffe import layers as L
from caffe.proto import caffe_pb2

from python_layers.netspec import softmax_loss

RNG = np.random.default_rng(0)  # every benchmark input of a run, drawn in turn
ROUNDS = 3  # interleaved rounds per row; each contender keeps its best


def median_ms(run, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def interleaved_ms(runs: dict, repeats: int, rounds: int = ROUNDS) -> dict:
    """{name: best over ``rounds`` of the median of ``repeats`` runs}, the contenders taking
    turns within each round (None stays None: a peer that is not installed)."""
    times = {name: [] for name, run in runs.items() if run is not None}
    for _ in range(rounds):
        for name in times:
            times[name].append(median_ms(runs[name], repeats))
    return {name: min(times[name]) if name in times else None for name in runs}


LOSSES = ("ours", "distill", "native")


def loss_net_spec(loss: str, scores_shape, targets_shape, **params) -> caffe_pb2.NetParameter:
    """Input (scores, targets) -> the loss ``loss``, one of LOSSES: "ours", gradients to the
    scores only (propagate_down), as in training, where targets come from data; "distill",
    ours with force_backward, so that the targets' gradient is computed too; "native",
    Caffe's SoftmaxWithLoss (index labels), scores only. ``params``: our param_str keys."""
    if loss not in LOSSES:
        raise ValueError(f"loss {loss!r}: expected one of {LOSSES}")
    n = caffe.NetSpec()
    n.scores, n.targets = L.Input(
        name="input", shape=[dict(dim=list(scores_shape)), dict(dim=list(targets_shape))], ntop=2
    )
    if loss == "native":
        n.loss = L.SoftmaxWithLoss(n.scores, n.targets, loss_weight=1)
    else:
        n.loss = softmax_loss(n.scores, n.targets, **params)
    spec = n.to_proto()
    if loss == "distill":
        spec.force_backward = True
    else:
        spec.layer[-1].propagate_down.extend([True, False])
    return spec


def load_net(spec: caffe_pb2.NetParameter) -> caffe.Net:
    """A caffe.Net from ``spec``, in the TRAIN phase (pycaffe reads nets from files only)."""
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(str(spec))
    net = caffe.Net(f.name, caffe.TRAIN)
    os.unlink(f.name)
    return net


def build_net(loss: str, scores_shape, targets_shape, **params) -> caffe.Net:
    """:func:`loss_net_spec` as a caffe.Net, in the TRAIN phase."""
    return load_net(loss_net_spec(loss, scores_shape, targets_shape, **params))


def run_net(net, scores, targets):
    net.blobs["scores"].data[...] = scores
    net.blobs["targets"].data[...] = targets
    return lambda: (net.forward(), net.backward())


def allocation_per_iteration(run) -> int:
    """Peak bytes allocated during one iteration (tracemalloc), after warm-up."""
    run()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak - base


def torch_runner(scores, targets, kind, threads):
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    torch.set_num_threads(threads)
    x = torch.from_numpy(scores).requires_grad_()
    if kind == "index":
        y = torch.from_numpy(targets.reshape(scores.shape[0], *scores.shape[2:])).long()
    elif kind == "distill":  # the normalisation is part of the differentiated graph, as ours
        raw = torch.from_numpy(targets.copy()).requires_grad_()
    else:
        y = torch.from_numpy(targets / targets.sum(axis=1, keepdims=True))

    def run():
        x.grad = None
        if kind == "distill":
            raw.grad = None
            F.cross_entropy(x, raw / raw.sum(dim=1, keepdim=True)).backward()
        else:
            F.cross_entropy(x, y).backward()

    return run


def retained(net) -> int:
    return net.layers[list(net._layer_names).index("loss")].engine.retained_bytes()


def fmt(value: float | None, digits: int = 2) -> str:
    """A table cell: the value rounded, or a dash for a peer that did not run."""
    return "—" if value is None else f"{value:.{digits}f}"
