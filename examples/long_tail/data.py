"""A long-tailed multi-label task, generated: C classes with Zipf-like frequencies, 1 to 3
labels per sample, features that mix the labels' prototypes with noise.

Class c (0 = most frequent) is drawn with probability proportional to ``(c + 1) ** -ZIPF``;
a sample draws ``k`` in 1..3 distinct classes that way and its features are
``x = sum_{c in labels} prototype_c / sqrt(k) + NOISE * N(0, I)`` (prototypes N(0, I) in
``FEATURES`` dims). Files (same seed, same bytes), one per split (``train``, ``val`` carved
from the training draw, ``test``): ``{split}.h5`` with ``data`` (N, FEATURES), the label lists
``labels`` (N, K) padded with -1, and, for the per-class sigmoid baseline only, the same targets
dense as ``label`` (N, C); ``{split}.txt`` lists the file for Caffe's HDF5Data.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import numpy as np

CLASSES = 1000
FEATURES = 64
LABEL_WIDTH = 3  # K: labels per sample at most
ZIPF = 1.1
NOISE = 0.6
DEFAULT_DIR = Path("data/generated/long_tail")
SPLITS = {"train": 24000, "val": 4000, "test": 6000}


def class_frequencies(classes: int = CLASSES) -> np.ndarray:
    weights = (np.arange(classes) + 1.0) ** -ZIPF
    return weights / weights.sum()


def draw(count: int, prototypes: np.ndarray, rng: np.random.Generator):
    """(features (N, D) float32, label lists (N, K) float32 -1-padded)."""
    classes = prototypes.shape[0]
    frequencies = class_frequencies(classes)
    labels = np.full((count, LABEL_WIDTH), -1, np.float32)
    features = rng.normal(0, NOISE, (count, prototypes.shape[1]))
    for row in range(count):
        k = int(rng.integers(1, LABEL_WIDTH + 1))
        chosen = rng.choice(classes, size=k, replace=False, p=frequencies)
        labels[row, :k] = chosen
        features[row] += prototypes[chosen].sum(axis=0) / np.sqrt(k)
    return features.astype(np.float32), labels


def dense_targets(labels: np.ndarray, classes: int = CLASSES) -> np.ndarray:
    dense = np.zeros((labels.shape[0], classes), np.float32)
    rows, slots = np.nonzero(labels >= 0)
    dense[rows, labels[rows, slots].astype(np.int64)] = 1.0
    return dense


def build(out_dir: Path = DEFAULT_DIR, seed: int = 0) -> dict[str, Path]:
    """Write every split; return {split: list file}. Prints the bytes of targets per sample."""
    rng = np.random.default_rng(seed)
    prototypes = rng.normal(0, 1, (CLASSES, FEATURES))
    out_dir.mkdir(parents=True, exist_ok=True)
    lists = {}
    for split, count in SPLITS.items():
        features, labels = draw(count, prototypes, rng)
        path = out_dir / f"{split}.h5"
        with h5py.File(path, "w", track_order=False) as f:
            f.create_dataset("data", data=features, track_times=False)
            f.create_dataset("labels", data=labels, track_times=False)
            f.create_dataset("label", data=dense_targets(labels), track_times=False)
        lists[split] = out_dir / f"{split}.txt"
        lists[split].write_text(f"{path}\n")
    print(
        f"targets per sample: label lists {LABEL_WIDTH * 4} bytes, dense {CLASSES * 4} bytes "
        f"({CLASSES // LABEL_WIDTH}x)"
    )
    return lists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    for split, path in build(args.out, args.seed).items():
        print(f"{split}: {path}")


if __name__ == "__main__":
    main()
