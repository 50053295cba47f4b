"""Write the example's prototxt files with caffe.net_spec and the package's NetSpec helpers.

    python -m examples.digits_multilabel.nets            # (re)write prototxt/digits_multilabel/
    python -m examples.digits_multilabel.nets --check    # exit 1 if the committed files differ

Two losses share one network: ``softmax`` (our SoftmaxLossLayer, 1/k targets) and ``sigmoid``
(Caffe's native SigmoidCrossEntropyLoss, the per-class baseline). The softmax loss reads the
targets dense (``label``, (N, 10)) or as label lists (``labels``, (N, 4), -1 padded, and
``label_weights`` for ink targets). Paths inside the files are relative to the repository
root, where `make train` runs Caffe.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import caffe
from caffe import layers as L
from caffe import params as P
from caffe.proto import caffe_pb2

from python_layers.deploy_net import deploy_net
from python_layers.netspec import multilabel_image_data, multilabel_metrics, softmax_loss

from .data import CANVAS, CLASSES, DEFAULT_DIR, MAX_DIGITS

PROTOTXT_DIR = Path("prototxt/digits_multilabel")
LOSSES = ("softmax", "sigmoid")
# How data and targets reach the net: HDF5 with dense targets, HDF5 with label lists, or PNG
# files through MultiLabelImageDataLayer (label lists).
FORMS = ("dense", "labels", "images")
TRAIN_BATCH, TEST_BATCH, TEST_SAMPLES = 64, 100, 1000
TOP_K = 3


def _conv(bottom, outputs: int, kernel: int):
    return L.Convolution(
        bottom,
        num_output=outputs,
        kernel_size=kernel,
        pad=kernel // 2,
        weight_filler=dict(type="msra"),
        bias_filler=dict(type="constant"),
    )


def body(n: caffe.NetSpec, data) -> None:
    """conv5x5(16) relu pool -> conv3x3(32) relu pool -> fc(128) relu -> fc(C) = scores."""
    n.conv1 = _conv(data, 16, 5)  # (N, 16, 32, 32)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)  # (N, 16, 16, 16)
    n.conv2 = _conv(n.pool1, 32, 3)  # (N, 32, 16, 16)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.pool2 = L.Pooling(n.relu2, pool=P.Pooling.MAX, kernel_size=2, stride=2)  # (N, 32, 8, 8)
    n.fc1 = L.InnerProduct(
        n.pool2,
        num_output=128,
        weight_filler=dict(type="msra"),
        bias_filler=dict(type="constant"),
    )
    n.relu3 = L.ReLU(n.fc1, in_place=True)
    n.scores = L.InnerProduct(
        n.relu3,
        num_output=CLASSES,
        weight_filler=dict(type="msra"),
        bias_filler=dict(type="constant"),
    )  # (N, C)


def _probabilities(scores, loss: str, **kwargs):
    return L.Softmax(scores, **kwargs) if loss == "softmax" else L.Sigmoid(scores, **kwargs)


def target_tops(targets: str, form: str) -> tuple[str, ...]:
    """The HDF5 datasets (= data layer tops) holding the targets in this form."""
    if form == "dense":
        return ("label",)
    return ("labels", "label_weights") if targets == "ink" else ("labels",)


def _data_layer(
    n: caffe.NetSpec, split: str, targets: str, form: str, data_dir: Path = DEFAULT_DIR
) -> list:
    """HDF5Data (or, for ``images``, MultiLabelImageDataLayer on the PNG files) with tops
    data + the target tops, set on ``n``; returns the target tops."""
    phase = caffe.TRAIN if split == "train" else caffe.TEST
    batch = TRAIN_BATCH if split == "train" else TEST_BATCH
    names = ("data", *target_tops(targets, form))
    if form == "images":
        images = data_dir / "images"
        tops = multilabel_image_data(
            ntop=len(names),
            phase=phase,
            source=str(images / f"{split}_{targets}.txt"),
            root_folder=f"{images}/",
            classes=CLASSES,
            batch_size=batch,
            max_labels=MAX_DIGITS,
            is_color=False,
            scale=1 / 255,
            shuffle=split == "train",
            seed=1,
        )
    else:
        tops = L.HDF5Data(
            source=str(data_dir / f"{split}_{targets}.txt"),
            batch_size=batch,
            shuffle=split == "train",
            include=dict(phase=phase),
            ntop=len(names),
        )
    for name, top in zip(names, tops):
        setattr(n, name, top)
    return list(tops[1:])


def train_val(
    loss: str, targets: str = "khot", form: str = "dense", data_dir: Path = DEFAULT_DIR
) -> caffe_pb2.NetParameter:
    """HDF5Data (TRAIN and TEST), the body, the loss, and metrics on probabilities in TEST."""
    if form != "dense" and loss != "softmax":
        raise ValueError("label lists feed the softmax loss; SigmoidCrossEntropyLoss is dense")
    n = caffe.NetSpec()
    target = _data_layer(n, "train", targets, form, data_dir)
    body(n, n.data)
    lists = {"targets": "labels"} if form != "dense" else {}
    if loss == "softmax":
        n.loss = softmax_loss(n.scores, *target, **lists)
    else:  # per-class BCE summed over classes, averaged over the batch
        n.loss = L.SigmoidCrossEntropyLoss(
            n.scores, *target, loss_param=dict(normalization=P.Loss.BATCH_SIZE)
        )
    n.prob = _probabilities(n.scores, loss, include=dict(phase=caffe.TEST))
    n.precision_at_1, n.precision_at_k, n.recall_at_k, n.map = multilabel_metrics(
        n.prob, *target, k=TOP_K, **lists
    )
    proto = n.to_proto()
    test_data = caffe.NetSpec()
    _data_layer(test_data, "test", targets, form, data_dir)
    layers = [*test_data.to_proto().layer, *proto.layer]  # TEST data layer first, like Caffe's
    del proto.layer[:]
    proto.layer.extend(layers)
    proto.name = f"digits_multilabel_{loss}" + ("" if form == "dense" else f"_{form}")
    return proto


def deploy(loss: str) -> caffe_pb2.NetParameter:
    """Input -> body -> prob (softmax or sigmoid), for evaluation and inference: the train
    net's deploy net (:func:`python_layers.deploy_net.deploy_net`; its Input layer is named
    "input", so that snapshots of nets whose data layer is named "data" load into it)."""
    proto = deploy_net(train_val(loss), shape=(TEST_BATCH, 1, CANVAS, CANVAS))
    proto.name = f"digits_multilabel_{loss}_deploy"
    return proto


def solver(loss: str) -> caffe_pb2.SolverParameter:
    s = caffe_pb2.SolverParameter()
    s.net = str(PROTOTXT_DIR / prototxt_name("train_val", loss))
    s.type = "SGD"
    s.base_lr, s.momentum, s.weight_decay = 0.1, 0.9, 5e-4
    s.lr_policy, s.gamma, s.stepsize = "step", 0.1, 1000
    s.max_iter = 1500
    s.test_iter.append(TEST_SAMPLES // TEST_BATCH)
    s.test_interval = 250
    s.test_initialization = True
    s.display = 50
    s.snapshot = 1500
    s.snapshot_prefix = f"runs/digits_multilabel_{loss}/snapshot"
    s.random_seed = 1
    s.solver_mode = caffe_pb2.SolverParameter.CPU
    return s


def prototxt_name(kind: str, loss: str) -> str:
    return f"{kind}.prototxt" if loss == "softmax" else f"{kind}_{loss}.prototxt"


def generated_files() -> dict[str, str]:
    """{file name: text} for every prototxt this example commits."""
    files = {}
    for loss in LOSSES:
        files[prototxt_name("train_val", loss)] = str(train_val(loss))
        files[prototxt_name("deploy", loss)] = str(deploy(loss))
        files[prototxt_name("solver", loss)] = str(solver(loss))
    files["train_val_labels.prototxt"] = str(train_val("softmax", "ink", "labels"))
    files["train_val_images.prototxt"] = str(train_val("softmax", "ink", "images"))
    header = "# Generated by `python -m examples.digits_multilabel.nets`; do not edit.\n"
    return {name: header + text for name, text in files.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description="write or check the example's prototxt files")
    parser.add_argument("--check", action="store_true", help="only compare with the files")
    parser.add_argument("--out", type=Path, default=PROTOTXT_DIR)
    args = parser.parse_args()
    stale = []
    for name, text in generated_files().items():
        path = args.out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path}")
    if stale:
        print(
            "out of date (run `python -m examples.digits_multilabel.nets`): " + ", ".join(stale),
            file=sys.stderr,
        )
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
