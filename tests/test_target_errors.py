"""Bad target values at forward: the error is a TargetError (as docs/loss.md's table says),
and label lists that "auto" took for dense targets (K == C) are named as such."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from nets import input_layer, net, softmax_loss_layer

from python_layers.softmax_math import TargetError

LOSS_MD = Path(__file__).resolve().parents[1] / "docs" / "loss.md"


def forward(make_net, values, **params):
    n = make_net(
        net(
            input_layer(scores=(2, 3), targets=(2, 3)),
            softmax_loss_layer("scores", "targets", **params),
        )
    )
    n.blobs["targets"].data[...] = values
    return n.forward


def test_padded_label_lists_under_auto_name_the_labels_form(make_net):
    lists = [[0, 2, -1], [1, -1, -1]]  # two label lists of K = C = 3, padded with -1
    with pytest.raises(TargetError) as raised:
        forward(make_net, lists)()
    said = str(raised.value)
    assert "holds -1.0 at position (0, 2)" in said and "padding of label lists" in said
    assert 'set "targets": "labels" in param_str' in said
    forward(make_net, lists, targets="labels")()  # the form it names reads them


def test_a_negative_dense_target_other_than_padding_has_no_such_hint(make_net):
    with pytest.raises(TargetError) as raised:
        forward(make_net, [[0, 1, 0], [0.5, -0.25, 0]])()
    assert "label lists" not in str(raised.value)


def test_loss_md_names_the_forward_errors_as_raised(make_net):
    rows = [line for line in LOSS_MD.read_text().splitlines() if "| forward | `" in line]
    kinds = {re.search(r"\| forward \| `(\w+):", row).group(1) for row in rows}
    assert kinds == {"TargetError", "FloatingPointError"}
    with pytest.raises(ValueError) as raised:
        forward(make_net, [[0, 1, 0], [0.5, -0.25, 0]])()
    assert type(raised.value).__name__ == "TargetError"
