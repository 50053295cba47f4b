"""Bad-input messages: each names the blob, the position and the value, and what was expected.

The engines check their inputs in their own fast passes and, on failure, call these to find
the first bad value and word the error; nothing is written before they raise.
"""

from __future__ import annotations

import numpy as np

from ..labels import PADDING


class BadScoresError(Exception):
    """Internal: a kernel found non-finite scores; the engine words the error."""


class BadTargetsError(Exception):
    """Internal: bad target values found; the engine asks the form to word the error."""


class TargetError(ValueError):
    """Targets with a bad shape or bad values (names the blob, the position and the value)."""


def _unravel(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


def first_bad_dense(targets: np.ndarray) -> TargetError:
    bad = np.flatnonzero(~(np.isfinite(targets) & (targets >= 0)))[0]
    hint = ""
    if targets.flat[bad] == PADDING:
        # label lists with K == C columns have the dense targets' shape, and "auto" reads
        # that shape as dense targets
        hint = (
            f"; {PADDING} looks like the padding of label lists (K labels a row, padded with "
            f'{PADDING}): set "targets": "labels" in param_str to read them so'
        )
    return TargetError(
        f"bottom[1] (targets) holds {float(targets.flat[bad])} at position "
        f"{_unravel(bad, targets.shape)}; dense targets must be finite and >= 0{hint}"
    )


def check_index_targets(labels: np.ndarray, classes: int, ignore_label: int | None) -> None:
    """Raise :class:`TargetError` unless every label is an integer in [0, C) or ignore_label."""
    good = (labels >= 0) & (labels < classes) & (labels == np.floor(labels))
    if ignore_label is not None:
        good |= labels == ignore_label
    if good.all():
        return
    bad = np.flatnonzero(~good)[0]
    allowed = f"an integer in [0, {classes})"
    if ignore_label is not None:
        allowed += f" or ignore_label {ignore_label}"
    raise TargetError(
        f"bottom[1] (targets) holds label {float(labels.flat[bad])} at position "
        f"{_unravel(bad, labels.shape)}; index targets must be {allowed}"
    )


def check_label_lists(labels: np.ndarray, weights: np.ndarray | None, classes: int) -> None:
    """Raise :class:`TargetError` unless labels are integers in [0, C) or -1 and weights >= 0."""
    good = ((labels >= 0) & (labels < classes) | (labels == PADDING)) & (labels == np.floor(labels))
    if not good.all():
        bad = np.flatnonzero(~good)[0]
        raise TargetError(
            f"bottom[1] (labels) holds {float(labels.flat[bad])} at position "
            f"{_unravel(bad, labels.shape)}; a label list holds integers in [0, {classes}), "
            f"padded with {PADDING}"
        )
    if weights is None:
        return
    good = np.isfinite(weights) & (weights >= 0)
    if not good.all():
        bad = np.flatnonzero(~good)[0]
        raise TargetError(
            f"bottom[2] (label_weights) holds {float(weights.flat[bad])} at position "
            f"{_unravel(bad, weights.shape)}; label weights must be finite and >= 0"
        )


def non_finite_scores_message(scores: np.ndarray) -> str:
    bad = np.flatnonzero(~np.isfinite(scores))
    return (
        f"bottom[0] (scores) holds {bad.size} non-finite value(s), the first "
        f"{float(scores.flat[bad[0]])} at {_unravel(bad[0], scores.shape)}"
    )
