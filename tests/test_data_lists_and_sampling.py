"""The data path's sampling (list files: test_data_index.py): the keyed bijection (a
permutation for every N, no visible structure), batches as a pure function of seed and batch
index, epoch coverage, resampling frequencies against their formulas, rank shares."""

from __future__ import annotations

import numpy as np
import pytest
from sampling import resampled_batch

from python_layers.data import order, sampler


@pytest.mark.parametrize("shuffle", [False, True])
def test_natural_order_covers_every_image_once_per_epoch(shuffle):
    images, batch = 23, 5  # the batch does not divide the data set
    stream = np.concatenate(
        [sampler.natural_batch(b, batch, images, seed=4, shuffle=shuffle) for b in range(23)]
    )  # 115 samples = 5 whole epochs
    epochs = stream.reshape(5, images)
    for epoch in epochs:
        assert sorted(epoch.tolist()) == list(range(images))
    if shuffle:
        assert not (epochs[0] == epochs[1]).all()  # a new order each epoch
        assert epochs[0].tolist() != list(range(images))
    else:
        assert (epochs == np.arange(images)).all()


@pytest.mark.parametrize("sampling", sampler.SAMPLINGS)
def test_a_batch_is_a_pure_function_of_seed_and_index(sampling):
    counts = np.array([50, 10, 1, 0, 5])
    per_class = [np.arange(n) for n in counts]
    probabilities = None if sampling == "natural" else sampler.class_probabilities(counts, sampling)

    def batch(seed, b):
        if sampling == "natural":
            return sampler.natural_batch(b, 8, 50, seed, shuffle=True)
        return resampled_batch(b, 8, seed, probabilities, per_class)

    later_first = [batch(1, b) for b in (7, 3, 0)][::-1]  # any order of asking
    assert all((x == y).all() for x, y in zip(later_first, [batch(1, b) for b in (0, 3, 7)]))
    assert not (batch(1, 3) == batch(2, 3)).all()
    assert not (batch(1, 3) == batch(1, 4)).all()


# counts whose square roots are whole: sqrt gives 20, 10, 5, 2, 1, 0 (sum 38); balanced gives
# the five classes with images 1/5 each. Written out, not computed: an oracle that retyped the
# sampler's formula would share its mistakes.
COUNTS = [400, 100, 25, 4, 1, 0]
KNOWN_PROBABILITIES = {
    "sqrt": [20 / 38, 10 / 38, 5 / 38, 2 / 38, 1 / 38, 0.0],
    "balanced": [0.2, 0.2, 0.2, 0.2, 0.2, 0.0],
}


@pytest.mark.parametrize("sampling", ["sqrt", "balanced"])
def test_resampled_class_frequencies_follow_the_formula(sampling):
    """Each sample's class: P(c) = sqrt(n_c) / sum sqrt(n_k), or uniform over classes with
    images, against values worked out by hand. 100,000 draws, fixed seed: every class's
    frequency within 4 standard errors of them."""
    counts = np.array(COUNTS)
    # images 0..529; image i has the class whose block it falls in
    starts = np.concatenate([[0], np.cumsum(counts)])
    per_class = [np.arange(starts[c], starts[c + 1]) for c in range(len(counts))]
    probabilities = sampler.class_probabilities(counts, sampling)
    expected = np.array(KNOWN_PROBABILITIES[sampling])
    np.testing.assert_allclose(probabilities, expected, rtol=1e-12)
    draws = np.concatenate(
        [resampled_batch(b, 1000, 9, probabilities, per_class) for b in range(100)]
    )
    frequencies = np.bincount(np.searchsorted(starts, draws, side="right") - 1, minlength=6)
    frequencies = frequencies / draws.size
    error = np.sqrt(expected * (1 - expected) / draws.size)
    assert (np.abs(frequencies - expected) <= 4 * error + 1e-12).all(), (frequencies, expected)
    assert frequencies[5] == 0
    # within a class, images are drawn uniformly: class 0's 400 images each ~1/400 of its draws
    within = np.bincount(draws[draws < 400], minlength=400) / (draws < 400).sum()
    assert within.std() < 3 * np.sqrt(1 / 400 / (draws < 400).sum())


def test_ranks_split_each_global_batch_into_disjoint_parts():
    batch = sampler.natural_batch(3, 12, 100, seed=1, shuffle=True)
    parts = [sampler.rank_part(batch, rank, 4) for rank in range(4)]
    np.testing.assert_array_equal(np.concatenate(parts), batch)
    with pytest.raises(ValueError, match="a global batch of 12 does not split over 5 ranks"):
        sampler.rank_part(batch, 0, 5)


SIZES = [1, 2, 3, 5, 7, 11, 97, 101, 65537]
SIZES += [2**k + d for k in (2, 3, 5, 8, 13, 16) for d in (-1, 0, 1)]  # powers and neighbours


@pytest.mark.parametrize("n", SIZES)
def test_the_bijection_is_a_permutation_for_every_size(n):
    for seed, epoch in ((0, 0), (3, 1), (2**40, 7)):
        images = order.Bijection(n, seed, epoch)(np.arange(n))
        np.testing.assert_array_equal(np.sort(images), np.arange(n))


@pytest.mark.parametrize("n", [10**9, 2**32 + 1, 10**12 + 39, 2**63 + 5])
def test_large_sizes_by_sampling(n):
    """100,000 distinct positions anywhere in [0, n): distinct images, all in [0, n)."""
    positions = np.unique(np.random.default_rng(1).integers(0, n, 100_000, dtype=np.uint64))
    positions = np.concatenate([positions, np.array([0, n - 1], np.uint64)])
    images = order.Bijection(n, 5, 2)(positions).astype(np.uint64)
    assert len(np.unique(images)) == len(np.unique(positions))
    assert int(images.max()) < n
    assert (images[:-2] != positions[:-2]).mean() > 0.99


def test_the_shuffle_shows_no_structure():
    """N = 100,003: position-image correlation within 4/sqrt(N) of 0; ascents (image[p+1] >
    image[p]) within 4 standard deviations of a random permutation's (N - 1)/2, var (N + 1)/12;
    each epoch and each seed its own order."""
    n = 100_003
    first = order.Bijection(n, 9, 0)(np.arange(n))
    assert abs(np.corrcoef(np.arange(n), first)[0, 1]) < 4 / np.sqrt(n)
    ascents = int((np.diff(first) > 0).sum())
    assert abs(ascents - (n - 1) / 2) < 4 * np.sqrt((n + 1) / 12)
    # successive positions land far apart (no locality left): median gap near N/3
    assert abs(np.median(np.abs(np.diff(first))) / n - 0.29) < 0.03
    for other in (order.Bijection(n, 9, 1)(np.arange(n)), order.Bijection(n, 10, 0)(np.arange(n))):
        assert (other == first).mean() < 0.001
