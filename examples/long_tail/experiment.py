"""Softmax with 1/k targets (ours, fed label lists) vs per-class sigmoid (Caffe's native
SigmoidCrossEntropyLoss, fed dense targets) on the generated long-tailed task.

    python -m examples.long_tail.experiment [--seeds 1 2 3 4 5] [--iterations 3000]

Fairness: each loss gets its own base learning rate, the best test-free choice from a small
sweep (train on ``train``, score mAP on ``val``, a split drawn apart from the test set); then
both train with the same net, data, schedule and seeds, and are scored on ``test``. Paired by
seed: the same initial weights (Caffe's ``random_seed``) and the same batch order. A run whose
test mAP is within 0.01 of chance is reported as collapsed, never dropped. Writes
``docs/long_tail/``: results.md, results.json, results.png.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from examples.machine import describe
from python_layers import metrics

from . import data

LOSSES = ("softmax", "sigmoid")
LEARNING_RATES = (0.01, 0.03, 0.1, 0.3, 1.0)
SWEEP_SEED = 0
BATCH = 128
HIDDEN = 256
OUT = Path("docs/long_tail")
COLLAPSE_MARGIN = 0.01


def net_text(loss: str, split: str, data_dir: Path) -> str:
    """HDF5Data -> fc(256) relu -> fc(C) -> the loss; label lists for ours, dense for sigmoid."""
    import caffe
    from caffe import layers as L
    from caffe import params as P

    from python_layers.netspec import softmax_loss

    n = caffe.NetSpec()
    if loss == "softmax":
        n.data, n.labels = L.HDF5Data(
            source=str(data_dir / f"{split}.txt"), batch_size=BATCH, shuffle=True, ntop=2
        )
    else:
        n.data, n.label = L.HDF5Data(
            source=str(data_dir / f"{split}.txt"), batch_size=BATCH, shuffle=True, ntop=2
        )
    body(n, n.data)
    if loss == "softmax":
        n.loss = softmax_loss(n.scores, n.labels, targets="labels")
    else:
        n.loss = L.SigmoidCrossEntropyLoss(
            n.scores, n.label, loss_param=dict(normalization=P.Loss.BATCH_SIZE)
        )
    return str(n.to_proto())


def body(n, data_top) -> None:
    from caffe import layers as L

    fill = dict(weight_filler=dict(type="msra"), bias_filler=dict(type="constant"))
    n.fc1 = L.InnerProduct(data_top, num_output=HIDDEN, **fill)  # (N, 256)
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.scores = L.InnerProduct(n.relu1, num_output=data.CLASSES, **fill)  # (N, C)


def deploy_text(rows: int) -> str:
    import caffe
    from caffe import layers as L

    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[rows, data.FEATURES]))
    body(n, n.data)
    return str(n.to_proto())


def train_and_score(loss, lr, seed, iterations, train_split, eval_split, data_dir, work: Path):
    """Train with pycaffe's solver; return the metrics of ``eval_split`` and the final loss."""
    import caffe

    caffe.set_mode_cpu()
    (work / "net.prototxt").write_text(net_text(loss, train_split, data_dir))
    (work / "solver.prototxt").write_text(
        f'net: "{work / "net.prototxt"}"\nbase_lr: {lr}\nmomentum: 0.9\nweight_decay: 0.0001\n'
        f'lr_policy: "step"\ngamma: 0.1\nstepsize: {2 * iterations // 3}\n'
        f"max_iter: {iterations}\ndisplay: 0\nrandom_seed: {seed}\nsolver_mode: CPU\n"
        f'snapshot_after_train: false\nsnapshot_prefix: "{work / "snap"}"\n'
    )
    solver = caffe.get_solver(str(work / "solver.prototxt"))
    solver.step(iterations)
    final_loss = float(solver.net.blobs["loss"].data)
    with h5py.File(data_dir / f"{eval_split}.h5", "r") as f:
        features, labels = f["data"][...], f["labels"][...]
    (work / "deploy.prototxt").write_text(deploy_text(len(features)))
    deploy = caffe.Net(str(work / "deploy.prototxt"), caffe.TEST)
    deploy.share_with(solver.net)
    deploy.blobs["data"].data[...] = features
    scores = deploy.forward()["scores"].astype(np.float64)
    probs = softmax(scores) if loss == "softmax" else 1 / (1 + np.exp(-scores))
    return score(probs, labels, data_dir) | {"final_train_loss": final_loss}


def softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def score(probs: np.ndarray, labels: np.ndarray, data_dir: Path) -> dict:
    """mAP (classes with a positive), P@1, P@5, mAP over the rare half (by training count)."""
    relevant = metrics.relevance_from_labels(labels, data.CLASSES)
    ap = metrics.per_class_average_precision(probs, relevant)
    with h5py.File(data_dir / "train.h5", "r") as f:
        train_labels = f["labels"][...]
    counts = np.bincount(train_labels[train_labels >= 0].astype(np.int64), minlength=ap.size)
    rare = np.argsort(counts, kind="stable")[: ap.size // 2]  # the rarer half of the classes
    present = relevant.any(axis=0)
    return {
        "map": float(np.nanmean(ap)),
        "precision_at_1": metrics.precision_at_k(probs, relevant, 1),
        "precision_at_5": metrics.precision_at_k(probs, relevant, 5),
        "rare_half_map": float(np.nanmean(ap[rare])),
        "chance_map": metrics.chance_map(relevant),
        "classes_scored": int(present.sum()),
        "rare_classes_scored": int(present[rare].sum()),
    }


def sweep(loss, iterations, data_dir, work) -> dict:
    """Validation mAP for each learning rate (seed SWEEP_SEED); the best is chosen."""
    results = {}
    for lr in LEARNING_RATES:
        result = train_and_score(loss, lr, SWEEP_SEED, iterations, "train", "val", data_dir, work)
        results[lr] = result["map"] if np.isfinite(result["final_train_loss"]) else float("nan")
        print(f"  sweep {loss} lr={lr}: val mAP {results[lr]:.4f}", flush=True)
    return results


def paired_table(runs: list[dict], seeds: list[int]) -> tuple[str, dict]:
    names = ("map", "precision_at_1", "precision_at_5", "rare_half_map")
    lines = [
        "| loss | base lr | seeds | collapsed | test mAP | P@1 | P@5 | rare-half mAP |",
        "|---|---|---|---|---|---|---|---|",
    ]
    label = {"softmax": "softmax, 1/k targets, label lists (ours)", "sigmoid": "per-class sigmoid"}
    by_loss = {loss: [r for r in runs if r["loss"] == loss] for loss in LOSSES}
    for loss, rs in by_loss.items():
        cells = " | ".join(
            f"{np.mean([r[m] for r in rs]):.4f} ± {np.std([r[m] for r in rs], ddof=1):.4f}"
            for m in names
        )
        collapsed = sum(r["collapsed"] for r in rs)
        lines.append(f"| {label[loss]} | {rs[0]['lr']} | {len(rs)} | {collapsed} | {cells} |")
    lines += ["", "| paired difference, softmax - sigmoid | " + " | ".join(names) + " |"]
    lines.append("|---" * (len(names) + 1) + "|")
    differences = {}
    for m in names:
        ours = {r["seed"]: r[m] for r in by_loss["softmax"]}
        theirs = {r["seed"]: r[m] for r in by_loss["sigmoid"]}
        diff = np.array([ours[s] - theirs[s] for s in seeds])
        differences[m] = {
            "mean": float(diff.mean()),
            "std": float(diff.std(ddof=1)),
            "min": float(diff.min()),
            "max": float(diff.max()),
            "softmax_ahead": int((diff > 0).sum()),
        }
    for stat in ("mean", "std", "min", "max"):
        cells = " | ".join(f"{differences[m][stat]:+.4f}" for m in names)
        lines.append(f"| {stat} over {len(seeds)} seeds | {cells} |")
    cells = " | ".join(f"{differences[m]['softmax_ahead']} of {len(seeds)}" for m in names)
    lines.append(f"| seeds with softmax ahead | {cells} |")
    return "\n".join(lines), differences


def plot(runs: list[dict], seeds: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = (("map", "test mAP"), ("precision_at_1", "P@1"), ("precision_at_5", "P@5"))
    names += (("rare_half_map", "mAP, rarer half of classes"),)
    fig, axes = plt.subplots(1, len(names), figsize=(13, 3.6))
    for ax, (metric, title) in zip(axes, names):
        for loss, colour in zip(LOSSES, ("C0", "C1")):
            values = [
                next(r[metric] for r in runs if r["loss"] == loss and r["seed"] == s) for s in seeds
            ]
            ax.plot([LOSSES.index(loss)] * len(values), values, "o", color=colour, alpha=0.7)
        for s in seeds:  # one line per seed: the pairing
            pair = [
                next(r[metric] for r in runs if r["loss"] == loss and r["seed"] == s)
                for loss in LOSSES
            ]
            ax.plot([0, 1], pair, "-", color="grey", alpha=0.4)
        ax.set_xticks([0, 1], ["softmax 1/k\n(ours)", "sigmoid"])
        ax.set(title=title, xlim=(-0.5, 1.5))
    fig.suptitle(f"long-tailed task, C = {data.CLASSES}: paired seeds {seeds}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--data", type=Path, default=data.DEFAULT_DIR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    os.environ.setdefault("GLOG_minloglevel", "2")
    started = time.perf_counter()
    data.build(args.data)
    runs, sweeps = [], {}
    with tempfile.TemporaryDirectory() as work:
        for loss in LOSSES:
            sweeps[loss] = sweep(loss, args.iterations, args.data, Path(work))
            lr = max(
                sweeps[loss],
                key=lambda k: -np.inf if np.isnan(sweeps[loss][k]) else sweeps[loss][k],
            )
            for seed in args.seeds:
                result = train_and_score(
                    loss, lr, seed, args.iterations, "train", "test", args.data, Path(work)
                )
                result.update(loss=loss, lr=lr, seed=seed)
                result["collapsed"] = bool(
                    not np.isfinite(result["final_train_loss"])
                    or result["map"] <= result["chance_map"] + COLLAPSE_MARGIN
                )
                runs.append(result)
                print(f"  {loss} lr={lr} seed={seed}: test mAP {result['map']:.4f}", flush=True)
    text, differences = paired_table(runs, args.seeds)
    minutes = (time.perf_counter() - started) / 60
    machine = describe()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(text + "\n")
    (args.out / "results.json").write_text(
        json.dumps(
            {
                "runs": runs,
                "sweeps": {loss: {str(k): v for k, v in s.items()} for loss, s in sweeps.items()},
                "paired_differences": differences,
                "iterations": args.iterations,
                "machine": machine,
                "minutes": round(minutes, 1),
            },
            indent=2,
        )
    )
    plot(runs, args.seeds, args.out / "results.png")
    print("\n" + text + f"\n\n{minutes:.1f} min on {machine}; wrote {args.out}/")


if __name__ == "__main__":
    main()
