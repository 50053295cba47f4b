"""Where an image's bytes come from: a :class:`Source`, chosen once, at set-up, from the
layer's parameters.

Each module of this package is one kind of source. It names the ``param_str`` key whose
value selects it (``SELECTED_BY``; ``None`` for the default, files under ``root_folder``) and
opens itself from the parameters (``from_params(params, images, parse_datum)``). :func:`open_source`
finds the modules here by listing the package, so that a new kind (WebDataset tar shards
with an index of member offsets, say) is one new file in this folder; its selecting key
still goes into the layer's key table, :data:`python_layers.params.MULTILABEL_DATA_KEYS`.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache
from types import ModuleType
from typing import Callable, Protocol

from ..decode import Encoded
from ..index import Index


class Source(Protocol):
    """Random access to a list's images by their index in the list (0 .. N - 1)."""

    def name(self, index: int) -> str:
        """Image ``index`` as error messages name it: a path, ``lmdb[key]``."""
        ...

    def read(self, index: int) -> Encoded:
        """Image ``index``'s encoded bytes, file path or raw pixels; raises
        :class:`~python_layers.data.decode.BadImageError` (without where: the caller adds
        ``file:line`` and :meth:`name`) when it cannot be had."""
        ...


@lru_cache(maxsize=1)
def kinds() -> dict[str | None, ModuleType]:
    """The source modules of this package by the key that selects them (None: the default)."""
    found: dict[str | None, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if not hasattr(module, "SELECTED_BY") or not hasattr(module, "from_params"):
            raise AssertionError(f"{module.__name__}: a source names SELECTED_BY and from_params")
        if module.SELECTED_BY in found:
            raise AssertionError(f"two sources are selected by {module.SELECTED_BY!r}")
        found[module.SELECTED_BY] = module
    return found


def open_source(params: dict, images: Index, parse_datum: Callable[[bytes], Encoded]) -> Source:
    """The source the parameters select (the one whose key is set; files when none is), open
    on ``images``; ``parse_datum`` reads a Caffe ``Datum`` (for the sources that hold them)."""
    chosen = [key for key in kinds() if key is not None and params.get(key)]
    if len(chosen) > 1:
        raise ValueError(f"give one image source, not {' and '.join(sorted(chosen))}")
    return kinds()[chosen[0] if chosen else None].from_params(params, images, parse_datum)


__all__ = ["Source", "kinds", "open_source"]
