"""The one rule for the bottoms (python_layers/loss/bottoms.py), spelled for each caller: the
layers' param_str, the NetSpec helpers, softmax_cross_entropy's arguments (no Caffe needed;
the layers' wording through real nets: test_errors_bottoms.py, test_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest

from python_layers import softmax_math as sm
from python_layers.loss.bottoms import ARGUMENTS, NETSPEC, check_bottoms, takes_label_weights
from python_layers.loss.forms import CHOICES, LABEL_LISTS, TARGET_FORMS


@pytest.mark.parametrize("choice", TARGET_FORMS)
def test_label_weights_go_with_the_forms_that_take_them(choice):
    assert takes_label_weights(choice) == (LABEL_LISTS in CHOICES[choice])


@pytest.mark.parametrize("count", [0, 1, 4])
def test_a_wrong_number_of_bottoms_names_what_is_expected_and_what_came(count):
    with pytest.raises(
        sm.TargetError,
        match=r"needs 2 bottoms \(scores, targets\) or 3 \(scores, labels, label_weights\), "
        rf"got {count}$",
    ):
        check_bottoms("labels", [(2, 3)] * count)


@pytest.mark.parametrize(
    "spelling,message",
    [
        (None, r'a third bottom \(label_weights\) needs "targets": "labels" in param_str; '),
        (NETSPEC, r'a label_weights bottom needs targets="labels"; '),
        (ARGUMENTS, r'label_weights needs targets_form="labels"; '),
    ],
)
@pytest.mark.parametrize("choice", ["auto", "dense", "index"])
def test_a_third_bottom_needs_label_lists_in_the_callers_words(spelling, message, choice):
    got = {None: f'got "targets": "{choice}"', NETSPEC: f'got targets="{choice}"'}
    got = got.get(spelling, f'got targets_form="{choice}"')
    with pytest.raises(sm.TargetError, match=message + got + "$"):
        check_bottoms(choice, [None] * 3, *([] if spelling is None else [spelling]))


def test_label_weights_of_another_shape_name_both_shapes():
    with pytest.raises(
        sm.TargetError,
        match=r"bottom\[2\] \(label_weights\) has shape \(2, 3\); expected the labels' shape "
        r"\(2, 2\)",
    ):
        check_bottoms("labels", [(2, 3), (2, 2), (2, 3)])
    check_bottoms("labels", [(2, 3), (2, 2), (2, 2)])
    check_bottoms("labels", [None, None, None])  # NetSpec: the shapes are not known yet


def test_softmax_cross_entropy_takes_the_same_rule():
    scores = np.zeros((2, 3), np.float32)
    with pytest.raises(sm.TargetError, match=r'label_weights needs targets_form="labels"; got'):
        sm.softmax_cross_entropy(scores, np.eye(3, dtype=np.float32)[:2], np.ones((2, 3)))
    with pytest.raises(
        sm.TargetError,
        match=r"label_weights has shape \(2, 3\); expected the labels' shape \(2, 2\)",
    ):
        sm.softmax_cross_entropy(
            scores, np.zeros((2, 2), np.float32), np.ones((2, 3)), targets_form="labels"
        )
