"""Inference: images through the data layer's TEST-phase transform, then a deploy net.

    from python_layers.inference import Predictor, preprocess
    x = preprocess(["a.png", "b.png"], {"new_height": 32, "new_width": 32, "is_color": False})
    probs = Predictor("deploy.prototxt", "snapshot.caffemodel", transform).probabilities(paths)

``transform`` is the data layer's own param_str keys (a dict or its JSON): the image keys
(``new_height``, ``new_width``, ``is_color``, ``crop_size``, ``mean_value``, ``mean_file``,
``scale``, ``root_folder``: :data:`python_layers.data.input_spec.IMAGE_KEYS`) are used, and
checked as the layer checks them; the others are ignored. Images are read by a
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

from .data import index, list_file
from .data.input_spec import IMAGE_KEYS, InputSpec
from .params import multilabel_data_params, read_param_str

Transform = Union[dict, str, None]


def transform_params(transform: Transform) -> dict[str, Any]:
    """The image keys of a data layer's param_str (a dict, or its text: JSON or a Python dict
    literal, as the layer reads it), checked as the layer checks them; keys about lists,
    batches and sampling are dropped."""
    given = (
        read_param_str(transform, "transform")
        if isinstance(transform, str)
        else dict(transform or {})
    )
    kept = {key: given[key] for key in IMAGE_KEYS if key in given}
    checked = multilabel_data_params(
        json.dumps({"source": "-", "classes": 1, "batch_size": 1, **kept})
    )
    try:  # the layer's checks, before any image is read
        InputSpec.from_params(checked)
    except ValueError as why:
        raise ValueError(f"transform: {why}") from None
    return kept


def _scan(source: str | Path) -> tuple[int, int, bool]:
    """(images, most labels on a line, whether any label has a weight) of a list file, from
    its index (the one the data layer then maps)."""
    images = index.open_index(source)
    return len(images), max(1, int(images.header["max_count"])), images.weights is not None


def list_batches(
    source: str | Path, transform: Transform, classes: int, batch_size: int = 32, workers: int = 2
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(data (b, C, H, W), relevance (b, classes) bool) batches of a list file, in order: what
    the data layer gives in the TEST phase (its parser, its transform, its errors). A class is
    relevant when listed with a weight > 0."""
    import caffe

    from .metrics import relevance_from_labels

    count, widest, weighted = _scan(source)
    if not count:
        return
    batch = min(batch_size, count)
    params = dict(transform_params(transform), source=str(source), classes=classes)
    params.update(max_labels=widest, batch_size=batch, workers=workers)
    tops = 'top: "data" top: "labels"' + (' top: "label_weights"' if weighted else "")
    with tempfile.TemporaryDirectory(prefix="preprocess-") as folder:
        net_path = os.path.join(folder, "images.prototxt")
        with open(net_path, "w", encoding="utf-8") as handle:
            handle.write(
                f'layer {{ name: "image_data" type: "Python" {tops} '
                'python_param { module: "python_layers.multilabel_data" '
                'layer: "MultiLabelImageDataLayer" '
                f"param_str: {json.dumps(json.dumps(params))} }} }}\n"
            )
        net = caffe.Net(net_path, caffe.TEST)
    for start in range(0, count, batch):
        net.forward()
        size = min(batch, count - start)
        weights = net.blobs["label_weights"].data[:size] if weighted else None
        relevant = relevance_from_labels(net.blobs["labels"].data[:size], classes, weights)
        yield net.blobs["data"].data[:size].copy(), relevant


def preprocess_batches(
    paths: Sequence[str], transform: Transform, batch_size: int = 32, workers: int = 2
) -> Iterator[np.ndarray]:
    """(b, C, H, W) float32 batches of ``paths`` (b <= batch_size, in order), as the data layer
    gives them in the TEST phase."""
    if not paths:
        return
    with tempfile.TemporaryDirectory(prefix="images-") as folder:
        source = os.path.join(folder, "images.txt")
        with open(source, "w", encoding="utf-8") as handle:
            handle.writelines(list_file.line(str(path)) for path in paths)
        for data, _ in list_batches(source, transform, 1, batch_size, workers):
            yield data


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

    def _run(self, batches: Iterator[np.ndarray], total: int, progress: bool) -> np.ndarray:
        from tqdm import tqdm

        out = []
        with tqdm(total=total, unit="image", disable=not progress, file=sys.stderr) as bar:
            for batch in batches:
                blob = self.net.blobs[self.input]
                blob.reshape(*batch.shape)
                blob.data[...] = batch
                self.net.forward()
                out.append(self.net.blobs[self.output].data.reshape(len(batch), -1).copy())
                bar.update(len(batch))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def probabilities(self, paths: Sequence[str], progress: bool = False) -> np.ndarray:
        """(N, C) float32: the net's ``prob`` for each image, in order; ``progress`` shows a
        progress bar on stderr."""
        batches = preprocess_batches(paths, self.transform, self.batch_size)
        return self._run(batches, len(paths), progress)

    def list_probabilities(
        self, source: str | Path, classes: int, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """(probabilities (N, C), relevance (N, classes) bool) for a list file's images."""
        relevant: list[np.ndarray] = []

        def images() -> Iterator[np.ndarray]:
            for data, rows in list_batches(source, self.transform, classes, self.batch_size):
                relevant.append(rows)
                yield data

        probs = self._run(images(), _scan(source)[0], progress)
        return probs, np.concatenate(relevant) if relevant else np.zeros((0, classes), bool)
