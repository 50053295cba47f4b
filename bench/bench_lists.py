"""The benchmark's label-list rows (bench/bench.py): k = 1..5 labels per row out of K, against
the same targets dense, index labels (the first listed), Caffe's native SoftmaxWithLoss
(index) and PyTorch with the dense (probability) targets; and their table."""

from __future__ import annotations

import numpy as np
from harness import (
    RNG,
    allocation_per_iteration,
    build_net,
    fmt,
    interleaved_ms,
    retained,
    run_net,
    torch_runner,
)

LABEL_LIST_SHAPES = [(256, 1000), (256, 17000)]
LABEL_WIDTH = 8  # K: labels per row at most; each row has 1..5


def make_label_lists(rows: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, K) lists of 1..5 distinct classes, -1 padded; and the same targets dense."""
    lists = np.full((rows, LABEL_WIDTH), -1, np.float32)
    dense = np.zeros((rows, classes), np.float32)
    for row in range(rows):
        chosen = RNG.choice(classes, size=RNG.integers(1, 6), replace=False)
        lists[row, : chosen.size] = chosen
        dense[row, chosen] = 1
    return lists, dense


def bench_label_lists(shape: tuple[int, int], repeats: int, threads: int) -> dict:
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


def label_list_rows(quick: bool, repeats: int, threads: int) -> list[dict]:
    """One row per shape of LABEL_LIST_SHAPES (the first only if ``quick``)."""
    return [
        bench_label_lists(shape, repeats, threads)
        for shape in (LABEL_LIST_SHAPES[:1] if quick else LABEL_LIST_SHAPES)
    ]


def print_label_list_table(lists: list[dict]) -> None:
    """The label-list rows as a Markdown table, after a line saying what they compare."""
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
