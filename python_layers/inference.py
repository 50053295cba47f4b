"""Inference: images through the data layer's TEST-phase transform, then a deploy net.

    from python_layers.inference import Predictor, preprocess
    x = preprocess(["a.png", "b.png"], {"new_height": 32, "new_width": 32, "is_color": False})
    probs = Predictor("deploy.prototxt", "snapshot.caffemodel", transform).probabilities(paths)

``transform`` is the data layer's own param_str keys (a dict or its JSON): the image keys
(``new_height``, ``new_width``, ``is_color``, ``crop_size``, ``mean_value``, ``mean_file``,
``scale``, ``root_folder``) are used, the others ignored. Images are read by a
``MultiLabelImageDataLayer`` in the TEST phase (centred crop, no mirror), so what the deploy
net sees is exactly what the TEST net saw.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from .params import multilabel_data_params

TRANSFORM_KEYS = (
    "root_folder",
    "new_height",
    "new_width",
    "is_color",
    "crop_size",
    "mean_value",
    "mean_file",
    "scale",
)
Transform = Union[dict, str, None]


def transform_params(transform: Transform) -> dict[str, Any]:
    """The image keys of a data layer's param_str (dict or JSON text), checked as the layer
    checks them; keys about lists, batches and sampling are dropped."""
    given = json.loads(transform) if isinstance(transform, str) else dict(transform or {})
    kept = {key: given[key] for key in TRANSFORM_KEYS if key in given}
    multilabel_data_params(json.dumps({"source": "-", "classes": 1, "batch_size": 1, **kept}))
    return kept


def _list_line(path: str) -> str:
    if not path or any(ch.isspace() for ch in path) or "#" in path:
        raise ValueError(
            f"image path {path!r}: list files cannot hold an empty path, whitespace or '#'; "
            "rename the file or link it under a plain name"
        )
    return path + "\n"


def preprocess_batches(
    paths: Sequence[str], transform: Transform, batch_size: int = 32, workers: int = 2
) -> Iterator[np.ndarray]:
    """(b, C, H, W) float32 batches of ``paths`` (b <= batch_size, in order), as the data layer
    gives them in the TEST phase."""
    import caffe

    params = transform_params(transform)
    if not paths:
        return
    with tempfile.TemporaryDirectory(prefix="preprocess-") as folder:
        source = os.path.join(folder, "images.txt")
        with open(source, "w", encoding="utf-8") as handle:
            handle.writelines(_list_line(str(path)) for path in paths)
        layer_params = dict(params, source=source, classes=1, max_labels=1)
        layer_params.update(batch_size=min(batch_size, len(paths)), workers=workers)
        net_path = os.path.join(folder, "preprocess.prototxt")
        with open(net_path, "w", encoding="utf-8") as handle:
            handle.write(
                'layer { name: "image_data" type: "Python" top: "data" top: "labels" '
                'python_param { module: "python_layers.multilabel_data" '
                'layer: "MultiLabelImageDataLayer" '
                f"param_str: {json.dumps(json.dumps(layer_params))} }} }}\n"
            )
        net = caffe.Net(net_path, caffe.TEST)
        for start in range(0, len(paths), batch_size):
            net.forward()
            yield net.blobs["data"].data[: min(batch_size, len(paths) - start)].copy()


def preprocess(paths: Sequence[str], transform: Transform) -> np.ndarray:
    """All of ``paths`` as one (N, C, H, W) float32 array (see :func:`preprocess_batches`)."""
    return np.concatenate(list(preprocess_batches(paths, transform)))


class Predictor:
    """A deploy net with trained weights: probabilities for image files."""

    def __init__(
        self, deploy: str | Path, weights: str | Path, transform: Transform, output: str = "prob"
    ):
        import caffe

        for path in (deploy, weights):
            if not Path(path).is_file():
                raise FileNotFoundError(f"{path}: no such file")
        self.net = caffe.Net(str(deploy), caffe.TEST, weights=str(weights))
        self.input = self.net.inputs[0]
        if output not in self.net.blobs:
            raise ValueError(
                f"{deploy}: the net has no blob {output!r} (its outputs: {list(self.net.outputs)})"
            )
        self.output = output
        self.transform = transform_params(transform)
        self.batch_size = self.net.blobs[self.input].data.shape[0]

    def probabilities(self, paths: Sequence[str], progress: bool = False) -> np.ndarray:
        """(N, C) float32: the net's ``prob`` for each image, in order; ``progress`` shows a
        progress bar on stderr."""
        from tqdm import tqdm

        out = []
        with tqdm(total=len(paths), unit="image", disable=not progress, file=sys.stderr) as bar:
            for batch in preprocess_batches(paths, self.transform, self.batch_size):
                blob = self.net.blobs[self.input]
                blob.reshape(*batch.shape)
                blob.data[...] = batch
                self.net.forward()
                out.append(self.net.blobs[self.output].data.reshape(len(batch), -1).copy())
                bar.update(len(batch))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
