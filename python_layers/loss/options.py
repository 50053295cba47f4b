"""The loss's options: each default and allowed value defined here once (``param_str`` keys
are built from these fields, see :mod:`python_layers.params`)."""

from __future__ import annotations

from dataclasses import dataclass

from .normalize import NORMALIZATIONS  # with the rule each one gives

ENGINES = ("auto", "cpu", "gpu")  # the first is the default (NORMALIZATIONS' is "valid")


@dataclass(frozen=True)
class Options:
    """The loss's parameters (see the README's table)."""

    normalization: str = NORMALIZATIONS[1]
    normalize_targets: bool = True
    ignore_label: int | None = None
    label_smoothing: float = 0.0
    class_weights: tuple[float, ...] | None = None


DEFAULT_OPTIONS = Options()
