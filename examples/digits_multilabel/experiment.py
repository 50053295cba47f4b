"""Softmax with 1/k targets vs per-class sigmoid, on k-hot and ink targets, over several seeds.

    python -m examples.digits_multilabel.experiment [--seeds 1 2 3] [--max-iter N]

Every run uses the same net, data and schedule shape; only the loss layer differs (our
SoftmaxLossLayer vs Caffe's native SigmoidCrossEntropyLoss) and, for fairness, each loss's
base learning rate: for each loss and target kind the best of ``SWEEP_LRS`` by mAP on a
validation split carved from the training collages (never the test set), with seed
``SWEEP_SEED``. A run whose test mAP is within 0.01 of chance is counted as collapsed, never
dropped. Per-run outputs go to ``runs/experiment/``; the table (mean ± std over seeds), the
sweep and the bar plot go to ``docs/experiment/``, which docs/experiments.md shows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..machine import describe
from . import data
from .train import ensure_data, train

LOSSES = ("softmax", "sigmoid")
TARGETS = ("khot", "ink")
OUT = Path("docs/experiment")
SWEEP_LRS = (0.03, 0.1, 0.3)
SWEEP_SEED = 0
SWEEP_DIR = data.DEFAULT_DIR / "sweep"
COLLAPSE_MARGIN = 0.01


def aggregate(results: list[dict]) -> list[dict]:
    """Mean and sample std over seeds for each (loss, targets)."""
    rows = []
    for targets in TARGETS:
        for loss in LOSSES:
            runs = [r for r in results if r["loss"] == loss and r["targets"] == targets]
            if not runs:
                continue
            row = {"loss": loss, "targets": targets, "seeds": [r["seed"] for r in runs]}
            row["base_lr"] = runs[0]["base_lr"]
            row["collapsed"] = sum(is_collapsed(r) for r in runs)
            for metric in ("map", "precision_at_1", "precision_at_3", "recall_at_3"):
                values = np.array([r["test"][metric] for r in runs])
                row[metric] = [
                    float(values.mean()),
                    float(values.std(ddof=1) if len(runs) > 1 else 0),
                ]
            row["chance_map"] = runs[0]["test"]["chance_map"]
            rows.append(row)
    return rows


def is_collapsed(run: dict) -> bool:
    """A dead net: test mAP within COLLAPSE_MARGIN of chance."""
    return run["test"]["map"] <= run["test"]["chance_map"] + COLLAPSE_MARGIN


def table(rows: list[dict]) -> str:
    lines = [
        "| targets | loss | base lr | seeds | collapsed | test mAP | P@1 | P@3 | R@3 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    label = {"softmax": "softmax, 1/k targets (ours)", "sigmoid": "per-class sigmoid (native)"}
    for r in rows:
        cells = " | ".join(
            f"{r[m][0]:.3f} ± {r[m][1]:.3f}"
            for m in ("map", "precision_at_1", "precision_at_3", "recall_at_3")
        )
        lines.append(
            f"| {r['targets']} | {label[r['loss']]} | {r['base_lr']:.3g} | {len(r['seeds'])} | "
            f"{r['collapsed']} | {cells} |"
        )
    return "\n".join(lines)


def bar_plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    for ax, metric, title in zip(axes, ("map", "precision_at_1"), ("test mAP", "test P@1")):
        for offset, loss in enumerate(LOSSES):
            chosen = [r for r in rows if r["loss"] == loss]
            x = np.arange(len(chosen)) + (offset - 0.5) * 0.38
            ax.bar(
                x,
                [r[metric][0] for r in chosen],
                width=0.38,
                yerr=[r[metric][1] for r in chosen],
                capsize=4,
                label={"softmax": "softmax 1/k (ours)", "sigmoid": "sigmoid"}[loss],
            )
        ax.set_xticks(range(len(TARGETS)), [f"{t} targets" for t in TARGETS])
        ax.set(title=title, ylim=(0.5, 1.0))
        ax.legend(loc="lower right")
    fig.suptitle("digit collages: mean ± std over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--max-iter", type=int)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs_dir = Path("runs/experiment")
    ensure_data()
    data.carve_validation(data.DEFAULT_DIR, SWEEP_DIR)
    sweeps, chosen = {}, {}
    for targets in TARGETS:
        for loss in LOSSES:
            sweep = {
                lr: train(
                    f"sweep_{loss}_{targets}_lr{lr}",
                    loss,
                    targets,
                    SWEEP_SEED,
                    args.max_iter,
                    runs=runs_dir,
                    data_dir=SWEEP_DIR,
                    base_lr=lr,
                )["test"]["map"]
                for lr in SWEEP_LRS
            }
            sweeps[f"{loss}_{targets}"] = {str(lr): value for lr, value in sweep.items()}
            chosen[loss, targets] = max(sweep, key=lambda lr: np.nan_to_num(sweep[lr], nan=-1))
            print(f"sweep {loss} {targets}: val mAP {sweep} -> base_lr {chosen[loss, targets]}")
    results = []
    for seed in args.seeds:
        for targets in TARGETS:
            for loss in LOSSES:
                results.append(
                    train(
                        f"{loss}_{targets}_seed{seed}",
                        loss,
                        targets,
                        seed,
                        args.max_iter,
                        runs=runs_dir,
                        base_lr=chosen[loss, targets],
                    )
                )
    rows = aggregate(results)
    args.out.mkdir(parents=True, exist_ok=True)
    for r in results:
        r.pop("curves")
    machine = describe()
    (args.out / "results.json").write_text(
        json.dumps(
            {"rows": rows, "runs": results, "sweep_val_map": sweeps, "machine": machine}, indent=2
        )
    )
    (args.out / "results.md").write_text(table(rows) + "\n")
    bar_plot(rows, args.out / "results.png")
    print("\n" + table(rows))
    print(f"\nwrote {args.out}/results.md, results.json, results.png")


if __name__ == "__main__":
    main()
