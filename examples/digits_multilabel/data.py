"""Multi-label digit collages from scikit-learn's bundled handwritten digits (no download).

Each canvas (32x32, one channel, values in [0, 1]) holds 1 to 4 of the 1,797 real 8x8 scans of
``sklearn.datasets.load_digits`` at random places; two digits may overlap by at most
``MAX_OVERLAP`` of a digit's area. Where digits overlap the canvas keeps the brighter pixel.
Targets over the 10 classes:

- ``khot``: 1 for each digit class present (the loss then applies 1/k);
- ``ink``: each present class weighted by its share of the ink visible on the canvas (a pixel's
  ink belongs to the digit that shows there), so each row sums to 1.

The source scans are split into train and test before composing, so no scan is in both.
Files (same seed, same bytes): ``{split}_{kind}.h5`` with ``data`` (N, 1, 32, 32), the dense
targets ``label`` (N, 10), the same targets as label lists ``labels`` (N, 4): the classes
present, padded with -1, and for ``ink`` their ``label_weights`` (N, 4), all float32; and
``{split}_{kind}.txt`` listing the file for Caffe's HDF5Data layer, which reads the datasets
its tops name (``label``, or ``labels`` [+ ``label_weights``]).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

CANVAS = 32
DIGIT = 8
CLASSES = 10
MAX_DIGITS = 4
MAX_OVERLAP = 0.25  # of a digit's area, for any pair
TARGET_KINDS = ("khot", "ink")
DEFAULT_DIR = Path("data/generated/digits_multilabel")


@dataclass(frozen=True)
class Collages:
    images: np.ndarray  # (N, 1, CANVAS, CANVAS) float32 in [0, 1]
    khot: np.ndarray  # (N, CLASSES) float32, 1 for each class present
    ink: np.ndarray  # (N, CLASSES) float32, share of visible ink, rows sum to 1
    sources: np.ndarray  # (N, MAX_DIGITS) int, indices of the scans used, -1 for none


def load_scans() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 scans as (n, 8, 8) float32 in [0, 1], and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)


def split_scans(count: int, test_fraction: float, rng: np.random.Generator):
    """Disjoint index sets of source scans for train and test."""
    order = rng.permutation(count)
    n_test = round(count * test_fraction)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    rows = max(0, DIGIT - abs(a[0] - b[0]))
    cols = max(0, DIGIT - abs(a[1] - b[1]))
    return rows * cols


def place_digits(count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Top-left corners for ``count`` digits whose pairwise overlap is bounded."""
    limit = MAX_OVERLAP * DIGIT * DIGIT
    while True:
        corners = [
            tuple(int(v) for v in rng.integers(0, CANVAS - DIGIT + 1, 2)) for _ in range(count)
        ]
        if all(_overlap(a, b) <= limit for i, a in enumerate(corners) for b in corners[:i]):
            return corners


def compose(
    scans: np.ndarray, labels: np.ndarray, chosen: np.ndarray, corners: list[tuple[int, int]]
):
    """One canvas from the chosen scans; returns (canvas, khot row, ink row)."""
    layers = np.zeros((len(chosen), CANVAS, CANVAS), np.float32)  # one digit per layer
    for layer, scan, (row, col) in zip(layers, chosen, corners):
        layer[row : row + DIGIT, col : col + DIGIT] = scans[scan]
    canvas = layers.max(axis=0)
    shows = layers.argmax(axis=0)  # (CANVAS, CANVAS): which digit a pixel's ink belongs to
    khot = np.zeros(CLASSES, np.float32)
    ink = np.zeros(CLASSES, np.float64)
    for index, scan in enumerate(chosen):
        khot[labels[scan]] = 1.0
        ink[labels[scan]] += canvas[shows == index].sum(dtype=np.float64)
    return canvas, khot, (ink / ink.sum()).astype(np.float32)


def label_lists(dense: np.ndarray, width: int = MAX_DIGITS) -> tuple[np.ndarray, np.ndarray]:
    """Dense targets (N, C) -> (labels, weights), each (N, width): the classes with a target
    > 0 in increasing order, padded with -1 (weight 0). The same targets, without the zeros."""
    labels = np.full((dense.shape[0], width), -1, np.float32)
    weights = np.zeros((dense.shape[0], width), np.float32)
    for row, targets in enumerate(dense):
        present = np.flatnonzero(targets > 0)
        labels[row, : present.size] = present
        weights[row, : present.size] = targets[present]
    return labels, weights


