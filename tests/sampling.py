"""Class resampling on per-class lists given as arrays, without an index (the sampling tests)."""

from __future__ import annotations

import numpy as np

from python_layers.data import sampler


def resampled_batch(
    b: int, batch_size: int, seed: int, probabilities: np.ndarray, per_class: list[np.ndarray]
) -> np.ndarray:
    """Global batch ``b`` of :class:`~python_layers.data.sampler.ByClass` on ``per_class``."""
    offsets = np.concatenate([[0], np.cumsum([len(members) for members in per_class])])
    members = np.concatenate([np.asarray(m, np.int64) for m in per_class])
    return sampler.ByClass(probabilities, offsets, members, batch_size, seed).batch(b)
