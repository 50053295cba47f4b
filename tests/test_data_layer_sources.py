"""MultiLabelImageDataLayer through real caffe.Nets: images from a Caffe LMDB (written here as
convert_imageset writes it) equal to the same images from files; list-file errors at set-up
(byte-order mark, whitespace in a path, an unreadable first image) named by file:line; a
snapshot of the older batch order refused."""

from __future__ import annotations

import hashlib
import json
import re

import numpy as np
import pytest
from image_data import MESSAGE_PREFIX as P
from image_data import build, write_images

pytestmark = pytest.mark.caffe


def write_lmdb(path, listing, root, raw: bool = False, renamed: int | None = None) -> None:
    """What ``convert_imageset [--encoded] root/ listing path`` writes: image i of the list
    under "%08d_<path>", a Datum with the file's bytes (or its raw BGR pixels, C x H x W)."""
    import lmdb
    from caffe.proto import caffe_pb2
    from PIL import Image

    lines = [line.split() for line in listing.read_text().splitlines()]
    lines = [tokens for tokens in lines if tokens and not tokens[0].startswith("#")]
    with lmdb.open(str(path), map_size=1 << 26) as env, env.begin(write=True) as transaction:
        for index, tokens in enumerate(lines):
            datum = caffe_pb2.Datum(label=int(tokens[1]))
            if raw:
                bgr = np.asarray(Image.open(root / tokens[0]).convert("RGB"))[:, :, ::-1]
                datum.channels, datum.height, datum.width = 3, bgr.shape[0], bgr.shape[1]
                datum.data = np.ascontiguousarray(bgr.transpose(2, 0, 1)).tobytes()
            else:
                datum.encoded, datum.data = True, (root / tokens[0]).read_bytes()
            name = "elsewhere.png" if index == renamed else tokens[0]
            transaction.put(f"{index:08d}_{name}".encode(), datum.SerializeToString())


@pytest.mark.parametrize("raw", [False, True], ids=["encoded", "raw"])
def test_lmdb_input_equals_file_input(caffe, make_net, tmp_path, raw):
    listing, _ = write_images(tmp_path, count=11, size=(9, 8))
    write_lmdb(tmp_path / "train_lmdb", listing, tmp_path, raw=raw)
    common = dict(source=str(listing), classes=4, batch_size=4, crop_size=5, mirror=True,
                  shuffle=True, seed=3, sampling="sqrt", max_labels=3)  # fmt: skip
    files = build(make_net, caffe, tmp_path, **common)
    database = build(make_net, caffe, tmp_path, lmdb=str(tmp_path / "train_lmdb"), **common)
    for _ in range(6):
        files.forward()
        database.forward()
        for blob in ("data", "labels"):
            np.testing.assert_array_equal(files.blobs[blob].data, database.blobs[blob].data)


def test_a_key_missing_from_the_lmdb_is_named(caffe, make_net, tmp_path):
    listing, _ = write_images(tmp_path, count=4, size=(6, 6))
    write_lmdb(tmp_path / "train_lmdb", listing, tmp_path, renamed=2)
    n = build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=4,
              lmdb=str(tmp_path / "train_lmdb"))  # fmt: skip
    expected = (
        rf"{re.escape(str(listing))}:4 {re.escape(str(tmp_path / 'train_lmdb'))}"
        r"\[00000002_img/2\.png\]: no such key in the LMDB"
    )
    with pytest.raises(ValueError, match=P + expected):
        n.forward()
    with pytest.raises(ValueError, match=P + r"lmdb /nowhere: does not exist"):
        build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=4,
              lmdb="/nowhere")  # fmt: skip


def test_a_byte_order_mark_is_not_part_of_the_first_path(caffe, make_net, tmp_path):
    listing, pixels = write_images(tmp_path, count=3)
    listing.write_bytes(b"\xef\xbb\xbf" + listing.read_bytes())  # as Windows' Notepad saves
    n = build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=3)
    n.forward()
    np.testing.assert_array_equal(n.blobs["data"].data[0], pixels[0][:, :, ::-1].transpose(2, 0, 1))


def test_the_image_read_at_set_up_is_named_by_file_and_line(caffe, make_net, tmp_path):
    listing, _ = write_images(tmp_path, count=3)
    (tmp_path / "img" / "0.png").unlink()  # no crop or resize: set-up reads image 0's size
    expected = rf"{re.escape(str(listing))}:2 {re.escape(str(tmp_path))}/img/0\.png: cannot read"
    with pytest.raises(ValueError, match=P + expected):
        build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=3)


def test_a_path_with_a_space_is_reported_as_such(caffe, make_net, tmp_path):
    listing, _ = write_images(tmp_path, count=3)
    listing.write_text(listing.read_text().replace("img/1.png", "img/my photo.png"))
    with pytest.raises(ValueError, match=P + rf"{re.escape(str(listing))}:3: label 'photo\.png'"
                       r" is not an integer >= 0; .*paths cannot contain whitespace"):  # fmt: skip
        build(make_net, caffe, tmp_path, source=str(listing), classes=4, batch_size=3)


def test_a_snapshot_of_the_older_batch_order_is_refused(caffe, make_net, tmp_path):
    """The state blob of release 0.1 (batches read, fingerprint of the list and settings): the
    same configuration, the other order; resuming must stop, not read other batches."""
    listing, _ = write_images(tmp_path, count=6)
    params = dict(source=str(listing), classes=4, batch_size=2, shuffle=True, seed=4)
    n = build(make_net, caffe, tmp_path, **params)
    settings = (4, 2, 1, "natural", True)  # seed, global batch, ranks, sampling, shuffle
    digest = hashlib.sha256(listing.read_bytes() + repr(settings).encode()).digest()
    old = 1 + int.from_bytes(digest[:3], "little") % (2**24 - 1)
    n.layers[0].blobs[0].data[...] = [0, 5, old]  # 5 batches read, then a snapshot
    with pytest.raises(
        ValueError,
        match=P + r"the restored snapshot's data state was written "
        r"by another configuration .* or by an older version of this layer",
    ):
        n.forward()
    assert json.loads(json.dumps(params))  # the same configuration as the old run's
