"""Which images make global batch b: a pure function of (seed, b), never of timing, workers
or machine, at a cost per batch that does not grow with the number of images N.

- ``natural``: the images in list order, or shuffled per epoch; position ``p = b * B + j`` of
  the stream is epoch ``e = p div N``'s image at ``p mod N``, through the keyed bijection of
  :mod:`.order` (seeded by ``(seed, e)``) when shuffled: every image once per epoch, even when
  B does not divide N.
- ``sqrt`` (Mahajan et al. 2018): each sample of the batch draws a class c with probability
  ``sqrt(n_c) / sum_k sqrt(n_k)`` (``n_c``: images listing c), then one of those images
  uniformly. ``balanced``: the class uniformly among classes with images, then an image.
  The class comes from the cumulative distribution (built once; a binary search over the C
  classes per sample), the image from the class's slice of the index's per-class lists; the
  uniform numbers from numpy's PCG64 seeded by ``SeedSequence([seed, b])``.

A rank of a multi-GPU run takes its contiguous part of every global batch
(:func:`rank_part`), so the ranks together see exactly one process's global batches.
ORDER_VERSION names this order; resuming a snapshot written under another version is refused.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .order import Bijection

_bijection = lru_cache(maxsize=8)(Bijection)  # a batch's epoch and the next: keys made once

SAMPLINGS = ("natural", "sqrt", "balanced")
ORDER_VERSION = 2  # 1: a numpy permutation per epoch (release 0.1); 2: Feistel + CDF


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
    if not shuffle:
        return offsets
    batch = np.empty_like(offsets)
    for epoch in np.unique(epochs):  # one or two (more only when B > N)
        chosen = epochs == epoch
        batch[chosen] = _bijection(images, seed, int(epoch))(offsets[chosen])
    return batch


class ClassSampler:
    """Draws (class, image having it) pairs: ``probabilities`` over the classes, and the
    images of class c as ``members[offsets[c]:offsets[c + 1]]`` (the index's per-class CSR)."""

    def __init__(self, probabilities: np.ndarray, offsets: np.ndarray, members: np.ndarray):
        self.cumulative = np.cumsum(probabilities)
        self.last = int(np.flatnonzero(probabilities > 0)[-1])
        self.offsets, self.members = offsets, members

    def __call__(self, b: int, batch_size: int, seed: int) -> np.ndarray:
        """Image indices of global batch ``b``: a class per sample, then an image having it."""
        uniform = np.random.default_rng([seed, b]).random((2, batch_size))
        drawn = np.searchsorted(self.cumulative, uniform[0] * self.cumulative[-1], side="right")
        classes = np.minimum(drawn, self.last)  # u * total rounding up to total
        starts = self.offsets[classes].astype(np.int64)
        sizes = self.offsets[classes + 1].astype(np.int64) - starts
        return self.members[starts + (uniform[1] * sizes).astype(np.int64)].astype(np.int64)


def resampled_batch(
    b: int, batch_size: int, seed: int, probabilities: np.ndarray, per_class: list[np.ndarray]
) -> np.ndarray:
    """:class:`ClassSampler` on per-class lists given as a list of arrays (for tests)."""
    offsets = np.concatenate([[0], np.cumsum([len(members) for members in per_class])])
    members = np.concatenate([np.asarray(m, np.int64) for m in per_class])
    return ClassSampler(probabilities, offsets, members)(b, batch_size, seed)


def rank_part(batch: np.ndarray, rank: int, ranks: int) -> np.ndarray:
    """Rank ``rank``'s contiguous share of a global batch (its size must divide by ``ranks``)."""
    if len(batch) % ranks:
        raise ValueError(f"a global batch of {len(batch)} does not split over {ranks} ranks")
    share = len(batch) // ranks
    return batch[rank * share : (rank + 1) * share]
