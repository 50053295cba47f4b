"""The loss's options: each default and allowed value defined here once (``param_str`` keys
are built from these fields, see :mod:`python_layers.params`)."""

from __future__ import annotations

from dataclasses import dataclass

NORMALIZATIONS = ("full", "valid", "batch_size", "none")
ENGINES = ("auto", "cpu", "gpu")  # the first of each tuple is the default


@dataclass(frozen=True)
class Options:
    """The loss's parameters (see the README's table)."""

    normalization: str = NORMALIZATIONS[1]
    normalize_targets: bool = True
    ignore_label: int | None = None
    label_smoothing: float = 0.0
    class_weights: tuple[float, ...] | None = None


DEFAULT_OPTIONS = Options()
