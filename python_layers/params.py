"""Parsing and validation of ``param_str`` for every layer in the package, in one place.

``param_str`` is a JSON object, or a Python dict literal read with :func:`ast.literal_eval`
(never ``eval``); an empty string means all defaults. Each layer declares its keys as a
table of :class:`Key` (a default and a check); anything wrong raises ``ValueError`` naming
the layer, the key, the value that came and what is allowed.
"""

from __future__ import annotations

import ast
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .data.sampler import SAMPLINGS
from .loss.forms import TARGET_FORMS
from .loss.options import DEFAULT_OPTIONS, ENGINES, NORMALIZATIONS

REQUIRED = object()  # a Key default: the key must be given
MAX_NESTING = 32  # lists/objects inside each other; param_str needs 2 (a list in the object)


@dataclass(frozen=True)
class Key:
    """One ``param_str`` key: its default and a check that returns the cleaned value."""

    default: Any
    check: Callable[[Any], Any]  # raises ValueError(what is allowed) on a bad value


def read_param_str(text: str, layer: str, example: str = '{"normalization": "valid"}') -> dict:
    """Turn ``param_str`` into a dict without running anything it contains; ``example`` is a
    valid param_str of the layer, shown when the text is not one."""
    if not text or not text.strip():
        return {}
    depth = nesting_depth(text)
    if depth > MAX_NESTING:  # parsers recurse per level: deep input can overflow the C stack
        raise ValueError(
            f"{layer}: param_str nests brackets {depth} deep; at most {MAX_NESTING} are allowed "
            "(param_str is a flat object, e.g. '{\"class_weights\": [1, 2]}')"
        )
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as json_error:
        try:
            value = ast.literal_eval(text.strip())
        except Exception:  # literal_eval raises many types on garbage; all mean "not a literal"
            shown = text if len(text) <= 80 else text[:77] + "..."
            raise ValueError(
                f"{layer}: param_str {shown!r} is neither a JSON object nor a Python dict "
                f"literal (as JSON: {json_error}); write e.g. '{example}'"
            ) from None
    if not isinstance(value, dict):
        raise ValueError(
            f"{layer}: param_str must be a JSON object ({{...}}), got a {type(value).__name__}"
        )
    return value


def nesting_depth(text: str) -> int:
    """How deep ``[``, ``{`` and ``(`` nest in ``text``, outside string literals (in single or
    double quotes, backslash escapes): one linear scan, no recursion."""
    depth = deepest = 0
    quote, escaped = "", False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char in "[{(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]})":
            depth -= 1
    return deepest


def parse_params(text: str, layer: str, keys: dict[str, Key], example: str) -> dict[str, Any]:
    """Read ``param_str`` and check every key against ``keys``; fill in the defaults."""
    given = read_param_str(text, layer, example)
    unknown = sorted(str(k) for k in given if k not in keys)
    if unknown:
        raise ValueError(
            f"{layer}: unknown param_str key(s) {', '.join(map(repr, unknown))}; "
            f"valid keys are {', '.join(map(repr, keys))}"
        )
    missing = [name for name, key in keys.items() if key.default is REQUIRED and name not in given]
    if missing:
        raise ValueError(
            f"{layer}: param_str lacks the required key(s) {', '.join(map(repr, missing))}"
        )
    params = {}
    for name, key in keys.items():
        if name not in given:
            params[name] = key.default
            continue
        try:
            params[name] = key.check(given[name])
        except ValueError as why:
            raise ValueError(
                f"{layer}: param_str key {name!r} got {_show(given[name])}; expected {why}"
            ) from None
    return params


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- Checks: each returns the cleaned value or raises ValueError(what is allowed) -------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def integer(value: Any) -> int:
    if not _is_int(value):
        raise ValueError("an integer")
    return int(value)


def positive_integer(value: Any) -> int:
    if not _is_int(value) or value < 1:
        raise ValueError("an integer >= 1")
    return int(value)


def optional_integer(value: Any) -> int | None:
    if value is not None and not _is_int(value):
        raise ValueError("an integer or null")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise ValueError("one of " + ", ".join(map(repr, choices)))
        return value

    return check


def fraction_below_one(value: Any) -> float:
    if not _is_number(value) or not 0.0 <= value < 1.0:
        raise ValueError("a number in [0, 1)")
    return float(value)


