"""Images as files: ``root_folder`` joined with the list's path (the default source)."""

from __future__ import annotations

import os
from typing import Callable

from ..decode import Encoded
from ..index import Index

SELECTED_BY = None  # the source when no other source's key is set


class Files:
    """Images as files: ``root_folder`` joined with the list's path."""

    def __init__(self, images: Index, root: str):
        self.images, self.root = images, root

    def name(self, index: int) -> str:
        return os.path.join(self.root, self.images.path(index))

    def read(self, index: int) -> Encoded:
        return self.name(index)  # decoded from the path: OpenCV reads the file


def from_params(params: dict, images: Index, parse_datum: Callable[[bytes], Encoded]) -> Files:
    return Files(images, params["root_folder"])
