"""Train the example with Caffe's own tool, evaluate it, and write ``runs/<name>/``.

    python -m examples.digits_multilabel.train                      # what `make train` runs
    python -m examples.digits_multilabel.train --loss sigmoid --targets ink --seed 2
    python -m examples.digits_multilabel.train --targets ink --targets-form labels

Steps: build the data if missing; write a run-specific solver and net (seed, target kind,
snapshot prefix) next to the outputs; run ``.venv/bin/caffe train``, echoing its progress and
keeping the whole log; evaluate the final weights on the test set; plot the learning curve.
Outputs in ``runs/<name>/``: ``caffe.log``, ``*.caffemodel``, ``metrics.json``,
``learning_curve.png``, and the ``solver.prototxt`` / ``train_val.prototxt`` that were used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from caffe.proto import caffe_pb2
from google.protobuf import text_format

from . import data
from .evaluate import evaluate
from .nets import FORMS, PROTOTXT_DIR, prototxt_name, train_val

# the wrapper scripts/bootstrap.sh writes (CAFFE_TOOL overrides: scripts/gpu/check.sh)
CAFFE_TOOL = Path(os.environ.get("CAFFE_TOOL", Path(sys.prefix) / "bin" / "caffe"))
PROGRESS = re.compile(r"Iteration \d+.*loss = |Test net output|Error|error|Traceback|Check failed")


def ensure_data(data_dir: Path = data.DEFAULT_DIR) -> None:
    wanted = [
        data_dir / f"{split}_{kind}.txt"
        for split in ("train", "test")
        for kind in data.TARGET_KINDS
    ]
    if not all(path.exists() for path in wanted) or not data.is_current(data_dir):
        print(f"building the digit collages in {data_dir} ...", flush=True)
        data.build(data_dir)
        data.export_images(data_dir)
    if not (data_dir / "images" / "test_ink.txt").exists():
        print(f"writing the collages as PNG files in {data_dir / 'images'} ...", flush=True)
        data.export_images(data_dir)


def write_run_files(
    run_dir: Path,
    loss: str,
    targets: str,
    seed: int,
    max_iter: int | None,
    form: str = "dense",
    data_dir: Path = data.DEFAULT_DIR,
    base_lr: float | None = None,
) -> Path:
    """The committed solver and this run's net (``nets.train_val``: the committed net for
    k-hot targets, the same with another data file or target form otherwise) in ``run_dir``."""
    solver = text_format.Parse(
        (PROTOTXT_DIR / prototxt_name("solver", loss)).read_text(), caffe_pb2.SolverParameter()
    )
    net = train_val(loss, targets, form, data_dir)
    if base_lr is not None:
        solver.base_lr = base_lr
    if max_iter is not None:  # a shorter schedule keeps the same shape
        solver.stepsize = max(1, solver.stepsize * max_iter // solver.max_iter)
        solver.test_interval = max(1, min(solver.test_interval, max_iter // 4))
        solver.max_iter = solver.snapshot = max_iter
    solver.random_seed = seed
    solver.snapshot_prefix = str(run_dir / "snapshot")
    solver.net = str(run_dir / "train_val.prototxt")
    (run_dir / "train_val.prototxt").write_text(text_format.MessageToString(net))
    solver_path = run_dir / "solver.prototxt"
    solver_path.write_text(text_format.MessageToString(solver))
    return solver_path


def run_caffe(
    solver_path: Path, log_path: Path, verbose: bool = False, gpu: int | None = None
) -> None:
    """``caffe train`` (on GPU ``gpu`` if given): the whole log to ``log_path``, progress
    lines to the console."""
    env = dict(os.environ, GLOG_logtostderr="1")
    env.pop("GLOG_minloglevel", None)
    with (
        open(log_path, "w") as log,
        subprocess.Popen(
            [str(CAFFE_TOOL), "train", f"--solver={solver_path}"]
            + ([] if gpu is None else [f"--gpu={gpu}"]),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        ) as process,
    ):
        for line in process.stdout:
            log.write(line)
            if verbose or PROGRESS.search(line):
                print(
                    line.rstrip()[line.find("]") + 1 :].strip() if "]" in line else line.rstrip(),
                    flush=True,
                )
    if process.returncode != 0:
        tail = "".join(log_path.read_text().splitlines(keepends=True)[-30:])
        raise SystemExit(
            f"caffe train failed (exit {process.returncode}); end of {log_path}:\n{tail}"
        )


def parse_log(text: str) -> dict:
    """Training loss and test outputs against iteration, from a Caffe log."""
    train = [
        (int(i), float(v))
        for i, v in re.findall(r"Iteration (\d+)(?: \([^)]*\))?, loss = ([-+\d.eE]+|nan|inf)", text)
    ]
    test: dict[str, list[tuple[int, float]]] = {}
    for block in re.split(r"(?=Iteration \d+, Testing net)", text)[1:]:
        iteration = int(re.match(r"Iteration (\d+)", block).group(1))
        for name, value in re.findall(r"Test net output #\d+: (\w+) = ([-+\d.eE]+|nan)", block):
            test.setdefault(name, []).append((iteration, float(value)))
    return {"train_loss": train, "test": test}


def plot_learning_curve(curves: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10, 4))
    if curves["train_loss"]:
        ax_loss.plot(*zip(*curves["train_loss"]), label="training loss")
    if "loss" in curves["test"]:
        ax_loss.plot(*zip(*curves["test"]["loss"]), "o-", label="test loss")
    ax_loss.set(xlabel="iteration", ylabel="loss", title="loss")
    ax_loss.legend()
    if "map" in curves["test"]:
        ax_map.plot(*zip(*curves["test"]["map"]), "o-", color="C2")
    ax_map.set(xlabel="iteration", ylabel="mAP (mean of test batches)", title="test mAP")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(
    name: str,
    loss: str = "softmax",
    targets: str = "khot",
    seed: int = 1,
    max_iter: int | None = None,
    runs: Path = Path("runs"),
    verbose: bool = False,
    form: str = "dense",
    data_dir: Path = data.DEFAULT_DIR,
    base_lr: float | None = None,
    gpu: int | None = None,
) -> dict:
    """Train, evaluate on ``data_dir``'s test split and write ``runs/<name>/``; return the
    metrics. ``base_lr`` overrides the committed solver's; ``gpu``: train on that GPU (the
    GPU build of Caffe)."""
    if data_dir == data.DEFAULT_DIR:
        ensure_data()
    run_dir = runs / name
    run_dir.mkdir(parents=True, exist_ok=True)
    solver_path = write_run_files(run_dir, loss, targets, seed, max_iter, form, data_dir, base_lr)
    solver = text_format.Parse(solver_path.read_text(), caffe_pb2.SolverParameter())
    print(
        f"training {name}: loss={loss} targets={targets} ({form}) seed={seed} "
        f"iterations={solver.max_iter} (log: {run_dir / 'caffe.log'})",
        flush=True,
    )
    started = time.perf_counter()
    run_caffe(solver_path, run_dir / "caffe.log", verbose, gpu)
    seconds = time.perf_counter() - started
    weights = Path(f"{solver.snapshot_prefix}_iter_{solver.max_iter}.caffemodel")
    curves = parse_log((run_dir / "caffe.log").read_text())
    plot_learning_curve(curves, run_dir / "learning_curve.png", f"{name} ({loss}, {targets})")
    result = {
        "name": name,
        "loss": loss,
        "targets": targets,
        "targets_form": form,
        "seed": seed,
        "device": "CPU" if gpu is None else f"GPU {gpu}",
        "base_lr": solver.base_lr,
        "iterations": solver.max_iter,
        "train_seconds": round(seconds, 1),
        "weights": str(weights),
        "final_train_loss": curves["train_loss"][-1][1] if curves["train_loss"] else None,
        "test": evaluate(weights, loss, targets, data_dir),
        "curves": curves,
    }
    (run_dir / "metrics.json").write_text(json.dumps(result, indent=2))
    return result


def summary_table(results: list[dict]) -> str:
    header = "| run | loss | targets | iters | time | test mAP | P@1 | P@3 | R@3 | chance mAP |"
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for r in results:
        t = r["test"]
        lines.append(
            f"| {r['name']} | {r['loss']} | {r['targets']} | {r['iterations']} | "
            f"{r['train_seconds']:.0f} s | {t['map']:.3f} | {t['precision_at_1']:.3f} | "
            f"{t['precision_at_3']:.3f} | {t['recall_at_3']:.3f} | {t['chance_map']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", help="run directory name (default: digits_<loss>_<targets>)")
    parser.add_argument("--loss", choices=["softmax", "sigmoid"], default="softmax")
    parser.add_argument("--targets", choices=list(data.TARGET_KINDS), default="khot")
    parser.add_argument(
        "--targets-form",
        choices=list(FORMS),
        default="dense",
        help="dense (N, 10) targets or label lists (N, 4) from HDF5, or label lists with the "
        "images from PNG files through MultiLabelImageDataLayer (the last two: softmax only)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-iter", type=int, help="override the solver's max_iter")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--verbose", action="store_true", help="echo Caffe's whole log")
    parser.add_argument("--gpu", type=int, help="train on this GPU (needs CAFFE_GPU=1 make env)")
    args = parser.parse_args()
    if args.targets_form != "dense" and args.loss != "softmax":
        parser.error("label lists train the softmax loss only (sigmoid needs dense targets)")
    suffix = "" if args.targets_form == "dense" else f"_{args.targets_form}"
    name = args.name or f"digits_{args.loss}_{args.targets}{suffix}"
    result = train(
        name,
        args.loss,
        args.targets,
        args.seed,
        args.max_iter,
        args.runs,
        args.verbose,
        args.targets_form,
        gpu=args.gpu,
    )
    print(
        f"\nwrote {args.runs / name}/: caffe.log, {Path(result['weights']).name}, "
        f"metrics.json, learning_curve.png\n"
    )
    print(summary_table([result]))


if __name__ == "__main__":
    main()
