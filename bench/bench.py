"""Benchmark: SoftmaxLossLayer forward + backward through a real caffe.Net, against peers.

    make bench            # or: .venv/bin/python bench/bench.py [--repeats 9] [--quick]

Peers measured in the same run, on the same data: Caffe's native SoftmaxWithLoss (index
labels) in a caffe.Net; PyTorch's CPU cross_entropy (probability and index targets, forward +
backward, same thread count) when torch is importable; and the memory floor, the bytes of one
read of scores and targets plus one write of the gradient over the copy bandwidth measured
here with numpy. Every contender of a row is timed in interleaved rounds (each round: the
median of ``--repeats`` iterations of each, in turn), and each keeps its best round, so that
drifting machine load hits all alike. A second table times label-list targets (k = 1..5
labels per row, K = 8) against the same targets given dense, as index labels, natively and
to PyTorch. Prints the tables and writes bench/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import caffe
from caffe import layers as L
from caffe.proto import caffe_pb2

from examples.machine import describe
from python_layers.netspec import softmax_loss
from python_layers.softmax_math import SoftmaxCrossEntropy

SHAPES = [
    ((256, 1000), "dense"),
    ((256, 1000), "index"),
    ((256, 17000), "dense"),
    ((256, 17000), "index"),
    ((24, 17000), "dense"),
    ((24, 17000), "index"),
    ((8, 21, 128, 128), "index"),
    ((256, 1000), "distill"),
    ((256, 17000), "distill"),
]
RNG = np.random.default_rng(0)


ROUNDS = 3  # interleaved rounds per row; each contender keeps its best
LABEL_LIST_SHAPES = [(256, 1000), (256, 17000)]
LABEL_WIDTH = 8  # K: labels per row at most; each row has 1..5


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


def copy_bandwidth() -> float:
    """Bytes per second of a large numpy copy (one read + one write per element)."""
    source = np.ones(64 * 2**20 // 4, np.float32)
    target = np.empty_like(source)
    ms = median_ms(lambda: np.copyto(target, source), 9)
    return 2 * source.nbytes / (ms / 1e3)


def make_data(shape, kind):
    """Scores, targets (dense k-hot, k = 1..3, or index) and index labels for the native peer.
    ``distill``: dense targets whose gradient is wanted too (a teacher's output)."""
    scores = RNG.normal(0, 2, shape).astype(np.float32)
    classes = shape[1]
    positions = (shape[0], *shape[2:])
    labels = RNG.integers(0, classes, positions).astype(np.float32)
    if kind == "index":
        return scores, labels, labels
    targets = np.zeros(shape, np.float32)  # k-hot, k = 1..3, the label always among them
    moved = np.moveaxis(targets, 1, -1).reshape(-1, classes)
    for row, label in zip(moved, labels.reshape(-1).astype(int)):
        row[label] = 1
        row[RNG.integers(0, classes, RNG.integers(0, 3))] = 1
    targets = np.moveaxis(moved.reshape(*positions, classes), -1, 1).copy()
    return scores, targets, labels


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


def bench_shape(shape, kind, repeats, bandwidth, threads):
    scores, targets, labels = make_data(shape, kind)
    ours_net = build_net("distill" if kind == "distill" else "ours", shape, targets.shape)
    ours = run_net(ours_net, scores, targets)
    native = run_net(build_net("native", shape, labels.shape), scores, labels)
    torch_run = torch_runner(scores, targets, kind, threads)
    ms = interleaved_ms({"ours": ours, "native": native, "torch": torch_run}, repeats)
    row = {"shape": list(shape), "targets": kind}
    row.update({f"{name}_ms": value for name, value in ms.items()})
    row["allocated_bytes_per_iter"] = allocation_per_iteration(ours)
    row["retained_bytes"] = retained(ours_net)
    row["score_blob_bytes"] = scores.nbytes
    moved = scores.nbytes + targets.nbytes + scores.nbytes  # read s, read t, write grad
    if kind == "distill":
        moved += targets.nbytes  # write the targets' gradient
    row["floor_ms"] = 1e3 * moved / bandwidth
    return row


def make_label_lists(rows: int, classes: int):
    """(rows, K) lists of 1..5 distinct classes, -1 padded; and the same targets dense."""
    lists = np.full((rows, LABEL_WIDTH), -1, np.float32)
    dense = np.zeros((rows, classes), np.float32)
    for row in range(rows):
        chosen = RNG.choice(classes, size=RNG.integers(1, 6), replace=False)
        lists[row, : chosen.size] = chosen
        dense[row, chosen] = 1
    return lists, dense


def bench_label_lists(shape, repeats, threads):
    """Label lists against the same targets dense, index labels (the first listed), native
    SoftmaxWithLoss (index) and PyTorch with the dense (probability) targets."""
    scores = RNG.normal(0, 2, shape).astype(np.float32)
    lists, dense = make_label_lists(*shape)
    index = lists[:, 0].copy()
    lists_net = build_net("ours", shape, lists.shape, targets="labels")
    ours = run_net(lists_net, scores, lists)
    runs = {
        "lists": ours,
        "dense": run_net(build_net("ours", shape, dense.shape), scores, dense),
        "index": run_net(build_net("ours", shape, index.shape), scores, index),
        "native": run_net(build_net("native", shape, index.shape), scores, index),
        "torch": torch_runner(scores, dense, "dense", threads),
    }
    row = {"shape": list(shape), "labels_per_row": [1, 5], "label_width": LABEL_WIDTH}
    row.update({f"{name}_ms": value for name, value in interleaved_ms(runs, repeats).items()})
    row["allocated_bytes_per_iter"] = allocation_per_iteration(ours)
    row["retained_bytes"] = retained(lists_net)
    row["target_bytes_lists"], row["target_bytes_dense"] = lists.nbytes, dense.nbytes
    return row


def example_net_ratio(repeats):
    """Iteration time (forward+backward) of the example's conv net, native loss / our loss."""
    from examples.digits_multilabel.nets import body

    def net_with(loss):
        n = caffe.NetSpec()
        n.data, n.label = L.Input(shape=[dict(dim=[64, 1, 32, 32]), dict(dim=[64])], ntop=2)
        body(n, n.data)
        if loss == "ours":
            n.loss = softmax_loss(n.scores, n.label)
        else:
            n.loss = L.SoftmaxWithLoss(n.scores, n.label)
        net = load_net(n.to_proto())
        net.blobs["data"].data[...] = RNG.uniform(0, 1, (64, 1, 32, 32))
        net.blobs["label"].data[...] = RNG.integers(0, 10, 64)
        return lambda: (net.forward(), net.backward())

    runs = {loss: net_with(loss) for loss in ("ours", "native")}
    times = {loss: [] for loss in runs}
    for _ in range(3):  # interleave, so that drifting machine load hits both alike
        for loss, run in runs.items():
            times[loss].append(median_ms(run, repeats))
    ms = {loss: min(values) for loss, values in times.items()}
    return {
        "ours_ms": ms["ours"],
        "native_ms": ms["native"],
        "speed_ratio": ms["native"] / ms["ours"],
    }


def example_net_in_fresh_process(repeats: int) -> dict:
    """:func:`example_net_ratio` in its own process: threads that PyTorch's or numba's OpenMP
    runtimes left behind in this one would otherwise compete with Caffe's OpenBLAS."""
    import subprocess

    done = subprocess.run(
        [sys.executable, __file__, "--example-net-only", f"--repeats={repeats}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def data_layer_in_fresh_process() -> dict:
    """bench/bench_data.py (the image data layer) in its own process; its table is echoed."""
    import subprocess

    done = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "bench_data.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    *lines, last = done.stdout.strip().splitlines()
    print("\n".join(lines))
    return json.loads(last)


def fmt(value, digits=2):
    return "—" if value is None else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="only the first two shapes")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.json")
    parser.add_argument(
        "--record",
        action="store_true",
        help="also keep the results as the next docs/performance/run-N.json, which the tables "
        "of docs/performance.md are written from (scripts/doc_results.py)",
    )
    parser.add_argument("--example-net-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    caffe.set_mode_cpu()
    if args.example_net_only:
        print(json.dumps(example_net_ratio(args.repeats)))
        return
    threads = SoftmaxCrossEntropy().threads
    bandwidth = copy_bandwidth()
    rows = [
        bench_shape(shape, kind, args.repeats, bandwidth, threads)
        for shape, kind in (SHAPES[:2] if args.quick else SHAPES)
    ]
    print(
        f"fwd+bwd, best of {ROUNDS} interleaved rounds of the median of {args.repeats}; "
        f"{threads} threads; copy bandwidth "
        f"{bandwidth / 1e9:.1f} GB/s; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores\n"
    )
    print(
        "| shape | targets | ours ms | native ms | torch ms | floor ms | ours/native | "
        "ours/torch | ours/floor | alloc/iter | retained/scores |"
    )
    print("|---" * 11 + "|")
    for r in rows:
        print(
            f"| {tuple(r['shape'])} | {r['targets']} | {fmt(r['ours_ms'])} | "
            f"{fmt(r['native_ms'])} | {fmt(r['torch_ms'])} | {fmt(r['floor_ms'])} | "
            f"{fmt(r['ours_ms'] / r['native_ms'])} | "
            f"{fmt(r['torch_ms'] and r['ours_ms'] / r['torch_ms'])} | "
            f"{fmt(r['ours_ms'] / r['floor_ms'])} | "
            f"{r['allocated_bytes_per_iter'] / 1024:.1f} KiB | "
            f"{r['retained_bytes'] / r['score_blob_bytes']:.2f} |"
        )
    lists = [
        bench_label_lists(shape, args.repeats, threads)
        for shape in (LABEL_LIST_SHAPES[:1] if args.quick else LABEL_LIST_SHAPES)
    ]
    print(
        f"\nlabel lists (k = 1..5 labels per row, K = {LABEL_WIDTH}) vs the same targets "
        "dense, index labels, native SoftmaxWithLoss (index) and torch (dense targets):\n"
    )
    print(
        "| shape | lists ms | dense ms | index ms | native ms | torch ms | lists/index | "
        "lists/torch | alloc/iter | target bytes/row: lists vs dense |"
    )
    print("|---" * 10 + "|")
    for r in lists:
        rows_ = r["shape"][0]
        print(
            f"| {tuple(r['shape'])} | {fmt(r['lists_ms'])} | {fmt(r['dense_ms'])} | "
            f"{fmt(r['index_ms'])} | {fmt(r['native_ms'])} | {fmt(r['torch_ms'])} | "
            f"{fmt(r['lists_ms'] / r['index_ms'])} | "
            f"{fmt(r['torch_ms'] and r['lists_ms'] / r['torch_ms'])} | "
            f"{r['allocated_bytes_per_iter'] / 1024:.1f} KiB | "
            f"{r['target_bytes_lists'] // rows_} B vs {r['target_bytes_dense'] // rows_} B |"
        )
    whole = None if args.quick else example_net_in_fresh_process(args.repeats)
    data_layer = None if args.quick else data_layer_in_fresh_process()
    if whole:
        print(
            f"\nexample conv net, batch 64, fwd+bwd: native loss {whole['native_ms']:.2f} ms, "
            f"ours {whole['ours_ms']:.2f} ms: speed ours/native = {whole['speed_ratio']:.3f}"
        )
    args.out.write_text(
        json.dumps(
            {
                "threads": threads,
                "copy_bandwidth": bandwidth,
                "rows": rows,
                "label_lists": lists,
                "example_net": whole,
                "data_layer": data_layer,
                "machine": f"{describe()}, {threads} threads",
                "date": time.strftime("%Y-%m-%d"),
            },
            indent=2,
        )
    )
    print(f"\nwrote {args.out}")
    if args.record:
        runs = Path(__file__).resolve().parent.parent / "docs" / "performance"
        runs.mkdir(exist_ok=True)
        kept = runs / f"run-{len(list(runs.glob('run-*.json'))) + 1}.json"
        kept.write_text(args.out.read_text())
        print(f"kept as {kept}")


if __name__ == "__main__":
    main()
