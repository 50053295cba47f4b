"""The README's loss-layer stanzas, trained as written by the real `caffe train`: the one-top
form, the two-top form (`loss_weight: 1  loss_weight: 0`), and the TEST-only Softmax the
README offers to keep `prob` out of the training log."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
from nets import run_caffe

README = Path(__file__).resolve().parents[1] / "README.md"
ROWS, CLASSES, BATCH, DISPLAY, ITERATIONS = 32, 3, 8, 5, 20


def loss_section_fences() -> list[str]:
    section = README.read_text().split("## The loss layer", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```prototxt\n(.*?)```", section, re.S)


def stanza(*needles: str) -> str:
    found = [body for body in loss_section_fences() if all(n in body for n in needles)]
    assert len(found) == 1, f"README's loss section: one fence with {needles}, found {found}"
    return found[0]


ONE_TOP = ('top: "loss"\n', "loss_weight: 1 ")
TWO_TOPS = ('top: "prob"', "loss_weight: 1  loss_weight: 0")
TEST_SOFTMAX = ('type: "Softmax"', "include { phase: TEST }")


def train(caffe_tool, folder: Path, layers: str):
    rng = np.random.default_rng(3)
    data = rng.normal(0, 1, (ROWS, 4)).astype(np.float32)
    targets = np.eye(CLASSES, dtype=np.float32)[rng.integers(0, CLASSES, ROWS)]
    with h5py.File(folder / "d.h5", "w") as f:
        f["data"], f["targets"] = data, targets
    (folder / "d.txt").write_text(f"{folder / 'd.h5'}\n")
    (folder / "net.prototxt").write_text(
        'layer { name: "d" type: "HDF5Data" top: "data" top: "targets"\n'
        f'  hdf5_data_param {{ source: "{folder / "d.txt"}" batch_size: {BATCH} }} }}\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "scores"\n'
        f"  inner_product_param {{ num_output: {CLASSES} weight_filler {{ type: "
        '"gaussian" std: 0.01 } } }\n' + layers
    )
    (folder / "solver.prototxt").write_text(
        f'net: "{folder / "net.prototxt"}"\nbase_lr: 0.1\nlr_policy: "fixed"\n'
        f"max_iter: {ITERATIONS}\ndisplay: {DISPLAY}\ntest_iter: 1\ntest_interval: 10\n"
        "solver_mode: CPU\nrandom_seed: 1\nsnapshot_after_train: false\n"
    )
    return run_caffe(caffe_tool, "train", f"--solver={folder / 'solver.prototxt'}", cwd=folder)


def train_prob_lines(log: str) -> int:
    return len(re.findall(r"Train net output #\d+: prob = ", log))


@pytest.mark.caffe
def test_the_one_top_stanza_trains_and_logs_no_prob(caffe_tool, tmp_path):
    done = train(caffe_tool, tmp_path, stanza(*ONE_TOP) + stanza(*TEST_SOFTMAX))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Optimization Done" in done.stderr
    assert train_prob_lines(done.stderr) == 0
    assert "Test net output #1: prob" in done.stderr  # the TEST-only softmax was built


@pytest.mark.caffe
def test_the_two_top_stanza_trains_and_floods_the_log_as_the_readme_says(caffe_tool, tmp_path):
    done = train(caffe_tool, tmp_path, stanza(*TWO_TOPS))
    assert done.returncode == 0, done.stderr[-3000:]
    displays = ITERATIONS // DISPLAY  # iterations 0, 5, 10, 15 (the last is not shown)
    assert train_prob_lines(done.stderr) == displays * BATCH * CLASSES


@pytest.mark.caffe
def test_two_tops_with_one_loss_weight_abort_as_the_readme_says(caffe_tool, tmp_path):
    body = stanza(*TWO_TOPS).replace("loss_weight: 1  loss_weight: 0", "loss_weight: 1")
    done = train(caffe_tool, tmp_path, body)
    assert done.returncode != 0
    assert "top.size() == num_loss_weights (2 vs. 1)" in done.stderr
