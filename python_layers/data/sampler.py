"""Which images make global batch b: a pure function of (seed, b), never of timing, workers
or machine (numpy's PCG64 seeded by ``SeedSequence([seed, b])``).

- ``natural``: the images in list order, or in a fresh permutation per epoch when shuffled
  (epoch e's order is seeded by ``(seed, e)``); position ``p = b * B + j`` of the stream is
  image ``order_e[p mod N]`` with ``e = p div N``, so every image comes once per epoch even
  when B does not divide N.
- ``sqrt`` (Mahajan et al. 2018): each sample of the batch draws a class c with probability
  ``sqrt(n_c) / sum_k sqrt(n_k)`` (``n_c``: images listing c), then one of those images
  uniformly.
- ``balanced``: the class uniformly among classes with images, then an image that has it.

A rank of a multi-GPU run takes its contiguous part of every global batch
(:func:`rank_part`), so the ranks together see exactly one process's global batches.
"""

from __future__ import annotations

import numpy as np

SAMPLINGS = ("natural", "sqrt", "balanced")


def class_probabilities(counts: np.ndarray, sampling: str) -> np.ndarray:
    """P(class) for resampling: proportional to sqrt(n_c), or uniform over classes with n_c > 0."""
    counts = np.asarray(counts, dtype=np.float64)
    weights = np.sqrt(counts) if sampling == "sqrt" else (counts > 0).astype(np.float64)
    if weights.sum() == 0:
        raise ValueError("no class has any image: nothing to sample")
    return weights / weights.sum()


def natural_batch(b: int, batch_size: int, images: int, seed: int, shuffle: bool) -> np.ndarray:
    """Image indices of global batch ``b`` in the natural order (shuffled per epoch)."""
    positions = b * batch_size + np.arange(batch_size, dtype=np.int64)
    epochs, offsets = np.divmod(positions, images)
    batch = offsets.copy()
    if shuffle:
        for epoch in np.unique(epochs):  # at most two: a batch can straddle an epoch's end
            order = np.random.default_rng([seed, int(epoch)]).permutation(images)
            chosen = epochs == epoch
            batch[chosen] = order[offsets[chosen]]
    return batch


def resampled_batch(
    b: int, batch_size: int, seed: int, probabilities: np.ndarray, per_class: list[np.ndarray]
) -> np.ndarray:
    """Image indices of global batch ``b``: a class per sample, then an image having it."""
    rng = np.random.default_rng([seed, b])
    classes = rng.choice(len(probabilities), size=batch_size, p=probabilities)
    picks = rng.random(batch_size)
    return np.array(
        [per_class[c][int(u * len(per_class[c]))] for c, u in zip(classes, picks)],
        dtype=np.int64,
    )


def rank_part(batch: np.ndarray, rank: int, ranks: int) -> np.ndarray:
    """Rank ``rank``'s contiguous share of a global batch (its size must divide by ``ranks``)."""
    if len(batch) % ranks:
        raise ValueError(f"a global batch of {len(batch)} does not split over {ranks} ranks")
    share = len(batch) // ranks
    return batch[rank * share : (rank + 1) * share]
