"""The example as a user's route: PNG files and a CSV of tags -> lists -> train -> evaluate ->
predict, each step a command of this package (printed, then run).

    python -m examples.digits_multilabel.route              # what `make route` runs
    python -m examples.digits_multilabel.route --max-iter 300

The digit collages stand in for the user's images, ``tags_{train,test}.csv`` (``path,tags``
with digit names) for their annotations. The net is the example's body with the image data
layer on the lists the lists command wrote (``runs/route/train_val.prototxt``).
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import caffe
from caffe.proto import caffe_pb2
from google.protobuf import text_format

from python_layers.netspec import multilabel_image_data, multilabel_metrics, softmax_loss

from . import data
from .nets import PROTOTXT_DIR, TEST_BATCH, TOP_K, TRAIN_BATCH, body
from .train import CAFFE_TOOL, ensure_data, run_caffe

NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
OUT = Path("runs/route")


def write_tags(images: Path) -> None:
    """``images/tags_{split}.csv`` from the k-hot lists: the user's annotations."""
    for split in ("train", "test"):
        rows = ["path,tags"]
        for line in (images / f"{split}_khot.txt").read_text().splitlines():
            path, *labels = line.split()
            rows.append(f"{path},{' '.join(NAMES[int(c)] for c in labels)}")
        (images / f"tags_{split}.csv").write_text("\n".join(rows) + "\n")


def route_net(out: Path, images: Path, classes: int) -> caffe_pb2.NetParameter:
    """The image data layer on ``out``'s lists (TRAIN: train.txt, TEST: val.txt), the example's
    body, the softmax loss on label lists, prob and the metrics (TEST)."""
    n = caffe.NetSpec()
    keys = dict(
        root_folder=f"{images}/",
        classes=classes,
        max_labels=data.MAX_DIGITS,
        is_color=False,
        scale=1 / 255,
        seed=1,
    )
    n.data, n.labels = multilabel_image_data(
        phase=caffe.TRAIN,
        source=str(out / "train.txt"),
        batch_size=TRAIN_BATCH,
        shuffle=True,
        **keys,
    )
    body(n, n.data)
    n.loss = softmax_loss(n.scores, n.labels, targets="labels")
    n.prob = caffe.layers.Softmax(n.scores, include=dict(phase=caffe.TEST))
    n.precision_at_1, n.precision_at_k, n.recall_at_k, n.map = multilabel_metrics(
        n.prob, n.labels, k=TOP_K, targets="labels"
    )
    test = caffe.NetSpec()
    test.data, test.labels = multilabel_image_data(
        phase=caffe.TEST, source=str(out / "val.txt"), batch_size=TEST_BATCH, **keys
    )
    proto = n.to_proto()
    layers = [*test.to_proto().layer, *proto.layer]
    del proto.layer[:]
    proto.layer.extend(layers)
    proto.name = "digits_route"
    return proto


def write_net(out: Path, images: Path, max_iter: int) -> Path:
    """``out/train_val.prototxt`` and ``out/solver.prototxt`` (the example's schedule)."""
    classes = len((out / "classes.txt").read_text().splitlines())
    (out / "train_val.prototxt").write_text(str(route_net(out, images, classes)))
    solver = text_format.Parse(
        (PROTOTXT_DIR / "solver.prototxt").read_text(), caffe_pb2.SolverParameter()
    )
    solver.net = str(out / "train_val.prototxt")
    solver.stepsize = max(1, solver.stepsize * max_iter // solver.max_iter)
    solver.max_iter = solver.snapshot = max_iter
    solver.test_interval = max(1, max_iter // 4)
    val_images = len((out / "val.txt").read_text().splitlines())
    solver.test_iter[:] = [max(1, val_images // TEST_BATCH)]
    solver.snapshot_prefix = str(out / "snapshot")
    (out / "solver.prototxt").write_text(str(solver))
    return out / "solver.prototxt"


def commands(images: Path, out: Path, max_iter: int, caffe_tool: str = ".venv/bin/caffe"):
    """The route's commands, as a user types them (with the venv's bin on PATH)."""
    weights = out / f"snapshot_iter_{max_iter}.caffemodel"
    model = ["--net", out / "train_val.prototxt", "--weights", weights]
    model += ["--classes", out / "classes.txt"]
    examples = [images / f"test/{i:05d}.png" for i in range(3)]
    steps = [
        [
            "multilabel-lists",
            "table",
            images / "tags_train.csv",
            "--out",
            out,
            "--val-fraction",
            "0.1",
            "--seed",
            "1",
        ],
        [
            "multilabel-lists",
            "table",
            images / "tags_test.csv",
            "--out",
            out,
            "--name",
            "test",
            "--classes",
            out / "classes.txt",
        ],
        [caffe_tool, "train", f"--solver={out / 'solver.prototxt'}"],
        [
            "multilabel-evaluate",
            *model,
            "--list",
            out / "test.txt",
            "--val-list",
            out / "val.txt",
            "--out",
            out / "report.json",
            "--plot",
            out / "report.png",
        ],
        ["multilabel-predict", *model, "--thresholds", out / "report.json", *examples],
    ]
    return [[str(part) for part in step] for step in steps]


def run(step: list[str]) -> None:
    print("$ " + shlex.join(step), flush=True)
    tool = step[0] if "/" in step[0] else str(Path(sys.prefix) / "bin" / step[0])
    subprocess.run([tool, *step[1:]], check=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-iter", type=int, default=1500)
    parser.add_argument("--data", type=Path, default=data.DEFAULT_DIR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.data == data.DEFAULT_DIR:
        ensure_data()
    images = args.data / "images"
    write_tags(images)
    args.out.mkdir(parents=True, exist_ok=True)
    steps = commands(images, args.out, args.max_iter, str(CAFFE_TOOL))
    for step in steps[:2]:
        run(step)
    solver = write_net(args.out, images, args.max_iter)
    print(f"wrote {solver} and its net; $ {shlex.join(steps[2])}", flush=True)
    run_caffe(solver, args.out / "caffe.log")  # progress lines only; the whole log in the file
    for step in steps[3:]:
        run(step)


if __name__ == "__main__":
    main()
