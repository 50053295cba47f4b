"""Evaluate a trained model on a list file: mAP, per-class AP, P@k, R@k, F1 at thresholds.

    python -m python_layers.tools.evaluate --net train_val.prototxt --weights snap.caffemodel \\
        --list val.txt --classes classes.txt --val-list train_val_split.txt --out report.json

The images go through the data layer's TEST-phase transform (the keys of ``--net``'s TEST
data layer, or ``--transform``) and the deploy net. With ``--val-list``, the F1 thresholds
(one global, one per class: each the best F1 there) are chosen on that list and applied to
``--list``; ``predict --thresholds report.json`` uses them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import metrics
from ..inference import Predictor
from . import scoring
from .cli import (
    UsageError,
    add_model_arguments,
    deploy_path,
    doc_parser,
    read_classes,
    run,
    transform_from,
)

CURVES = 20  # precision-recall curves drawn: the most frequent classes (beyond, unreadable)


def _named(values: np.ndarray, names: Sequence[str]) -> dict:
    return {name: None if np.isnan(v) else float(v) for name, v in zip(names, values)}


def report(
    probs: np.ndarray,
    relevant: np.ndarray,
    names: Sequence[str],
    ks: Sequence[int] = (1, 3, 5),
    thresholds: tuple[float, np.ndarray] | None = None,
) -> dict:
    """Every number of the evaluation, for (N, C) probabilities and relevance."""
    result = {
        "images": int(probs.shape[0]),
        "classes": int(probs.shape[1]),
        "map": metrics.mean_average_precision(probs, relevant),
        "chance_map": metrics.chance_map(relevant),  # what random scores would get
        "precision_at_k": {str(k): metrics.precision_at_k(probs, relevant, k) for k in ks},
        "recall_at_k": {str(k): metrics.recall_at_k(probs, relevant, k) for k in ks},
        "per_class_ap": _named(metrics.per_class_average_precision(probs, relevant), names),
        "positives_per_class": dict(zip(names, relevant.sum(axis=0).tolist())),
    }
    if thresholds is not None:
        global_threshold, per_class = thresholds
        at_global = scoring.f1_scores(probs, relevant, global_threshold)
        at_class = scoring.f1_scores(probs, relevant, per_class)
        result["thresholds"] = {
            "global": global_threshold,
            "per_class": dict(zip(names, per_class.tolist())),
        }
        result["f1_global_threshold"] = {"micro": at_global["micro"], "macro": at_global["macro"]}
        result["f1_per_class_thresholds"] = {
            "micro": at_class["micro"],
            "macro": at_class["macro"],
            "per_class": dict(zip(names, at_class["per_class"].tolist())),
        }
    return result


def plot(probs: np.ndarray, relevant: np.ndarray, names: Sequence[str], path: Path) -> None:
    """:func:`figure` as a PNG."""
    import matplotlib.pyplot as plt

    fig = figure(probs, relevant, names)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # "tight": the legend outside the axes
    plt.close(fig)


def figure(probs: np.ndarray, relevant: np.ndarray, names: Sequence[str]):
    """Per-class AP (sorted bars) and precision-recall curves (all classes pooled, and the
    CURVES most frequent classes, each named in the legend): a matplotlib figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = metrics.per_class_average_precision(probs, relevant)
    order = np.argsort(-np.nan_to_num(ap, nan=-1))
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(12, max(4, 0.18 * len(names))))
    bars.barh(np.arange(len(order)), np.nan_to_num(ap[order]), color="C0")
    bars.set_yticks(np.arange(len(order)))
    bars.set_yticklabels([names[i] for i in order], fontsize=7)  # matplotlib 3.3 (Debian 11)
    bars.invert_yaxis()
    bars.set(xlabel="average precision", title=f"per-class AP (mAP {np.nanmean(ap):.3f})")
    pooled = metrics.precision_recall_curve(probs.ravel(), relevant.ravel())
    curves.plot(pooled[1], pooled[0], color="k", label="all classes pooled")
    shown = np.argsort(-relevant.sum(axis=0), kind="stable")[:CURVES]
    for c in shown:
        precision, recall, _ = metrics.precision_recall_curve(probs[:, c], relevant[:, c])
        curves.plot(recall, precision, label=names[c], alpha=0.7)
    title = "precision-recall" + (
        f" ({len(shown)} most frequent of {len(names)} classes)" if len(shown) < len(names) else ""
    )
    curves.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1))
    curves.set_ylim(0, 1.02)
    # every plotted curve named: matplotlib's "best" placement may drop none, but a legend
    # taller than the axes is cut, so it goes outside, one column per 20 names
    curves.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), ncol=1 + CURVES // 20)
    fig.tight_layout()
    return fig


def parser() -> argparse.ArgumentParser:
    p = doc_parser("multilabel-evaluate", __doc__)
    add_model_arguments(p)
    p.add_argument("--list", required=True, help="the list file to evaluate on")
    p.add_argument("--classes", required=True, help="classes.txt (line n names class n)")
    p.add_argument("--val-list", help="a list file to choose the F1 thresholds on")
    p.add_argument("--k", type=int, nargs="+", default=[1, 3, 5], help="k of P@k, R@k")
    p.add_argument("--out", type=Path, help="the report as JSON (default: standard output)")
    p.add_argument("--plot", type=Path, help="per-class AP and precision-recall as a PNG")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = read_classes(args.classes)
    transform = transform_from(args)
    with tempfile.TemporaryDirectory(prefix="evaluate-") as folder:
        predictor = Predictor(deploy_path(args, Path(folder)), args.weights, transform)

        def probabilities(list_path: str) -> tuple[np.ndarray, np.ndarray]:
            if not Path(list_path).is_file():
                raise UsageError(f"{list_path}: the list file does not exist")
            probs, relevant = predictor.list_probabilities(
                list_path, len(names), progress=not args.quiet
            )
            if probs.shape[1] != len(names):
                raise UsageError(
                    f"the net gives {probs.shape[1]} probabilities per image; {args.classes} "
                    f"names {len(names)} classes"
                )
            return probs, relevant

        thresholds = None
        if args.val_list:
            thresholds = scoring.choose_thresholds(*probabilities(args.val_list))
        probs, relevant = probabilities(args.list)
    result = report(probs, relevant, names, args.k, thresholds)
    result.update(list=args.list, weights=args.weights, val_list=args.val_list)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    if args.plot:
        plot(probs, relevant, names, args.plot)
    at = " ".join(f"P@{k} {result['precision_at_k'][str(k)]:.3f}" for k in args.k)
    print(
        f"{args.list}: {len(probs)} images, mAP {result['map']:.4f} (chance "
        f"{result['chance_map']:.4f}), {at}",
        file=sys.stderr,
    )
    return 0


def console() -> int:
    return run("multilabel-evaluate", main)


if __name__ == "__main__":
    sys.exit(console())
