"""The loss engines' shared test cases: option sets, shapes, target kinds and their random
inputs, for the host kernel tests (test_device_engine.py) and the GPU tests (test_gpu.py);
random k-hot targets (test_math.py, test_softmax_loss_layer.py,
test_softmax_loss_gradients.py)."""

from __future__ import annotations

import numpy as np

from python_layers.labels import PADDING
from python_layers.loss.options import Options

OPTION_SETS = [
    Options(),
    Options(normalization="full", label_smoothing=0.1),
    Options(normalization="batch_size", normalize_targets=False),
    Options(normalization="none", class_weights=(0.5, 2.0, 1.0, 1.5, 0.25)),
    Options(normalization="valid", class_weights=(0.5, 2.0, 1.0, 1.5, 0.25), label_smoothing=0.2),
]
SHAPES = {"rows": (6, 5), "positions": (3, 5, 2, 3)}
KINDS = ["dense", "index", "labels", "weighted"]


def loss_inputs(
    kind: str, shape: tuple[int, ...], rng: np.random.Generator, width: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, str]:
    """Scores and targets of the given kind (dense k-hot-ish, index, label lists + weights)."""
    scores = (rng.standard_normal(shape) * 3).astype(np.float32)
    classes = shape[1]
    if kind == "dense":
        targets = (rng.random(shape) < 0.3) * rng.random(shape)
        targets = targets.astype(np.float32)
        targets[0] = 0  # an ignored (all-zero) position
        return scores, targets, None, "dense"
    if kind == "index":
        positions = (shape[0], *shape[2:])
        labels = rng.integers(0, classes, positions).astype(np.float32)
        labels.flat[1] = 255  # ignored when ignore_label is 255
        return scores, labels, None, "index"
    labels = rng.integers(0, classes, (shape[0], width)).astype(np.float32)
    labels[:, -1] = PADDING
    labels[1, 0] = labels[1, 1]  # a class listed twice
    labels[2] = PADDING  # a row with no label: ignored
    weights = rng.random((shape[0], width)).astype(np.float32) + 0.1
    return scores, labels, weights if kind == "weighted" else None, "labels"


def khot(
    shape: tuple[int, ...], axis: int = 1, k_max: int = 3, *, rng: np.random.Generator
) -> np.ndarray:
    """Random k-hot targets (k in 1..k_max) along ``axis``, drawn from the test's ``rng``."""
    moved = np.moveaxis(np.zeros(shape, np.float32), axis, -1)
    rows = moved.reshape(-1, shape[axis])
    for row in rows:
        row[rng.choice(shape[axis], size=rng.integers(1, k_max + 1), replace=False)] = 1
    return np.moveaxis(rows.reshape(moved.shape), -1, axis)
