"""Batch b's images pinned: the index sequences of release 0.2's order (ORDER_VERSION 2) for
each sampling, shuffled or not, one rank or the second of two. Exact resume through
``caffe train --snapshot`` restores the batch count only, so a change to any of these numbers
would make a resumed run read other batches than the interrupted one: such a change must
raise ORDER_VERSION (which refuses the old snapshots) and rewrite these numbers."""

from __future__ import annotations

import numpy as np
import pytest

from python_layers.data import batches, index, sampler, transforms

B = (0, 1, 7, 8, 1000)  # the first batches, the end of an epoch (37 images, 5 a batch), far on
PINNED = {
    ("natural", False, 1, 0): [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [35, 36, 0, 1, 2],
                               [3, 4, 5, 6, 7], [5, 6, 7, 8, 9]],
    ("natural", False, 2, 1): [[5, 6, 7, 8, 9], [15, 16, 17, 18, 19], [1, 2, 3, 4, 5],
                               [11, 12, 13, 14, 15], [15, 16, 17, 18, 19]],
    ("natural", True, 1, 0): [[36, 18, 31, 2, 32], [33, 34, 8, 9, 35], [4, 3, 36, 23, 34],
                              [13, 32, 15, 14, 17], [33, 8, 13, 21, 26]],
    ("natural", True, 2, 1): [[33, 34, 8, 9, 35], [13, 14, 26, 11, 24], [27, 28, 0, 11, 8],
                              [23, 30, 31, 20, 26], [13, 30, 2, 34, 10]],
    ("sqrt", True, 1, 0): [[32, 5, 32, 29, 21], [8, 36, 11, 13, 19], [22, 13, 19, 20, 32],
                           [1, 22, 2, 32, 32], [9, 29, 1, 18, 24]],
    ("sqrt", True, 2, 1): [[23, 36, 30, 14, 35], [12, 19, 21, 8, 29], [1, 12, 4, 5, 19],
                           [2, 19, 28, 5, 25], [16, 8, 18, 1, 1]],
    ("balanced", False, 1, 0): [[32, 5, 32, 29, 21], [8, 36, 11, 13, 19], [21, 13, 19, 20, 32],
                                [1, 22, 2, 32, 32], [9, 29, 1, 18, 23]],
    ("balanced", False, 2, 1): [[23, 36, 32, 14, 35], [17, 19, 21, 8, 29], [1, 12, 4, 5, 19],
                                [2, 19, 28, 5, 25], [16, 8, 18, 1, 1]],
}  # fmt: skip


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """37 images, 1 to 3 of 6 classes each (every ninth image class 0 alone)."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(37):
        labels = rng.choice(6, size=rng.integers(1, 4), replace=False) if i % 9 else [0]
        lines.append(f"img/{i}.png " + " ".join(str(c) for c in labels))
    listing = tmp_path_factory.mktemp("pinned") / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return index.open_index(listing)


@pytest.mark.parametrize("case", PINNED, ids=[" ".join(map(str, case)) for case in PINNED])
def test_batch_indices_are_pinned(images, case):
    sampling, shuffle, ranks, rank = case
    chosen = sampler.choose(
        sampling, images, batch_size=5 * ranks, seed=7, shuffle=shuffle, classes=6,
        rank=rank, ranks=ranks,
    )  # fmt: skip
    assert [chosen.batch(b).tolist() for b in B] == PINNED[case]
    assert [chosen.batch(b).dtype for b in B] == [np.int64] * len(B)
    plan = batches.Plan(
        batch_size=5, ranks=ranks, rank=rank, seed=7, sampling=sampling, shuffle=shuffle,
        train=True, classes=6, max_labels=3, targets="labels", skip_bad_images=False,
    )  # fmt: skip
    crop = transforms.Transform(crop_size=4)  # the input shape known without reading images
    maker = batches.BatchMaker(images, None, crop, plan)  # the layer's path to the sampler
    assert [maker.indices(b).tolist() for b in B] == PINNED[case]
