"""The image-input spec: what a ``MultiLabelImageDataLayer``'s image keys make of its input.

One object, built from the layer's param_str as the layer's own parser checks it
(:func:`python_layers.params.multilabel_data_params`, where every default is), gives the
transform (:class:`.transforms.Transform`), the shape of one input (C, H, W) and the deploy
net's ``Input`` shape (N, C, H, W). The data layer, ``deploy_net``, ``inference`` and the
commands all ask it, so that a key means the same to each of them::

    spec = InputSpec.parse('{"source": "val.txt", "classes": 3, "batch_size": 2, '
                           '"new_height": 40, "new_width": 30, "crop_size": 28}')
    spec.input_shape(first_size=None)  # [2, 3, 28, 28]

The input's height and width are the crop's, else the resize's, else the first image's own
(only then is ``first_size`` called, to read it). A ``mean_file``'s array is not loaded here
(it is a Caffe ``BlobProto``, and this package's ``data`` modules need no Caffe): the layer
reads it and passes it to :meth:`InputSpec.transform_with`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .transforms import Transform

# The param_str keys that decide the input's pixels and where the images are; the others are
# about lists, batches, sampling and workers (a Predictor needs only these).
IMAGE_KEYS = (
    "root_folder",
    "new_height",
    "new_width",
    "is_color",
    "crop_size",
    "mean_value",
    "mean_file",
    "scale",
)

FirstSize = Callable[[], tuple[int, int]]  # (H, W) of the first image, read when asked


@dataclass(frozen=True)
class InputSpec:
    """The data layer's image input (see the module doc)."""

    transform: Transform  # without a mean_file's array: see transform_with
    batch_size: int
    root_folder: str
    mean_file: str | None

    @classmethod
    def from_params(cls, p: Mapping[str, Any]) -> InputSpec:
        """From the checked keys (``multilabel_data_params``); a ValueError names the bad key
        (the caller puts the layer's name in front)."""
        channels = 3 if p["is_color"] else 1
        means = tuple(p["mean_value"])
        if means and len(means) not in (1, channels):
            raise ValueError(
                f"param_str key 'mean_value' has {len(means)} values; "
                f"expected 1 or {channels} (one per channel, BGR)"
            )
        if means and p["mean_file"]:
            raise ValueError("give mean_value or mean_file, not both (as Caffe)")
        # A key named as a Transform field is that field (a new transform key: its Key in
        # params.py and its field in transforms.py; nothing here unless it changes the shape).
        named = {f.name: p[f.name] for f in fields(Transform) if f.name in p}
        named["mean_value"] = means * (channels if len(means) == 1 else 1)
        transform = Transform(**named)
        return cls(transform, p["batch_size"], p["root_folder"], p["mean_file"])

    @classmethod
    def parse(cls, param_str: str) -> InputSpec:
        """From a data layer's param_str, read by the layer's own parser (and its errors)."""
        from ..params import multilabel_data_params  # params imports data/: not at import time

        return cls.from_params(multilabel_data_params(param_str))

    @property
    def channels(self) -> int:
        return self.transform.channels

    def transform_with(self, mean: np.ndarray | None) -> Transform:
        """The transform with a ``mean_file``'s (C, H, W) float32 array (None: none)."""
        return replace(self.transform, mean=mean)

    def shape(self, first_size: FirstSize | None) -> tuple[int, int, int]:
        """(C, H, W) of one input: see :func:`input_shape`."""
        return input_shape(self.transform, first_size)

    def input_shape(self, first_size: FirstSize | None, batch: int | None = None) -> list[int]:
        """(N, C, H, W): the deploy net's ``Input`` shape; N is ``batch`` or the batch_size."""
        return [self.batch_size if batch is None else batch, *self.shape(first_size)]


def input_shape(transform: Transform, first_size: FirstSize | None) -> tuple[int, int, int]:
    """(C, H, W) of one input: the crop, the resize, or the first image's own size (then
    ``first_size`` is called; None there is a ValueError saying what to set)."""
    if transform.crop_size:
        return (transform.channels, transform.crop_size, transform.crop_size)
    if transform.new_height and transform.new_width:
        return (transform.channels, transform.new_height, transform.new_width)
    if first_size is None:
        raise ValueError("no crop_size or new_height/new_width: the first image decides the size")
    height, width = first_size()
    return (transform.channels, int(height), int(width))
