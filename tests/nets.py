"""Prototxt builders for the tests: Input layers feeding the layers under test."""

from __future__ import annotations

import json


def input_layer(**blobs: tuple[int, ...]) -> str:
    tops = "".join(f'  top: "{name}"\n' for name in blobs)
    shapes = "".join(
        "    shape { " + " ".join(f"dim: {d}" for d in shape) + " }\n" for shape in blobs.values()
    )
    return f'layer {{\n  name: "input"  type: "Input"\n{tops}  input_param {{\n{shapes}  }}\n}}\n'


def softmax_loss_layer(
    scores: str, targets: str, tops=("loss",), loss_weight=1.0, name="loss", **params
) -> str:
    top_lines = "".join(f'  top: "{t}"\n' for t in tops)
    weights = "".join(f"  loss_weight: {w}\n" for w in [loss_weight] + [0] * (len(tops) - 1))
    return (
        f'layer {{\n  name: "{name}"  type: "Python"\n  bottom: "{scores}"  bottom: "{targets}"\n'
        f'{top_lines}  python_param {{\n    module: "python_layers.softmax_loss"\n'
        f'    layer: "SoftmaxLossLayer"\n    param_str: {json.dumps(json.dumps(params))}\n  }}\n'
        f"{weights}}}\n"
    )


def native_softmax_loss_layer(
    scores: str,
    labels: str,
    *,
    normalization="valid",
    ignore_label=None,
    axis=1,
    loss_weight=1.0,
    name="native",
) -> str:
    loss_param = f"normalization: {normalization.upper()}"
    if ignore_label is not None:
        loss_param += f" ignore_label: {ignore_label}"
    return (
        f'layer {{\n  name: "{name}"  type: "SoftmaxWithLoss"\n  bottom: "{scores}"  '
        f'bottom: "{labels}"\n  top: "{name}_loss"\n  loss_param {{ {loss_param} }}\n'
        f"  softmax_param {{ axis: {axis} }}\n  loss_weight: {loss_weight}\n}}\n"
    )


def net(*layers: str, force_backward: bool = True) -> str:
    head = "force_backward: true\n" if force_backward else ""
    return head + "".join(layers)
