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

Each is a :class:`Sampler` (``sampler.batch(b)``: :class:`Natural`, :class:`ByClass`),
chosen once, at set-up, by :func:`choose` from the ``sampling`` name. A rank of a multi-GPU
run takes its contiguous part of every global batch (:class:`RankShare` around the global
sampler), so the ranks together see exactly one process's global batches.
ORDER_VERSION names this order; resuming a snapshot written under another version is refused.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np

from .order import Bijection

if TYPE_CHECKING:  # for the type hints only: params.py imports this module for SAMPLINGS
    from .index import Index

_bijection = lru_cache(maxsize=8)(Bijection)  # a batch's epoch and the next: keys made once

ORDER_VERSION = 2  # 1: a numpy permutation per epoch (release 0.1); 2: Feistel + CDF


class Sampler(Protocol):
    """Which images make batch ``b``: random access by batch index (Grain's contract), a pure
    function of b and what the sampler was made with, so that any batch can be made first."""

    def batch(self, b: int) -> np.ndarray:
        """Image indices (int64) of batch ``b``."""
        ...


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


class Natural:
    """Global batches in the list's order, or shuffled per epoch (:func:`natural_batch`)."""

    def __init__(self, images: int, batch_size: int, seed: int, shuffle: bool):
        self.images, self.batch_size, self.seed, self.shuffle = images, batch_size, seed, shuffle

    def batch(self, b: int) -> np.ndarray:
        return natural_batch(b, self.batch_size, self.images, self.seed, self.shuffle)


class ByClass:
    """Global batches of (class, image having it) draws: ``probabilities`` over the classes,
    and the images of class c as ``members[offsets[c]:offsets[c + 1]]`` (the index's
    per-class CSR)."""

    def __init__(
        self,
        probabilities: np.ndarray,
        offsets: np.ndarray,
        members: np.ndarray,
        batch_size: int,
        seed: int,
    ):
        self.cumulative = np.cumsum(probabilities)
        self.last = int(np.flatnonzero(probabilities > 0)[-1])
        self.offsets, self.members = offsets, members
        self.batch_size, self.seed = batch_size, seed

    def batch(self, b: int) -> np.ndarray:
        """A class per sample, then an image having it."""
        uniform = np.random.default_rng([self.seed, b]).random((2, self.batch_size))
        drawn = np.searchsorted(self.cumulative, uniform[0] * self.cumulative[-1], side="right")
        classes = np.minimum(drawn, self.last)  # u * total rounding up to total
        starts = self.offsets[classes].astype(np.int64)
        sizes = self.offsets[classes + 1].astype(np.int64) - starts
        return self.members[starts + (uniform[1] * sizes).astype(np.int64)].astype(np.int64)


def rank_part(batch: np.ndarray, rank: int, ranks: int) -> np.ndarray:
    """Rank ``rank``'s contiguous share of a global batch (its size must divide by ``ranks``)."""
    if len(batch) % ranks:
        raise ValueError(f"a global batch of {len(batch)} does not split over {ranks} ranks")
    share = len(batch) // ranks
    return batch[rank * share : (rank + 1) * share]


class RankShare:
    """Rank ``rank``'s part of every batch of ``sampler`` (:func:`rank_part`): PyTorch's
    small samplers that compose, as its ``DistributedSampler`` wraps another's order."""

    def __init__(self, sampler: Sampler, rank: int, ranks: int):
        self.sampler, self.rank, self.ranks = sampler, rank, ranks

    def batch(self, b: int) -> np.ndarray:
        return rank_part(self.sampler.batch(b), self.rank, self.ranks)


def _natural(images: Index, batch_size: int, seed: int, shuffle: bool, classes: int) -> Sampler:
    return Natural(len(images), batch_size, seed, shuffle)


def _by_class(sampling: str) -> Callable[..., Sampler]:
    def make(images: Index, batch_size: int, seed: int, shuffle: bool, classes: int) -> Sampler:
        probabilities = class_probabilities(images.class_counts(classes), sampling)
        return ByClass(probabilities, images.class_offsets, images.members, batch_size, seed)

    return make


# "sampling"'s values, each with how it makes the global sampler from the list's index. A new
# sampler is a class above and its row here (params.py checks "sampling" against these names).
SAMPLERS: dict[str, Callable[..., Sampler]] = {
    "natural": _natural,
    "sqrt": _by_class("sqrt"),
    "balanced": _by_class("balanced"),
}
SAMPLINGS = tuple(SAMPLERS)


def choose(
    sampling: str,
    images: Index,
    *,
    batch_size: int,
    seed: int,
    shuffle: bool,
    classes: int,
    rank: int = 0,
    ranks: int = 1,
) -> Sampler:
    """This rank's sampler, chosen once, at set-up: its part of the global batches of
    ``batch_size`` images that ``sampling`` draws from ``images``."""
    whole = SAMPLERS[sampling](images, batch_size, seed, shuffle, classes)
    return RankShare(whole, rank, ranks)
