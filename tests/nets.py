"""Prototxt builders for the tests: Input layers feeding the layers under test."""

from __future__ import annotations

import json
import os
import subprocess

import h5py
import numpy as np


def input_layer(**blobs: tuple[int, ...]) -> str:
    tops = "".join(f'  top: "{name}"\n' for name in blobs)
    shapes = "".join(
        "    shape { " + " ".join(f"dim: {d}" for d in shape) + " }\n" for shape in blobs.values()
    )
    return f'layer {{\n  name: "input"  type: "Input"\n{tops}  input_param {{\n{shapes}  }}\n}}\n'


def softmax_loss_layer(
    scores_blob: str,
    targets_blob: str | None,
    tops=("loss",),
    loss_weight=1.0,
    name="loss",
    extra_bottoms=(),
    propagate_down=(),
    param_str: str | None = None,
    **params,
) -> str:
    """Our loss layer's stanza; ``param_str`` (raw text) instead of ``params`` (as JSON)."""
    top_lines = "".join(f'  top: "{t}"\n' for t in tops)
    weights = "".join(f"  loss_weight: {w}\n" for w in [loss_weight] + [0] * (len(tops) - 1))
    bottoms = [scores_blob, *([targets_blob] if targets_blob else []), *extra_bottoms]
    bottom_lines = "".join(f'  bottom: "{b}"\n' for b in bottoms)
    down = "".join(f"  propagate_down: {str(p).lower()}\n" for p in propagate_down)
    text = json.dumps(params) if param_str is None else param_str
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return (
        f'layer {{\n  name: "{name}"  type: "Python"\n{bottom_lines}'
        f'{top_lines}  python_param {{\n    module: "python_layers.softmax_loss"\n'
        f'    layer: "SoftmaxLossLayer"\n    param_str: {quoted}\n  }}\n'
        f"{weights}{down}}}\n"
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


def write_tiny_problem(directory, rows=64, seed=0, label_width=3):
    """A linearly separable 3-class problem with dense (scaled one-hot) targets, as HDF5."""
    rng = np.random.default_rng(seed)
    data = rng.normal(0, 1, (rows, 4)).astype(np.float32)
    centers = rng.normal(0, 1, (3, 4)).astype(np.float32)
    logits = data @ centers.T
    targets = 2.0 * (logits == logits.max(axis=1, keepdims=True)).astype(np.float32)
    targets = np.pad(targets, ((0, 0), (0, max(0, label_width - 3))))[:, :label_width]
    with h5py.File(directory / "train.h5", "w") as f:
        f["data"], f["label"] = data, targets
    (directory / "train.txt").write_text(str(directory / "train.h5") + "\n")
    return directory / "train.txt"


def tiny_training_files(
    directory, param_str="{}", max_iter=200, base_lr=0.5, batch_size=16, snapshot=0, label_width=3
):
    """A solver + net (HDF5Data -> InnerProduct -> SoftmaxLossLayer) for `caffe train`."""
    listing = write_tiny_problem(directory, label_width=label_width)
    net_path = directory / "train.prototxt"
    net_path.write_text(
        f'layer {{ name: "data" type: "HDF5Data" top: "data" top: "label"\n'
        f'  hdf5_data_param {{ source: "{listing}" batch_size: {batch_size} }} }}\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "scores"\n'
        '  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.01 } } }\n'
        + softmax_loss_layer("scores", "label", param_str=param_str)
    )
    solver = directory / "solver.prototxt"
    solver.write_text(
        f'net: "{net_path}"\nbase_lr: {base_lr}\nlr_policy: "fixed"\nmax_iter: {max_iter}\n'
        f"display: 20\nsolver_mode: CPU\nrandom_seed: 1\nmomentum: 0.9\n"
        f'snapshot: {snapshot}\nsnapshot_prefix: "{directory / "snap"}"\n'
        f"snapshot_after_train: {'true' if snapshot else 'false'}\n"
    )
    return solver


def run_caffe(caffe_tool, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the wrapper sets it
    env["GLOG_logtostderr"] = "1"
    env.pop("GLOG_minloglevel", None)
    return subprocess.run(
        [str(caffe_tool), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def assert_learns(result: dict) -> None:
    """A short example training: the loss fell by 10% (the mean of the last three logged
    batches, each a noisy one-batch loss: a run on Debian 11's Caffe ended its last at 0.82x)
    and test mAP beats chance by 0.15."""
    losses = [loss for _, loss in result["curves"]["train_loss"]]
    assert sum(losses[-3:]) / 3 < 0.9 * losses[0], losses
    assert result["test"]["map"] > result["test"]["chance_map"] + 0.15, result["test"]