def non_negative_integer(value: Any) -> int:
    if not _is_int(value) or value < 0:
        raise ValueError("an integer >= 0")
    return int(value)


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a string")
    return value


def non_empty_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("a non-empty string (a path)")
    return value


def optional_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError("a string or null")
    return value


def positive_number(value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError("a finite number > 0")
    return float(value)


def numbers(value: Any) -> tuple[float, ...]:
    allowed = "a list of finite numbers"
    if not isinstance(value, (list, tuple)):
        raise ValueError(allowed)
    if not all(_is_number(v) and math.isfinite(v) for v in value):
        raise ValueError(allowed)
    return tuple(float(v) for v in value)


def optional_weights(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    allowed = "null or a non-empty list of finite numbers >= 0, one per class"
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(allowed)
    for weight in value:
        if not _is_number(weight) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"{allowed} (found {_show(weight)})")
    return tuple(float(w) for w in value)


# --- The keys of each layer --------------------------------------------------------------------

_O = DEFAULT_OPTIONS  # the loss's defaults, defined once on its options
SOFTMAX_LOSS_KEYS = {
    "axis": Key(1, integer),
    "normalization": Key(_O.normalization, one_of(*NORMALIZATIONS)),
    "normalize_targets": Key(_O.normalize_targets, boolean),
    "ignore_label": Key(_O.ignore_label, optional_integer),
    "label_smoothing": Key(_O.label_smoothing, fraction_below_one),
    "class_weights": Key(_O.class_weights, optional_weights),
    "targets": Key(TARGET_FORMS[0], one_of(*TARGET_FORMS)),
    "target_gradient": Key(True, boolean),
    "engine": Key(ENGINES[0], one_of(*ENGINES)),
    "allow_zero_loss_weight": Key(False, boolean),
}


def softmax_loss_params(text: str) -> dict[str, Any]:
    """The checked parameters of :class:`~python_layers.softmax_loss.SoftmaxLossLayer`."""
    return parse_params(text, "SoftmaxLossLayer", SOFTMAX_LOSS_KEYS, '{"normalization": "valid"}')


MULTILABEL_METRICS_KEYS = {
    "k": Key(3, positive_integer),
    "targets": Key(TARGET_FORMS[0], one_of(*TARGET_FORMS)),
}


def multilabel_metrics_params(text: str) -> dict[str, Any]:
    """The checked parameters of the MultiLabelMetricsLayer."""
    return parse_params(text, "MultiLabelMetricsLayer", MULTILABEL_METRICS_KEYS, '{"k": 5}')


# Key names follow Caffe's image_data_param and transform_param, so that an ImageData stanza
# moves over by renaming; the rest are this layer's own.
MULTILABEL_DATA_KEYS = {
    "source": Key(REQUIRED, non_empty_text),
    "root_folder": Key("", string),
    "classes": Key(REQUIRED, positive_integer),
    "batch_size": Key(REQUIRED, positive_integer),
    "targets": Key("labels", one_of("labels", "dense")),
    "max_labels": Key(8, positive_integer),
    "new_height": Key(0, non_negative_integer),
    "new_width": Key(0, non_negative_integer),
    "is_color": Key(True, boolean),
    "crop_size": Key(0, non_negative_integer),
    "mirror": Key(False, boolean),
    "mean_value": Key((), numbers),
    "mean_file": Key(None, optional_text),
    "scale": Key(1.0, positive_number),
    "shuffle": Key(False, boolean),
    "seed": Key(0, non_negative_integer),
    "sampling": Key(SAMPLINGS[0], one_of(*SAMPLINGS)),
    "workers": Key(2, positive_integer),
    "prefetch": Key(4, positive_integer),
    "on_bad_image": Key("error", one_of("error", "skip")),
    "fast_decode": Key(False, boolean),
    "lmdb": Key(None, optional_text),
}


def multilabel_data_params(text: str) -> dict[str, Any]:
    """The checked parameters of the MultiLabelImageDataLayer."""
    example = '{"source": "train.txt", "classes": 10, "batch_size": 64}'
    return parse_params(text, "MultiLabelImageDataLayer", MULTILABEL_DATA_KEYS, example)
