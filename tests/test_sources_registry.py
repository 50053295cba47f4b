"""The image sources as a package of kinds (no Caffe): files by default, an LMDB by its key,
and a new kind found as one new file in python_layers/data/sources/, chosen once from the
parameters; an LMDB's keys made from the index's path bytes (non-ASCII paths too)."""

from __future__ import annotations

import os

import pytest

from python_layers.data import index, sources
from python_layers.data.sources import caffe_lmdb, files

NEW_KIND = """
SELECTED_BY = "shards"


class Shards:
    def __init__(self, where, images):
        self.where, self.images = where, images

    def name(self, i):
        return f"{self.where}#{i}"

    def read(self, i):
        return b""


def from_params(params, images, parse_datum):
    return Shards(params["shards"], images)
"""


@pytest.fixture
def images(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("img/0.png 1\nimg/été.png 0 2\n", encoding="utf-8")
    return index.open_index(listing)


def test_files_are_the_default_and_lmdb_is_selected_by_its_key():
    assert sources.kinds() == {None: files, "lmdb": caffe_lmdb}


def test_the_default_source_joins_root_folder_and_the_path(images):
    source = sources.open_source({"root_folder": "/data", "lmdb": None}, images, bytes)
    assert isinstance(source, files.Files)
    assert source.name(1) == source.read(1) == os.path.join("/data", "img/été.png")


def test_a_new_kind_is_one_new_file(tmp_path, monkeypatch, images):
    folder = tmp_path / "more_sources"
    folder.mkdir()
    (folder / "shards.py").write_text(NEW_KIND)
    monkeypatch.setattr(sources, "__path__", [*sources.__path__, str(folder)])
    sources.kinds.cache_clear()
    try:
        assert set(sources.kinds()) == {None, "lmdb", "shards"}
        chosen = sources.open_source(
            {"root_folder": "", "lmdb": None, "shards": "s/{0..9}.tar"}, images, bytes
        )
        assert chosen.name(1) == "s/{0..9}.tar#1"
        with pytest.raises(ValueError, match="give one image source, not lmdb and shards"):
            sources.open_source({"root_folder": "", "lmdb": "x", "shards": "y"}, images, bytes)
    finally:
        monkeypatch.undo()
        sources.kinds.cache_clear()
    assert set(sources.kinds()) == {None, "lmdb"}


def test_lmdb_keys_are_the_index_and_the_list_s_path_bytes(tmp_path, images):
    import lmdb

    with lmdb.open(str(tmp_path / "db"), map_size=1 << 20) as env, env.begin(write=True) as txn:
        for key in (b"00000000_img/0.png", b"00000001_" + "img/été.png".encode()):
            txn.put(key, b"a datum")
    source = sources.open_source({"root_folder": "", "lmdb": str(tmp_path / "db")}, images, bytes)
    assert isinstance(source, caffe_lmdb.Lmdb)
    assert source.key(1) == b"00000001_" + "img/été.png".encode()
    assert source.read(1) == b"a datum"  # the value through parse_datum (here bytes)
    assert source.name(1) == f"{tmp_path / 'db'}[00000001_img/été.png]"
    assert images.raw_path(1) == "img/été.png".encode() and images.path(1) == "img/été.png"
