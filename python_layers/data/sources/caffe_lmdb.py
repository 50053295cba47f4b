"""Images from a Caffe LMDB (``"lmdb": path``).

An LMDB is read as Caffe's ``convert_imageset`` writes it: image i of the list given to it
(without ``--shuffle``) under the key ``"%08d_<path>"``, its value a ``Datum`` holding the
encoded file (``--encoded``) or raw pixels (C, H, W, BGR). The labels still come from the list
file (a Datum has room for one); the list names the images in the LMDB's order. Datums are
parsed by a function the caller gives (the Caffe layer passes ``caffe_pb2.Datum``'s), so that
this module needs no Caffe. An LMDB must be trusted: liblmdb maps the file, so a damaged one
can end the process with SIGBUS before Python sees an error; the errors liblmdb reports are
raised naming the LMDB and the key.
"""

from __future__ import annotations

import os
from typing import Callable

from ..decode import BadImageError, Encoded
from ..index import Index

SELECTED_BY = "lmdb"  # the param_str key whose value, the LMDB's path, selects this source


class Lmdb:
    """Images from an LMDB written by ``convert_imageset`` from this list's images, in order."""

    def __init__(self, path: str, images: Index, parse_datum: Callable[[bytes], Encoded]):
        import lmdb  # only LMDB users need it

        if not os.path.exists(path):
            raise ValueError(f"lmdb {path}: does not exist")
        self.path, self.images, self.parse_datum = path, images, parse_datum
        self.errors = lmdb.Error
        try:
            self.env = lmdb.open(
                path, readonly=True, lock=False, readahead=False, subdir=os.path.isdir(path),
                max_readers=512,
            )  # fmt: skip
            entries = self.env.stat()["entries"]
        except lmdb.Error as why:
            raise ValueError(f"lmdb {path}: cannot open it ({type(why).__name__}: {why})") from None
        if entries < len(images):
            raise ValueError(
                f"lmdb {path}: holds {entries} images, fewer than the {len(images)} of "
                f"{images.source}"
            )

    def key(self, index: int) -> bytes:
        return f"{index:08d}_".encode() + self.images.raw_path(index)  # as convert_imageset

    def name(self, index: int) -> str:
        return f"{self.path}[{self.key(index).decode('utf-8', 'replace')}]"

    def read(self, index: int) -> Encoded:
        try:
            with self.env.begin(buffers=False) as transaction:
                value = transaction.get(self.key(index))
        except self.errors as why:  # a damaged database (liblmdb maps it: see docs/data.md)
            raise BadImageError(f"the LMDB cannot be read ({type(why).__name__}: {why})") from None
        if value is None:
            raise BadImageError(
                "no such key in the LMDB: it must be written by convert_imageset from the "
                "list's images in the list's order (without --shuffle)"
            )
        try:
            return self.parse_datum(value)
        except Exception as why:  # a value that is not a Datum
            raise BadImageError(f"not a Caffe Datum ({type(why).__name__}: {why})") from None


def from_params(params: dict, images: Index, parse_datum: Callable[[bytes], Encoded]) -> Lmdb:
    return Lmdb(params[SELECTED_BY], images, parse_datum)
