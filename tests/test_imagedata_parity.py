"""The data layer's pixels against Caffe's own ``ImageData`` layer, on the same files and keys.

Only a Caffe built with OpenCV has ``ImageData``: Debian 11's packaged Caffe (CI's Debian 11
stage sets REQUIRE_IMAGEDATA=1, so there this fails instead of skipping); this project's own
build has no OpenCV (USE_OPENCV=OFF) and skips. The files: JPEGs of three qualities and three
chroma subsamplings, an EXIF-rotated JPEG, PNG colour and gray, an exact 2x shrink, images
smaller than the target; the keys: new_height/new_width set and unset, is_color true and
false, crop_size in TEST. Equal means bit-equal data tops.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

cv2 = pytest.importorskip("cv2")

FILES = {  # name: (height, width, Pillow save options)
    "q50_420.jpg": (240, 320, dict(quality=50, subsampling=2)),
    "q75_422.jpg": (240, 320, dict(quality=75, subsampling=1)),
    "q95_444.jpg": (240, 320, dict(quality=95, subsampling=0)),
    "large.jpg": (1200, 1600, dict(quality=90)),
    "odd.jpg": (61, 97, dict(quality=85)),
    "small.jpg": (20, 27, dict(quality=90)),
    "exif6.jpg": (240, 320, dict(quality=90, orientation=6)),
    "color.png": (96, 128, {}),
    "gray.png": (96, 128, dict(gray=True)),
    "small.png": (15, 22, {}),
}
CONFIGS = {  # name: (new_height, new_width, is_color, crop_size)
    "as-is": (0, 0, True, 0),
    "as-is-gray": (0, 0, False, 0),
    "resize": (64, 48, True, 0),
    "resize-gray": (64, 48, False, 0),
    "shrink-2x": (48, 64, True, 0),  # exactly half of 96x128: OpenCV's area path in LINEAR
    "grow": (120, 90, True, 0),
    "resize-crop": (72, 80, True, 56),
    "crop-gray": (0, 0, False, 12),
}


@pytest.fixture(scope="module")
def caffe_with_imagedata():
    try:
        import caffe
    except ImportError:
        caffe = None
    if caffe is None or "ImageData" not in caffe.layer_type_list():
        message = "this Caffe has no ImageData layer (built without OpenCV)"
        if os.environ.get("REQUIRE_IMAGEDATA") == "1":
            pytest.fail(f"REQUIRE_IMAGEDATA=1: {message}", pytrace=False)
        pytest.skip(message)
    caffe.set_mode_cpu()
    return caffe


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("parity")
    rng = np.random.default_rng(26)
    for name, (height, width, options) in FILES.items():
        options = dict(options)
        coarse = rng.integers(0, 256, (height // 6 + 2, width // 6 + 2, 3), dtype=np.uint8)
        photo = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
        noise = rng.integers(-12, 13, (height, width, 3))
        photo = Image.fromarray(np.clip(np.asarray(photo) + noise, 0, 255).astype(np.uint8))
        if options.pop("gray", False):
            photo = photo.convert("L")
        if "orientation" in options:
            exif = Image.Exif()
            exif[0x0112] = options.pop("orientation")
            options["exif"] = exif
        photo.save(folder / name, **options)
    return folder


def _pair(caffe, folder, name, config, tmp_path):
    new_height, new_width, is_color, crop = config
    listing = tmp_path / f"{name}.txt"
    listing.write_text(f"{name} 0\n")
    ours = {"source": str(listing), "root_folder": f"{folder}/", "classes": 1,
            "batch_size": 1, "new_height": new_height, "new_width": new_width,
            "is_color": is_color, "crop_size": crop}  # fmt: skip
    n = caffe.NetSpec()
    n.caffe_data, n.caffe_label = caffe.layers.ImageData(
        image_data_param=dict(source=str(listing), root_folder=f"{folder}/", batch_size=1,
                              new_height=new_height, new_width=new_width, is_color=is_color),
        transform_param=dict(crop_size=crop), ntop=2,
    )  # fmt: skip
    n.data, n.labels = caffe.layers.Python(
        python_param=dict(module="python_layers.multilabel_data",
                          layer="MultiLabelImageDataLayer", param_str=json.dumps(ours)),
        ntop=2,
    )  # fmt: skip
    path = tmp_path / f"{name}.prototxt"
    path.write_text(str(n.to_proto()))
    net = caffe.Net(str(path), caffe.TEST)
    net.forward()
    return net.blobs["caffe_data"].data.copy(), net.blobs["data"].data.copy()


@pytest.mark.caffe
@pytest.mark.parametrize("config", CONFIGS, ids=list(CONFIGS))
@pytest.mark.parametrize("name", FILES, ids=list(FILES))
def test_data_top_equals_imagedata(caffe_with_imagedata, images, name, config, tmp_path):
    keys = CONFIGS[config]
    height, width = FILES[name][:2]
    if keys[3] and not keys[0] and min(height, width) < keys[3]:
        pytest.skip("the image is smaller than the crop: both layers refuse it")
    theirs, ours = _pair(caffe_with_imagedata, images, name, keys, tmp_path)
    assert theirs.shape == ours.shape
    difference = np.abs(theirs - ours)
    assert difference.max() == 0, (
        f"{name} {config}: {np.count_nonzero(difference)} values differ, largest {difference.max()}"
    )
