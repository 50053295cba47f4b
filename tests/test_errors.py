"""Bad inputs and their errors through real caffe.Nets (docs/loss.md's "Failure modes"): a row
each (what is wrong, param_str, blob shapes and values, exception, message). Shape and
param_str errors come when the net is built; value errors at forward, with nothing written.
"""

from __future__ import annotations

import numpy as np
import pytest
from nets import input_layer, net, softmax_loss_layer

from python_layers.labels import PADDING

pytestmark = pytest.mark.caffe

P = "SoftmaxLossLayer: "
# (id, param_str, scores shape, targets shape, targets value or None, exception, message regex)
AT_SETUP = [
    (
        "not-json",
        "{normalization: valid}",
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str .* is neither a JSON object nor a Python dict literal",
    ),
    (
        "not-an-object",
        "[1, 2]",
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str must be a JSON object \({...}\), got a list",
    ),
    (
        "unknown-key",
        '{"normalisation": "valid"}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"unknown param_str key\(s\) 'normalisation'; valid keys are 'axis', 'normalization'",
    ),
    (
        "bad-normalization",
        '{"normalization": "mean"}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'normalization' got 'mean'; expected one of 'full', 'valid', "
        r"'batch_size', 'none'",
    ),
    (
        "axis-not-int",
        '{"axis": 1.5}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'axis' got 1\.5; expected an integer",
    ),
    (
        "axis-bool",
        '{"axis": true}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'axis' got True",
    ),
    (
        "axis-out-of-range",
        '{"axis": 2}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"axis 2 is out of range for scores with 2 dims",
    ),
    (
        "normalize-not-bool",
        '{"normalize_targets": "yes"}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'normalize_targets' got 'yes'; expected true or false",
    ),
    (
        "smoothing-one",
        '{"label_smoothing": 1}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'label_smoothing' got 1; expected a number in \[0, 1\)",
    ),
    (
        "smoothing-nan",
        '{"label_smoothing": NaN}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'label_smoothing' got nan",
    ),
    (
        "ignore-not-int",
        '{"ignore_label": "255"}',
        (2, 3),
        (2,),
        ValueError,
        P + r"param_str key 'ignore_label' got '255'; expected an integer or null",
    ),
    (
        "ignore-with-dense",
        '{"ignore_label": 255}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'ignore_label' applies to index targets only",
    ),
    (
        "weights-negative",
        '{"class_weights": [1, -1, 1]}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'class_weights' got \[1, -1, 1\]; expected .*>= 0.*\(found -1\)",
    ),
    (
        "weights-count",
        '{"class_weights": [1, 1]}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'class_weights' has 2 entries; expected one per class, 3",
    ),
    (
        "target-shape",
        "",
        (2, 3),
        (2, 4),
        ValueError,
        P + r"bottom\[1\] \(targets\) has shape \(2, 4\).*scores of shape \(2, 3\).*dense.*index",
    ),
    (
        "python-literal-ok-but-code",
        "__import__('os').system('touch pwned')",
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str .* is neither a JSON object nor a Python dict literal",
    ),
    (
        "class-axis-of-size-1",
        "{}",
        (4, 1),
        (4, 1),
        ValueError,
        P + r"bottom\[0\] \(scores\) has shape \(4, 1\), a class axis \(1\) of size 1: softmax "
        r"over one class is always 1.*use Caffe's SigmoidCrossEntropyLoss",
    ),
    (
        "labels-with-ignore-label",
        '{"targets": "labels", "ignore_label": -1}',
        (2, 3),
        (2, 2),
        ValueError,
        P + r"param_str key 'ignore_label' applies to index targets only; label lists mark",
    ),
    (
        "labels-with-an-inner-dimension",
        '{"targets": "labels"}',
        (2, 3, 4, 4),
        (2, 2),
        ValueError,
        P + r"label lists \(\"targets\": \"labels\"\) need scores without dims after the "
        r"class axis, \(N, C\) or \(N, C, 1, 1\); got scores of shape \(2, 3, 4, 4\)",
    ),
    (
        "labels-of-the-wrong-shape",
        '{"targets": "labels"}',
        (2, 3),
        (3, 2),
        ValueError,
        P + r"bottom\[1\] \(labels\) has shape \(3, 2\); label lists for scores of shape "
        r"\(2, 3\) must be \(2, 'K'\)",
    ),
    (
        "dense-said-but-index-given",
        '{"targets": "dense"}',
        (2, 3),
        (2,),
        ValueError,
        P + r"bottom\[1\] \(targets\) has shape \(2,\), which does not fit scores of shape "
        r"\(2, 3\) \(class axis 1\); accepted: dense targets",
    ),
    (
        "bad-targets-form",
        '{"targets": "sparse"}',
        (2, 3),
        (2, 3),
        ValueError,
        P + r"param_str key 'targets' got 'sparse'; expected one of 'auto', 'dense', 'index', "
        r"'labels'",
    ),
]


