"""A gradient checker for Python layers inside a real ``caffe.Net``.

It follows Caffe's C++ ``GradientChecker``: central differences with step 1e-2, and an
element passes when ``|analytic - numeric| <= 1e-2 * max(|analytic|, |numeric|, 1)``.
The objective is ``top_diff * sum(top[0])`` with ``top_diff = 2``, so a layer that ignores
the loss weight it is handed in ``top[0].diff`` fails.

The layer's bottoms must be blobs nothing else writes during a forward of that one layer
(``Input`` layers are right), and the net needs ``force_backward: true`` so that Caffe asks
the layer for the bottoms' gradients::

    from python_layers.testing import check_gradients
    mismatches = check_gradients(net, "loss", bottoms=(0, 1))
    assert not mismatches, mismatches
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GradientMismatch:
    """One element whose analytic gradient disagrees with the numeric one."""

    blob: str
    index: tuple[int, ...]
    analytic: float
    numeric: float


def _layer_blobs(net, layer: str) -> tuple[int, list[str], list[str]]:
    names = list(net._layer_names)
    if layer not in names:
        raise ValueError(f"no layer {layer!r} in the net; it has {names}")
    index = names.index(layer)
    bottoms = [net._blob_names[i] for i in net._bottom_ids(index)]
    tops = [net._blob_names[i] for i in net._top_ids(index)]
    return index, bottoms, tops


def _objective(net, index: int, top: str, top_diff: float) -> float:
    net._forward(index, index)
    return top_diff * float(net.blobs[top].data.sum(dtype=np.float64))


def check_gradients(
    net,
    layer: str,
    bottoms: tuple[int, ...] = (0,),
    *,
    stepsize: float = 1e-2,
    threshold: float = 1e-2,
    top_diff: float = 2.0,
    max_elements: int | None = None,
    seed: int = 0,
) -> list[GradientMismatch]:
    """Check d(top_diff * sum(top[0])) / d bottom for the chosen bottoms of ``layer``.

    ``max_elements`` checks a random sample of each bottom's elements instead of all of them.
    Returns the mismatches (empty when every checked element passes).
    """
    index, bottom_names, top_names = _layer_blobs(net, layer)
    # 1. Analytic gradients: forward, then backward with top[0].diff = top_diff, others 0.
    net._forward(index, index)
    saved_diffs = [net.blobs[name].diff.copy() for name in top_names]
    for position, name in enumerate(top_names):
        net.blobs[name].diff[...] = top_diff if position == 0 else 0.0
    for name in bottom_names:
        net.blobs[name].diff[...] = 0.0
    net._backward(index, index)
    analytic = {bottom_names[b]: net.blobs[bottom_names[b]].diff.copy() for b in bottoms}
    # 2. Numeric gradients by central differences, element by element.
    rng = np.random.default_rng(seed)
    mismatches = []
    for name, grads in analytic.items():
        data = net.blobs[name].data
        elements = np.arange(data.size)
        if max_elements is not None and data.size > max_elements:
            elements = rng.choice(data.size, size=max_elements, replace=False)
        for flat in elements:
            original = float(data.flat[flat])
            data.flat[flat] = original + stepsize
            plus = _objective(net, index, top_names[0], top_diff)
            data.flat[flat] = original - stepsize
            minus = _objective(net, index, top_names[0], top_diff)
            data.flat[flat] = original
            numeric = (plus - minus) / (2.0 * stepsize)
            exact = float(grads.flat[flat])
            scale = max(abs(exact), abs(numeric), 1.0)
            if abs(exact - numeric) > threshold * scale:
                position = tuple(int(i) for i in np.unravel_index(flat, data.shape))
                mismatches.append(GradientMismatch(name, position, exact, numeric))
    # 3. Leave the net as it was: forward state and the tops' diffs (the loss weights).
    net._forward(index, index)
    for name, diff in zip(top_names, saved_diffs):
        net.blobs[name].diff[...] = diff
    return mismatches