def make_collages(
    scans, labels, pool: np.ndarray, count: int, rng: np.random.Generator
) -> Collages:
    """``count`` canvases drawing their digits from the scans in ``pool`` only."""
    images = np.zeros((count, 1, CANVAS, CANVAS), np.float32)
    khot = np.zeros((count, CLASSES), np.float32)
    ink = np.zeros((count, CLASSES), np.float32)
    sources = np.full((count, MAX_DIGITS), -1, np.int64)
    for i in range(count):
        n_digits = int(rng.integers(1, MAX_DIGITS + 1))
        chosen = rng.choice(pool, size=n_digits, replace=False)
        images[i, 0], khot[i], ink[i] = compose(scans, labels, chosen, place_digits(n_digits, rng))
        sources[i, :n_digits] = chosen
    return Collages(images, khot, ink, sources)


def build(
    out_dir: Path = DEFAULT_DIR,
    n_train: int = 8000,
    n_test: int = 1000,
    seed: int = 0,
    test_fraction: float = 0.3,
) -> dict[str, Path]:
    """Write the HDF5 files and list files; return {"train_khot": list file, ...}."""
    rng = np.random.default_rng(seed)
    scans, labels = load_scans()
    train_pool, test_pool = split_scans(len(scans), test_fraction, rng)
    splits = {
        "train": make_collages(scans, labels, train_pool, n_train, rng),
        "test": make_collages(scans, labels, test_pool, n_test, rng),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    lists = {}
    for split, collages in splits.items():
        for kind in TARGET_KINDS:
            h5_path = out_dir / f"{split}_{kind}.h5"
            dense = getattr(collages, kind)
            labels, weights = label_lists(dense)
            with h5py.File(h5_path, "w", track_order=False) as f:
                f.create_dataset("data", data=collages.images, track_times=False)
                f.create_dataset("label", data=dense, track_times=False)
                f.create_dataset("labels", data=labels, track_times=False)
                if kind == "ink":  # k-hot lists need no weights: every listed class weighs 1
                    f.create_dataset("label_weights", data=weights, track_times=False)
                f.create_dataset("sources", data=collages.sources, track_times=False)
            lists[f"{split}_{kind}"] = out_dir / f"{split}_{kind}.txt"
            lists[f"{split}_{kind}"].write_text(f"{h5_path}\n")
    return lists


def carve_validation(source_dir: Path, out_dir: Path, count: int = 1000) -> Path:
    """A split for choosing hyper-parameters without the test set: ``out_dir`` gets
    ``train_{kind}`` (the training collages but the last ``count``) and ``test_{kind}`` (those
    last ``count``, the validation set), every dataset of the source files included."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in TARGET_KINDS:
        with h5py.File(source_dir / f"train_{kind}.h5", "r") as f:
            arrays = {name: f[name][...] for name in f}
        for split, rows in (("train", slice(None, -count)), ("test", slice(-count, None))):
            path = out_dir / f"{split}_{kind}.h5"
            with h5py.File(path, "w", track_order=False) as f:
                for name, array in arrays.items():
                    f.create_dataset(name, data=array[rows], track_times=False)
            (out_dir / f"{split}_{kind}.txt").write_text(f"{path}\n")
    return out_dir


def export_images(data_dir: Path = DEFAULT_DIR) -> Path:
    """The same collages as 8-bit grayscale PNG files in ``data_dir/images/{split}/``, with
    list files for the image data layer: ``{split}_khot.txt`` (``train/00012.png 3 7``) and
    ``{split}_ink.txt`` (``train/00012.png 3:0.6123 7:0.3877``). Returns the images folder."""
    from PIL import Image

    out = data_dir / "images"
    for split in ("train", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
        with h5py.File(data_dir / f"{split}_ink.h5", "r") as f:
            images, labels, weights = f["data"][...], f["labels"][...], f["label_weights"][...]
        names = []
        for index, canvas in enumerate(images):
            name = f"{split}/{index:05d}.png"
            pixels = np.round(canvas[0] * 255).astype(np.uint8)
            Image.fromarray(pixels, mode="L").save(out / name, optimize=False)
            names.append(name)
        for kind in TARGET_KINDS:
            lines = []
            for name, row, row_weights in zip(names, labels, weights):
                present = row >= 0
                if kind == "khot":
                    tokens = [str(int(c)) for c in row[present]]
                else:
                    tokens = [
                        f"{int(c)}:{w:.6g}" for c, w in zip(row[present], row_weights[present])
                    ]
                lines.append(" ".join([name, *tokens]))
            (out / f"{split}_{kind}.txt").write_text("\n".join(lines) + "\n")
    return out


def is_current(out_dir: Path = DEFAULT_DIR) -> bool:
    """Whether the files in ``out_dir`` hold every dataset this version writes."""
    try:
        with h5py.File(out_dir / "train_ink.h5", "r") as f:
            return {"data", "label", "labels", "label_weights"} <= set(f)
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for name, path in build(args.out, args.train, args.test, args.seed).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