@pytest.mark.parametrize(
    "param_str,scores,targets,error,message",
    [row[1:] for row in AT_SETUP],
    ids=[row[0] for row in AT_SETUP],
)
def test_bad_setup_raises_when_the_net_is_built(
    make_net, tmp_path, monkeypatch, param_str, scores, targets, error, message
):
    monkeypatch.chdir(tmp_path)
    prototxt = net(
        input_layer(scores=scores, targets=targets),
        softmax_loss_layer("scores", "targets", param_str=param_str),
    )
    with pytest.raises(error, match=message):
        make_net(prototxt)
    assert not (tmp_path / "pwned").exists()  # param_str is never executed


# (id, scores shape, targets shape, targets, message regex) -- all ValueError at forward
AT_FORWARD = [
    (
        "negative-target",
        (2, 3),
        (2, 3),
        [[0, 1, 0], [0.5, -0.25, 0]],
        P + r"bottom\[1\] \(targets\) holds -0\.25 at position \(1, 1\); dense targets must be "
        r"finite and >= 0",
    ),
    (
        "nan-target",
        (2, 3),
        (2, 3),
        [[0, np.nan, 0], [1, 0, 0]],
        P + r"bottom\[1\] \(targets\) holds nan at position \(0, 1\)",
    ),
    (
        "label-too-big",
        (2, 3),
        (2,),
        [0, 3],
        P + r"bottom\[1\] \(targets\) holds label 3\.0 at position \(1,\); index "
        r"targets must be an integer in \[0, 3\)",
    ),
    (
        "label-fraction",
        (2, 3),
        (2,),
        [0.5, 1],
        P + r"bottom\[1\] \(targets\) holds label 0\.5 at position \(0,\)",
    ),
    (
        "label-negative",
        (2, 3),
        (2,),
        [0, -1],
        P + r"bottom\[1\] \(targets\) holds label -1\.0 at position \(1,\)",
    ),
    (
        "label-list-out-of-range",
        (2, 3),
        (2, 2),
        [[0, PADDING], [2, 3]],
        P + r"bottom\[1\] \(labels\) holds 3\.0 at position \(1, 1\); a label list holds "
        r"integers in \[0, 3\), padded with -1",
    ),
    (
        "label-list-fraction",
        (2, 3),
        (2, 2),
        [[0, 0.5], [2, PADDING]],
        P + r"bottom\[1\] \(labels\) holds 0\.5 at position \(0, 1\)",
    ),
]


@pytest.mark.parametrize(
    "scores,targets_shape,targets,message",
    [row[1:] for row in AT_FORWARD],
    ids=[row[0] for row in AT_FORWARD],
)
def test_bad_values_raise_at_forward_and_write_nothing(
    make_net, scores, targets_shape, targets, message
):
    form = {"targets": "labels"} if r"\(labels\)" in message else {}
    n = make_net(
        net(
            input_layer(scores=scores, targets=targets_shape),
            softmax_loss_layer("scores", "targets", tops=("loss", "prob"), **form),
        )
    )
    n.blobs["loss"].data[...] = 123.0
    n.blobs["prob"].data[...] = 0.5
    n.blobs["targets"].data[...] = targets
    with pytest.raises(ValueError, match=message):
        n.forward()
    assert float(n.blobs["loss"].data) == 123.0
    assert (n.blobs["prob"].data == 0.5).all()
