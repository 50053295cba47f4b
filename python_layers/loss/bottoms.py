"""The bottoms that go with a choice of target form: 2 (scores, targets), or 3 (scores, labels,
label_weights) where the form takes label weights, the third of the labels' shape.

One rule for the loss layer, the metrics layer,
:func:`~python_layers.softmax_math.softmax_cross_entropy` and the NetSpec helpers: which forms
take label weights is asked of the forms (``takes_label_weights``), and each caller only says
how its users write the choice (:class:`Spelling`), so that the message speaks their language.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from .bad_input import TargetError
from .forms import CHOICES, FORMS


class Spelling(NamedTuple):
    """How a caller's users write the targets' choice and name the label weights."""

    choice: str  # a format of the choice's name
    where: str  # where the choice is set, after the choice ("" when that says it)
    third: str  # the label weights, as the subject of "needs ..."
    weights: str  # the label weights, as the subject of "has shape ..."


PARAM_STR = Spelling(
    '"targets": "{}"',
    " in param_str",
    "a third bottom (label_weights)",
    "bottom[2] (label_weights)",
)
NETSPEC = Spelling('targets="{}"', "", "a label_weights bottom", "label_weights")
ARGUMENTS = Spelling('targets_form="{}"', "", "label_weights", "label_weights")

# the forms that take label weights, by the name that chooses each alone (for the message)
_WEIGHTED = tuple(name for name, form in FORMS.items() if form.takes_label_weights)


def takes_label_weights(choice: str) -> bool:
    """Whether targets read under ``choice`` (a key of :data:`.forms.CHOICES`) may come with
    label weights."""
    return any(form.takes_label_weights for form in CHOICES[choice])


def check_bottoms(
    choice: str, shapes: Sequence[tuple[int, ...] | None], spelling: Spelling = PARAM_STR
) -> None:
    """Raise :class:`TargetError` unless bottoms of these shapes (None where not known: the
    NetSpec helpers know only how many) fit ``choice``, a key of :data:`.forms.CHOICES`."""
    if len(shapes) not in (2, 3):
        raise TargetError(
            "needs 2 bottoms (scores, targets) or 3 (scores, labels, label_weights), "
            f"got {len(shapes)}"
        )
    if len(shapes) == 2:
        return
    if not takes_label_weights(choice):
        wanted = " or ".join(spelling.choice.format(name) for name in _WEIGHTED)
        raise TargetError(
            f"{spelling.third} needs {wanted}{spelling.where}; got {spelling.choice.format(choice)}"
        )
    labels, weights = shapes[1], shapes[2]
    if labels is not None and weights is not None and tuple(weights) != tuple(labels):
        raise TargetError(
            f"{spelling.weights} has shape {tuple(weights)}; expected the labels' shape "
            f"{tuple(labels)}"
        )
