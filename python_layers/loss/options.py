"""The loss's options and its divisor Z: shared by the engines and the target gradient."""

from __future__ import annotations

from dataclasses import dataclass

from .layout import Layout

NORMALIZATIONS = ("full", "valid", "batch_size", "none")


@dataclass(frozen=True)
class Options:
    """The loss's parameters (see the README's table)."""

    normalization: str = "valid"
    normalize_targets: bool = True
    ignore_label: int | None = None
    label_smoothing: float = 0.0
    class_weights: tuple[float, ...] | None = None


DEFAULT_OPTIONS = Options()


def loss_divisor(normalization: str, layout: Layout, valid_count: float) -> float:
    """Z: all positions, the valid ones, the dims before the class axis, or 1; at least 1."""
    counts = {
        "full": layout.positions,
        "valid": valid_count,
        "batch_size": layout.outer,
        "none": 1,
    }
    return float(max(1.0, counts[normalization]))
