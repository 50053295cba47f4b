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
to PyTorch (bench/bench_lists.py). Prints the tables and writes bench/results.json. The
timing, the nets and the PyTorch peer: bench/harness.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import caffe
from bench_lists import label_list_rows, print_label_list_table
from caffe import layers as L
from harness import (
    RNG,
    ROUNDS,
    allocation_per_iteration,
    build_net,
    fmt,
    interleaved_ms,
    load_net,
    median_ms,
    retained,
    run_net,
    torch_runner,
)

from examples.machine import describe
from python_layers.loss.engine import SoftmaxCrossEntropy
from python_layers.netspec import softmax_loss

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
    lists = label_list_rows(args.quick, args.repeats, threads)
    print_label_list_table(lists)
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
