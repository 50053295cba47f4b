"""The image-input spec (python_layers.data.input_spec): the data layer's image keys, read by
the layer's parser, give the transform and the input shape that the layer, deploy_net and
inference share; and the list path rule (data/list_file.line) that the lists command and
inference share."""

from __future__ import annotations

import json

import pytest

from python_layers.data import list_file, transforms
from python_layers.data.input_spec import IMAGE_KEYS, InputSpec, input_shape
from python_layers.params import MULTILABEL_DATA_KEYS

REQUIRED = {"source": "val.txt", "classes": 3, "batch_size": 2}


def spec(**keys) -> InputSpec:
    return InputSpec.parse(json.dumps({**REQUIRED, **keys}))


def never() -> tuple[int, int]:
    raise AssertionError("the first image was read though the keys fix the size")


def test_the_defaults_are_the_parsers():
    got = spec()
    assert got.transform == transforms.Transform()  # the layer's defaults are the transform's
    assert (got.batch_size, got.root_folder, got.mean_file) == (2, "", None)
    assert set(IMAGE_KEYS) <= set(MULTILABEL_DATA_KEYS)


@pytest.mark.parametrize(
    ("keys", "shape"),
    [
        ({"crop_size": 28, "new_height": 40, "new_width": 30}, [2, 3, 28, 28]),  # the crop
        ({"new_height": 40, "new_width": 30}, [2, 3, 40, 30]),  # else the resize
        ({"new_height": 40, "is_color": False, "crop_size": 5}, [2, 1, 5, 5]),
    ],
)
def test_the_crop_then_the_resize_fix_the_shape(keys, shape):
    assert spec(**keys).input_shape(never) == shape
    assert spec(**keys).input_shape(never, batch=1) == [1, *shape[1:]]


def test_else_the_first_image_decides():
    assert spec(new_height=40).input_shape(lambda: (7, 9)) == [2, 3, 7, 9]  # one side: no resize
    with pytest.raises(ValueError, match="the first image decides the size"):
        input_shape(spec().transform, None)


def test_one_mean_value_is_every_channels():
    assert spec(mean_value=[5]).transform.mean_value == (5.0, 5.0, 5.0)
    assert spec(mean_value=[5], is_color=False).transform.mean_value == (5.0,)
    assert spec(mean_value=[1, 2, 3]).transform.mean_value == (1.0, 2.0, 3.0)


def test_bad_means_are_named():
    with pytest.raises(ValueError, match=r"'mean_value' has 2 values; expected 1 or 3"):
        spec(mean_value=[1, 2])
    with pytest.raises(ValueError, match="give mean_value or mean_file, not both"):
        spec(mean_value=[1], mean_file="mean.binaryproto")
    with pytest.raises(ValueError, match="MultiLabelImageDataLayer: param_str key 'crop_size'"):
        spec(crop_size=-1)  # the layer's parser, its message


def test_a_mean_files_array_joins_the_transform():
    import numpy as np

    mean = np.zeros((3, 4, 4), np.float32)
    got = spec(mean_file="mean.binaryproto")
    assert got.transform.mean is None and got.transform_with(mean).mean is mean


def test_inference_checks_the_keys_as_the_layer_does():
    from python_layers.inference import transform_params

    with pytest.raises(ValueError, match=r"^transform: param_str key 'mean_value' has 2 values"):
        transform_params({"mean_value": [1, 2], "batch_size": 4})


@pytest.mark.parametrize("path", ["a b.png", "a\tb.png", "a#b.png", ""])
def test_a_path_a_list_cannot_hold_is_refused(path):
    with pytest.raises(ValueError, match="has whitespace or '#', or is empty"):
        list_file.line(path, ["1"])


def test_a_line_reads_back_as_written(tmp_path):
    (tmp_path / "l.txt").write_text(list_file.line("é/a.png", ["3", "1:0.5"]) + list_file.line("b"))
    ((block, _),) = list(list_file.blocks(tmp_path / "l.txt"))
    assert block.paths == "é/a.png".encode() + b"b" and block.counts.tolist() == [2, 0]
    assert block.labels.tolist() == [3, 1] and block.weights.tolist() == [1.0, 0.5]
