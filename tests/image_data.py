"""Image files, list files and data-layer nets shared by the MultiLabelImageDataLayer tests
(test_multilabel_data.py, test_data_layer_training.py, test_data_layer_sources.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

MESSAGE_PREFIX = "MultiLabelImageDataLayer: "  # how the layer's errors begin


def write_images(
    directory: Path,
    count: int = 10,
    size: tuple[int, int] = (6, 5),
    classes: int = 4,
    weighted: bool = False,
    rng_seed: int = 0,
) -> tuple[Path, list[np.ndarray]]:
    """``count`` RGB PNGs whose pixel (0, 0) red value is the image's index (to identify
    it), random elsewhere; a list file with 1..3 labels each. Returns (list path, pixels)."""
    rng = np.random.default_rng(rng_seed)
    (directory / "img").mkdir(exist_ok=True)
    lines, pixels = [], []
    for index in range(count):
        rgb = rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)
        rgb[0, 0, 0] = index
        Image.fromarray(rgb).save(directory / "img" / f"{index}.png")
        pixels.append(rgb)
        labels = rng.choice(classes, size=rng.integers(1, 4), replace=False)
        tokens = [f"{c}:{rng.uniform(0.5, 2):.3f}" if weighted else str(c) for c in labels]
        lines.append(f"img/{index}.png " + " ".join(tokens))
    listing = directory / "list.txt"
    listing.write_text("# test images\n" + "\n".join(lines) + "\n")
    return listing, pixels


def data_net(
    directory: Path, tops=("data", "labels"), *, frozen_state: bool = True, **params
) -> str:
    """The data layer's prototxt (NetSpec), images read under ``directory``; ``params`` go to
    its param_str unchecked (the layer's own errors are under test). ``frozen_state=False``
    leaves out the state blob's ``param { lr_mult: 0 decay_mult: 0 }``, so a solver trains it."""
    import caffe

    params.setdefault("root_folder", str(directory) + "/")
    state = {"param": [{"lr_mult": 0, "decay_mult": 0}]} if frozen_state else {}
    layer = caffe.layers.Python(
        name="image_data",
        python_param={
            "module": "python_layers.multilabel_data",
            "layer": "MultiLabelImageDataLayer",
            "param_str": json.dumps(params),
        },
        ntop=len(tops),
        **state,
    )
    n = caffe.NetSpec()
    for name, top in zip(tops, layer if len(tops) > 1 else [layer]):
        n[name] = top
    return str(n.to_proto())


def build(make_net, caffe, directory: Path, phase="TRAIN", tops=("data", "labels"), **params):
    """A caffe.Net of the data layer alone, in ``phase``."""
    return make_net(data_net(directory, tops, **params), getattr(caffe, phase))
