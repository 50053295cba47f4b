"""MultiLabelImageDataLayer through real caffe.Nets on real image files (PNG and JPEG written
here): pixel-exact transforms, order, determinism across worker counts, every bad input.
Sharding, resume, shutdown and training: test_data_layer_training.py."""

from __future__ import annotations

import re

import numpy as np
import pytest
from image_data import MESSAGE_PREFIX as P
from image_data import build, data_net, write_images
from PIL import Image

from python_layers.params import multilabel_data_params

pytestmark = pytest.mark.caffe


def image_ids(n) -> list[int]:
    """Which image each sample is, from the identifying pixel (scale 1, no mean, no crop)."""
    return n.blobs["data"].data[:, 2, 0, 0].astype(int).tolist()  # BGR: red is channel 2


def test_pixels_labels_and_order_without_randomness(caffe, make_net, tmp_path):
    listing, pixels = write_images(tmp_path, count=5)
    n = build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=3,
              max_labels=3)  # fmt: skip
    lines = listing.read_text().splitlines()[1:]
    for expected_ids in ([0, 1, 2], [3, 4, 0], [1, 2, 3]):  # a batch of 3 does not divide 5
        n.forward()
        assert image_ids(n) == expected_ids
        for slot, index in enumerate(expected_ids):
            bgr = pixels[index][:, :, ::-1].transpose(2, 0, 1)
            np.testing.assert_array_equal(n.blobs["data"].data[slot], bgr)
            labels = [int(t) for t in lines[index].split()[1:]]
            row = n.blobs["labels"].data[slot]
            assert row.tolist() == labels + [-1] * (3 - len(labels))


def test_centre_crop_mean_and_scale_in_test_phase(caffe, make_net, tmp_path):
    listing, pixels = write_images(tmp_path, count=2, size=(7, 8))
    n = build(make_net, caffe, tmp_path, phase="TEST", source=str(listing), classes=4,
              batch_size=2, crop_size=3, mirror=True, mean_value=[10, 20, 30],
              scale=0.5)  # fmt: skip
    n.forward()
    for slot in range(2):
        top, left = (7 - 3) // 2, (8 - 3) // 2  # centred; no mirror in TEST
        bgr = pixels[slot][top : top + 3, left : left + 3, ::-1].transpose(2, 0, 1)
        expected = (bgr.astype(np.float32) - np.array([10, 20, 30]).reshape(3, 1, 1)) * 0.5
        np.testing.assert_array_equal(n.blobs["data"].data[slot], expected)


def test_random_crops_and_mirrors_in_train_phase_follow_the_seeded_numbers(
    caffe, make_net, tmp_path
):
    listing, pixels = write_images(tmp_path, count=8, size=(9, 7))
    n = build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=8,
              crop_size=4, mirror=True, seed=5)  # fmt: skip
    layer = n.layers[0]
    n.forward()
    randoms = layer.maker.randoms(0)
    flipped = 0
    for slot in range(8):
        top, left = int(randoms[slot, 0] * (9 - 4 + 1)), int(randoms[slot, 1] * (7 - 4 + 1))
        bgr = pixels[slot][top : top + 4, left : left + 4, ::-1].transpose(2, 0, 1)
        if randoms[slot, 2] < 0.5:
            bgr, flipped = bgr[:, :, ::-1], flipped + 1
        np.testing.assert_array_equal(n.blobs["data"].data[slot], bgr)
    assert 0 < flipped < 8  # both cases were exercised


