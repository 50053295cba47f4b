"""The tools read a data layer's param_str as the layer does: JSON or a Python dict literal
(a net that trains must deploy, evaluate and predict; json.loads alone refused the literal)."""

from __future__ import annotations

import json

import pytest

LITERAL = "{'source': 'val.txt', 'classes': 3, 'batch_size': 2, 'new_height': 8, 'new_width': 8}"
NET = f"""name: "literal"
layer {{
  name: "data" type: "Python" top: "data" top: "labels"
  python_param {{ module: "python_layers.multilabel_data" layer: "MultiLabelImageDataLayer"
    param_str: "{LITERAL}" }}
}}
"""


@pytest.mark.caffe
def test_deploy_reads_a_python_dict_literal(caffe, tmp_path):
    from python_layers.deploy_net import data_layer, data_params

    (tmp_path / "net.prototxt").write_text(NET)
    keys = data_params(data_layer(tmp_path / "net.prototxt"))
    assert keys["new_height"] == 8 and keys["classes"] == 3


def test_transform_params_reads_a_python_dict_literal():
    from python_layers.inference import transform_params

    assert transform_params(LITERAL) == {"new_height": 8, "new_width": 8}


def test_transform_params_names_bad_text():
    from python_layers.inference import transform_params

    with pytest.raises(ValueError, match="transform: param_str 'new_height=8' is neither"):
        transform_params("new_height=8")


@pytest.mark.caffe
@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"], ids=["plain", "bom"])
def test_deploy_reads_the_first_image_of_a_list_with_a_bom(caffe, tmp_path, bom):
    """Without a crop or resize, the first image's size is the input's: the list is read as
    the data layer reads it (a UTF-8 byte-order mark ignored; before, the first path kept it
    and deploy could not open the image)."""
    import numpy as np
    from PIL import Image

    from python_layers.deploy_net import data_layer, input_shape

    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "val.txt").write_bytes(bom + b"a.png 1\n")
    keys = {"source": str(tmp_path / "val.txt"), "root_folder": str(tmp_path), "classes": 3}
    keys.update(batch_size=2, is_color=False)
    (tmp_path / "net.prototxt").write_text(
        NET.replace(f'"{LITERAL}"', json.dumps(json.dumps(keys)))
    )
    assert input_shape(data_layer(tmp_path / "net.prototxt")) == [2, 1, 5, 7]
