"""How many bytes a GPU training iteration copies from the GPU to the host, per engine.

Run under LD_PRELOAD=count_copies.so (scripts/gpu/check.sh does): a GPU net with (256, 17000)
scores from an InnerProduct layer (so the scores are made on the GPU) and our loss, trained
for some iterations with the GPU engine and then with ``"engine": "cpu"``. The GPU engine
should copy only a few bytes per iteration (the loss and its status); the CPU engine copies
the scores (17 MB) every iteration.
"""

from __future__ import annotations

import ctypes
import json
import os
import tempfile

import caffe
import numpy as np

ROWS, FEATURES, CLASSES, ITERATIONS = 256, 64, 17000, 20


def net_text(engine: str) -> str:
    return f"""
force_backward: false
layer {{ name: "input" type: "Input" top: "x" top: "labels"
  input_param {{ shape {{ dim: {ROWS} dim: {FEATURES} }} shape {{ dim: {ROWS} }} }} }}
layer {{ name: "fc" type: "InnerProduct" bottom: "x" top: "scores"
  inner_product_param {{ num_output: {CLASSES} weight_filler {{ type: "gaussian" std: 0.01 }} }} }}
layer {{ name: "loss" type: "Python" bottom: "scores" bottom: "labels" top: "loss"
  python_param {{ module: "python_layers.softmax_loss" layer: "SoftmaxLossLayer"
                  param_str: '{{"engine": "{engine}"}}' }}
  loss_weight: 1 propagate_down: true propagate_down: false }}
"""


def copies_per_iteration(engine: str) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(net_text(engine))
    net = caffe.Net(f.name, caffe.TRAIN)
    os.unlink(f.name)
    rng = np.random.default_rng(0)
    net.blobs["x"].data[...] = rng.standard_normal((ROWS, FEATURES))
    net.blobs["labels"].data[...] = rng.integers(0, CLASSES, ROWS)
    take = ctypes.CDLL(None).count_copies_take  # from the LD_PRELOAD shim
    counts = (ctypes.c_ulonglong * 3)()
    net.forward()
    net.backward()  # warm-up: inputs uploaded, buffers made, kernels compiled
    take(counts)
    for _ in range(ITERATIONS):
        net.forward()
        net.backward()
    take(counts)
    return {
        "engine": engine,
        "copies_per_iteration": counts[0] / ITERATIONS,
        "bytes_per_iteration": counts[1] / ITERATIONS,
        "largest_copy_bytes": counts[2],
        "scores_bytes": ROWS * CLASSES * 4,
    }


def main() -> None:
    caffe.set_mode_gpu()
    for engine in ("auto", "cpu"):
        print(json.dumps(copies_per_iteration(engine)), flush=True)


if __name__ == "__main__":
    main()