def test_grayscale_resize_and_dense_targets(caffe, make_net, tmp_path):
    (tmp_path / "img").mkdir()
    Image.new("RGB", (5, 3), (200, 100, 50)).save(tmp_path / "img" / "a.png")
    (tmp_path / "list.txt").write_text("img/a.png 1:0.5 3:2\n")
    n = build(make_net, caffe, tmp_path, tops=("data", "targets"),
              source=str(tmp_path / "list.txt"), classes=4, batch_size=1, is_color=False,
              new_height=6, new_width=10, targets="dense")  # fmt: skip
    n.forward()
    luma = (200 * 299 + 100 * 587 + 50 * 114) // 1000  # Pillow's "L": ITU-R 601-2, truncated
    assert n.blobs["data"].data.shape == (1, 1, 6, 10)
    assert (n.blobs["data"].data == luma).all()  # a constant image stays constant
    np.testing.assert_array_equal(n.blobs["targets"].data, [[0, 0.5, 0, 2]])


def test_weighted_lists_give_a_weights_top(caffe, make_net, tmp_path):
    listing, _ = write_images(tmp_path, count=3, weighted=True)
    with pytest.raises(ValueError, match=P + r"needs 3 tops \(data, labels, label_weights\)"):
        build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=3)
    n = build(make_net, caffe, tmp_path, tops=("data", "labels", "label_weights"),
              source=str(listing), classes=4, batch_size=3, max_labels=3)  # fmt: skip
    n.forward()
    lines = listing.read_text().splitlines()[1:]
    for slot, line in enumerate(lines):
        weights = [float(t.split(":")[1]) for t in line.split()[1:]]
        row = n.blobs["label_weights"].data[slot]
        np.testing.assert_allclose(row[: len(weights)], weights, rtol=1e-6)
        assert not row[len(weights) :].any()


@pytest.mark.parametrize("sampling", ["natural", "sqrt"])
def test_the_same_batches_with_one_or_four_workers(caffe, make_net, tmp_path, sampling):
    listing, _ = write_images(tmp_path, count=12, size=(10, 10))
    runs = []
    for workers in (1, 4):
        n = build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=5,
                  crop_size=6, mirror=True, shuffle=True, seed=3, sampling=sampling,
                  workers=workers, prefetch=workers * 2)  # fmt: skip
        seen = []
        for _ in range(6):
            n.forward()
            seen.append((n.blobs["data"].data.copy(), n.blobs["labels"].data.copy()))
        runs.append(seen)
    for (data_1, labels_1), (data_4, labels_4) in zip(*runs):
        np.testing.assert_array_equal(data_1, data_4)
        np.testing.assert_array_equal(labels_1, labels_4)


def test_shuffled_epochs_cover_every_image_once(caffe, make_net, tmp_path):
    listing, _ = write_images(tmp_path, count=7)
    n = build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=3,
              shuffle=True, seed=2)  # fmt: skip
    stream = []
    for _ in range(7):  # 21 samples = 3 epochs of 7
        n.forward()
        stream += image_ids(n)
    epochs = [stream[i : i + 7] for i in range(0, 21, 7)]
    assert all(sorted(e) == list(range(7)) for e in epochs)
    assert epochs[0] != epochs[1] and epochs[0] != list(range(7))


def test_jpeg_files_decode_as_pillow_decodes_them(caffe, make_net, tmp_path):
    (tmp_path / "img").mkdir()
    rng = np.random.default_rng(4)
    photo = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize((50, 40))
    photo.save(tmp_path / "img" / "p.jpg", quality=85)
    (tmp_path / "list.txt").write_text("img/p.jpg 1\n")
    n = build(make_net, caffe, tmp_path, phase="TEST", source=str(tmp_path / "list.txt"),
              classes=2, batch_size=1, mean_value=[128])  # fmt: skip
    n.forward()
    with Image.open(tmp_path / "img" / "p.jpg") as decoded:
        rgb = np.asarray(decoded.convert("RGB")).astype(np.float32)
    np.testing.assert_array_equal(n.blobs["data"].data[0], rgb[:, :, ::-1].transpose(2, 0, 1) - 128)


