"""The data path's pure parts: list files (every bad line named by file:line) and batch
sampling (a pure function of seed and batch index; epoch coverage; resampling frequencies
against their formulas; rank shares)."""

from __future__ import annotations

import numpy as np
import pytest

from python_layers.data import list_file, sampler


def write(tmp_path, text: str):
    path = tmp_path / "train.txt"
    path.write_text(text)
    return path


def test_a_list_file_with_comments_weights_and_an_unlabelled_image(tmp_path):
    path = write(
        tmp_path,
        "# images\n\na/1.jpg 3 1\nb/2.jpg 2:0.5 0:2  # weighted\n\nc/3.jpg\nd/4.jpg 4\n",
    )
    images = list_file.parse(path, classes=5, max_labels=3)
    assert images.paths == ("a/1.jpg", "b/2.jpg", "c/3.jpg", "d/4.jpg")
    assert images.line_numbers == (3, 4, 6, 7)
    np.testing.assert_array_equal(
        images.labels, [[3, 1, -1], [2, 0, -1], [-1, -1, -1], [4, -1, -1]]
    )
    np.testing.assert_array_equal(images.weights, [[1, 1, 0], [0.5, 2, 0], [0, 0, 0], [1, 0, 0]])
    assert images.where(2) == f"{path}:6"
    per_class = images.images_per_class(5)
    assert [p.tolist() for p in per_class] == [[1], [0], [1], [0], [3]]


def test_without_weights_there_is_no_weights_array(tmp_path):
    images = list_file.parse(write(tmp_path, "x.png 0 1\n"), classes=2, max_labels=2)
    assert images.weights is None


@pytest.mark.parametrize(
    "line,message",
    [
        ("x.jpg 5", r"train\.txt:2: label '5' is not an integer in \[0, 5\)"),
        ("x.jpg -1", r"train\.txt:2: label '-1' is not an integer in \[0, 5\)"),
        ("x.jpg 1.5", r"train\.txt:2: label '1\.5' is not an integer"),
        ("x.jpg cat", r"train\.txt:2: label 'cat' is not an integer"),
        ("x.jpg 3:abc", r"train\.txt:2: weight 'abc' of label 3 is not a finite number >= 0"),
        ("x.jpg 3:-1", r"train\.txt:2: weight '-1' of label 3"),
        ("x.jpg 3:nan", r"train\.txt:2: weight 'nan' of label 3"),
        ("x.jpg 3:", r"train\.txt:2: weight '' of label 3"),
        ("x.jpg 0 1 2 3", r"train\.txt:2: 4 labels, more than max_labels = 3"),
    ],
)
def test_each_bad_line_is_named_by_file_and_line(tmp_path, line, message):
    with pytest.raises(list_file.ListFileError, match=message):
        list_file.parse(write(tmp_path, f"ok.jpg 0\n{line}\n"), classes=5, max_labels=3)


def test_a_missing_or_empty_list_file(tmp_path):
    with pytest.raises(list_file.ListFileError, match=r"nope\.txt: the list file does not exist"):
        list_file.parse(tmp_path / "nope.txt", 5, 3)
    with pytest.raises(list_file.ListFileError, match=r"train\.txt: the list file names no image"):
        list_file.parse(write(tmp_path, "# nothing\n\n"), 5, 3)


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


@pytest.mark.parametrize("sampling", ["natural", "sqrt", "balanced"])
def test_a_batch_is_a_pure_function_of_seed_and_index(sampling):
    counts = np.array([50, 10, 1, 0, 5])
    per_class = [np.arange(n) for n in counts]
    probabilities = None if sampling == "natural" else sampler.class_probabilities(counts, sampling)

    def batch(seed, b):
        if sampling == "natural":
            return sampler.natural_batch(b, 8, 50, seed, shuffle=True)
        return sampler.resampled_batch(b, 8, seed, probabilities, per_class)

    later_first = [batch(1, b) for b in (7, 3, 0)][::-1]  # any order of asking
    assert all((x == y).all() for x, y in zip(later_first, [batch(1, b) for b in (0, 3, 7)]))
    assert not (batch(1, 3) == batch(2, 3)).all()
    assert not (batch(1, 3) == batch(1, 4)).all()


@pytest.mark.parametrize("sampling", ["sqrt", "balanced"])
def test_resampled_class_frequencies_follow_the_formula(sampling):
    """Each sample's class: P(c) = sqrt(n_c) / sum sqrt(n_k), or uniform over classes with
    images. 100,000 draws, fixed seed: every class within 4 standard errors."""
    counts = np.array([400, 100, 25, 4, 1, 0])
    # images 0..529; image i has the class whose block it falls in
    starts = np.concatenate([[0], np.cumsum(counts)])
    per_class = [np.arange(starts[c], starts[c + 1]) for c in range(len(counts))]
    probabilities = sampler.class_probabilities(counts, sampling)
    expected = np.sqrt(counts) if sampling == "sqrt" else (counts > 0).astype(float)
    expected /= expected.sum()
    np.testing.assert_allclose(probabilities, expected)
    draws = np.concatenate(
        [sampler.resampled_batch(b, 1000, 9, probabilities, per_class) for b in range(100)]
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
