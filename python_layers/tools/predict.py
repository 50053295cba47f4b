"""Predict tags for images: top-k class names with probabilities, or those above thresholds.

    python -m python_layers.tools.predict --net train_val.prototxt --weights snap.caffemodel \\
        --classes classes.txt photos/*.jpg --top-k 5
    python -m python_layers.tools.predict ... --list test.txt --thresholds report.json --format csv

JSON lines (one image a line: ``{"path": ..., "tags": [{"name", "class", "prob"}, ...]}``,
most probable first) or CSV (``path,rank,class,name,prob``, one tag a row). ``--thresholds``
takes the report of ``evaluate --val-list`` and keeps the tags whose probability reaches
their class's threshold (``--threshold-kind global``: the one global threshold).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data import index
from ..inference import Predictor
from .cli import (
    UsageError,
    add_model_arguments,
    deploy_path,
    doc_parser,
    read_classes,
    run,
    transform_from,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def tags(
    probs: np.ndarray, names: Sequence[str], top_k: int = 5, thresholds=None
) -> list[list[tuple[int, str, float]]]:
    """Per image, (class, name, probability) most probable first: the ``top_k`` classes, or,
    with ``thresholds`` (a number or one per class), the classes at or above them."""
    order = np.argsort(-probs, axis=1, kind="stable")
    chosen = []
    for row, ranked in zip(probs, order):
        if thresholds is None:
            ranked = ranked[:top_k]
        else:
            ranked = [c for c in ranked if row[c] >= np.broadcast_to(thresholds, row.shape)[c]]
        chosen.append([(int(c), names[c], float(row[c])) for c in ranked])
    return chosen


def read_thresholds(path: str, kind: str, names: Sequence[str]):
    """The global threshold, or the per-class ones in class order, from an evaluate report."""
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    chosen = report.get("thresholds") if isinstance(report, dict) else None
    if not isinstance(chosen, dict):
        raise UsageError(f"{path}: no 'thresholds' (run evaluate with --val-list)")
    if kind == "global":
        return float(chosen["global"])
    per_class = chosen.get("per_class", {})
    missing = [name for name in names if name not in per_class]
    if missing:
        raise UsageError(f"{path}: thresholds.per_class has no {missing[:3]} (other classes?)")
    return np.array([per_class[name] for name in names])


def image_paths(args) -> tuple[list[str], list[str]]:
    """(paths as the user named them, paths to read): files, folders' images, a list's paths."""
    shown: list[str] = []
    for item in args.images:
        if os.path.isdir(item):
            found = sorted(p for p in Path(item).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            shown += [str(p) for p in found]
        elif os.path.isfile(item):
            shown.append(item)
        else:
            raise UsageError(f"{item}: no such file or folder")
    read = [os.path.abspath(p) for p in shown]
    if args.list:  # read as the data layer reads it (its index: the BOM, comments, errors)
        images = index.open_index(args.list)
        listed = [images.path(i) for i in range(len(images))]
        shown += listed
        read += listed
    if not shown:
        raise UsageError("no images: give image files, folders or --list")
    return shown, read


def write(rows, shown: Sequence[str], fmt: str, out) -> None:
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["path", "rank", "class", "name", "prob"])
        for path, chosen in zip(shown, rows):
            for rank, (c, name, p) in enumerate(chosen, start=1):
                writer.writerow([path, rank, c, name, f"{p:.6g}"])
        return
    for path, chosen in zip(shown, rows):
        listed = [{"name": name, "class": c, "prob": round(p, 6)} for c, name, p in chosen]
        out.write(json.dumps({"path": path, "tags": listed}) + "\n")


def parser() -> argparse.ArgumentParser:
    p = doc_parser("multilabel-predict", __doc__)
    add_model_arguments(p)
    p.add_argument("images", nargs="*", help="image files or folders")
    p.add_argument("--list", help="a list file (its paths, under --root-folder; labels ignored)")
    p.add_argument("--classes", required=True, help="classes.txt (line n names class n)")
    p.add_argument("--top-k", type=int, default=5, help="tags per image (default 5)")
    p.add_argument("--thresholds", help="an evaluate report: keep tags above its thresholds")
    p.add_argument("--threshold-kind", choices=["per_class", "global"], default="per_class")
    p.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    p.add_argument("-o", "--output", help="output file (default: standard output)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    names = read_classes(args.classes)
    shown, read = image_paths(args)
    thresholds = None
    if args.thresholds:
        thresholds = read_thresholds(args.thresholds, args.threshold_kind, names)
    transform = transform_from(args)
    with tempfile.TemporaryDirectory(prefix="predict-") as folder:
        predictor = Predictor(deploy_path(args, Path(folder)), args.weights, transform)
        probs = predictor.probabilities(read, progress=not args.quiet)
    if probs.shape[1] != len(names):
        raise UsageError(
            f"the net gives {probs.shape[1]} probabilities per image; "
            f"{args.classes} names {len(names)} classes"
        )
    rows = tags(probs, names, args.top_k, thresholds)
    if args.output:
        with open(args.output, "w", encoding="utf-8", newline="") as out:
            write(rows, shown, args.format, out)
    else:
        write(rows, shown, args.format, sys.stdout)
    return 0


def console() -> int:
    return run("multilabel-predict", main)


if __name__ == "__main__":
    sys.exit(console())