# --- Bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params,message",
    [
        ({"classes": 4, "batch_size": 2, "normalisation": 1}, r"unknown param_str key"),
        ({"classes": 4}, r"param_str lacks the required key\(s\) 'batch_size'"),
        ({"classes": 4, "batch_size": 2, "mean_value": [1, 2]},
         r"param_str key 'mean_value' has 2 values; expected 1 or 3"),
        ({"classes": 2, "batch_size": 2},
         r"list\.txt:\d+: label '\d' is not an integer in \[0, 2\)"),
        ({"classes": 4, "batch_size": 2, "max_labels": 1}, r"list\.txt:\d+: \d labels, more than "
         r"max_labels = 1"),
        ({"classes": 4, "batch_size": 2, "source": "/nowhere/list.txt"},
         r"/nowhere/list\.txt: the list file does not exist"),
        ({"classes": 4, "batch_size": 2, "mean_file": "/nowhere/mean.binaryproto"},
         r"mean_file /nowhere/mean\.binaryproto"),
    ],
)  # fmt: skip
def test_bad_configuration_fails_at_set_up(caffe, make_net, tmp_path, params, message):
    listing, _ = write_images(tmp_path, count=4)
    params.setdefault("source", str(listing))
    with pytest.raises(ValueError, match=P + r"(\S*/)?" + message):  # a path may come first
        build(make_net, caffe, tmp_path, **params)


@pytest.mark.parametrize("problem", ["missing", "corrupt", "too-small"])
def test_a_bad_image_is_named_by_list_line_and_path(caffe, make_net, tmp_path, problem):
    listing, _ = write_images(tmp_path, count=4, size=(8, 8))
    bad = tmp_path / "img" / "2.png"
    if problem == "missing":
        bad.unlink()
    elif problem == "corrupt":
        bad.write_bytes(b"\x89PNG not really")
    else:
        Image.new("RGB", (3, 3)).save(bad)
    n = build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=4,
              crop_size=5)  # fmt: skip
    why = {
        "missing": "cannot read the image",
        "corrupt": "cannot read the image",
        "too-small": r"the image is 3x3 \(after resizing\), smaller than crop_size 5",
    }
    with pytest.raises(ValueError, match=P + rf"{re.escape(str(listing))}:4 {re.escape(str(bad))}"
                       rf": {why[problem]}"):  # fmt: skip
        n.forward()


def test_on_bad_image_skip_replaces_and_counts(caffe, make_net, tmp_path, capfd):
    listing, _ = write_images(tmp_path, count=4)
    (tmp_path / "img" / "1.png").write_bytes(b"garbage")
    n = build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=4,
              on_bad_image="skip")  # fmt: skip
    n.forward()
    assert image_ids(n) == [0, 2, 2, 3]  # the next image in the list stands in
    err = capfd.readouterr().err
    assert f"skipped a bad image: {listing}:3 {tmp_path}/img/1.png" in err
    assert "1 bad image(s) skipped so far" in err


def test_a_solver_that_trains_the_state_blob_is_stopped(caffe, make_net, tmp_path):
    listing, _ = write_images(tmp_path, count=4)
    n = make_net(
        data_net(tmp_path, source=str(listing), classes=4, batch_size=2, frozen_state=False),
        caffe.TRAIN,
    )
    n.forward()
    n.layers[0].blobs[0].data[0] -= 0.001  # what a weight-decay update does
    with pytest.raises(ValueError, match=P + r"the solver changed this layer's state blob.*"
                       r"lr_mult: 0 decay_mult: 0"):  # fmt: skip
        n.forward()


def test_a_param_str_that_is_not_an_object_shows_where_and_a_data_layer_example():
    with pytest.raises(ValueError) as raised:
        multilabel_data_params('{"source": "train.txt" "classes": 10}')
    message = str(raised.value)
    assert message.startswith("MultiLabelImageDataLayer: param_str")
    assert "Expecting ',' delimiter: line 1 column 24 (char 23)" in message
    assert """'{"source": "train.txt", "classes": 10, "batch_size": 64}'""" in message
