"""The tools read a data layer's param_str as the layer does: JSON or a Python dict literal
(a net that trains must deploy, evaluate and predict; json.loads alone refused the literal)."""

from __future__ import annotations

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
