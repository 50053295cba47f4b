"""Our layers print their own error (message and where) on stderr before raising, so that a
`caffe` tool without this project's traceback patch (Debian's) still shows it."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.caffe


def test_a_layer_error_is_printed_with_its_place_before_it_is_raised(make_net, capfd):
    prototxt = (
        'layer { name: "in" type: "Input" top: "s" top: "t" '
        "input_param { shape { dim: 2 dim: 3 } shape { dim: 2 dim: 3 } } }\n"
        'layer { name: "loss" type: "Python" bottom: "s" bottom: "t" top: "loss" '
        'python_param { module: "python_layers.softmax_loss" layer: "SoftmaxLossLayer" '
        'param_str: \'{"normalisation": "full"}\' } loss_weight: 1 }\n'
    )
    with pytest.raises(Exception, match="normalisation"):
        make_net(prototxt)
    err = capfd.readouterr().err
    assert "SoftmaxLossLayer.setup: ValueError: SoftmaxLossLayer: unknown param_str key(s) " in err
    assert re.search(r"\n  at \S+python_layers/\S+\.py:\d+ in \w+", err), err


def test_reports_errors_wraps_only_what_the_class_defines():
    from python_layers.errors import reports_errors

    class Base:
        def forward(self, bottom, top):
            return "base"

    @reports_errors
    class Layer(Base):
        def setup(self, bottom, top):
            raise KeyError("x")

    assert "forward" not in Layer.__dict__ and Layer().forward(0, 0) == "base"
    with pytest.raises(KeyError):
        Layer().setup(0, 0)
