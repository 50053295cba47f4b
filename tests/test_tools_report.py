"""Evaluate's report and plot, and the model commands' log: the chance baseline (the same
function the example's metrics use), a legend naming every plotted class, Caffe's set-up log
kept out unless --verbose."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from test_tools_model import model  # noqa: F401 (the fixture: a small net trained here)

from python_layers import metrics
from python_layers.tools import evaluate


def test_the_report_has_the_chance_baseline_that_random_scores_reach():
    rng = np.random.default_rng(21)
    relevant = rng.random((400, 6)) < [0.05, 0.1, 0.2, 0.3, 0.5, 0.0]  # one class never
    report = evaluate.report(rng.random(relevant.shape), relevant, list("abcdef"))
    assert report["chance_map"] == metrics.chance_map(relevant)
    random_maps = [
        metrics.mean_average_precision(rng.random(relevant.shape), relevant) for _ in range(200)
    ]
    assert abs(np.mean(random_maps) - report["chance_map"]) < 0.02  # about 0.23 here


def test_the_example_reports_the_same_chance(monkeypatch):
    from examples.digits_multilabel import evaluate as example

    source = open(example.__file__, encoding="utf-8").read()
    assert "metrics.chance_map(labels)" in source  # one definition, not a copy


def test_the_pr_legend_names_every_plotted_class():
    rng = np.random.default_rng(4)
    names = [f"class{i}" for i in range(8)]
    relevant = rng.random((100, 8)) < np.linspace(0.1, 0.6, 8)
    fig = evaluate.figure(rng.random((100, 8)), relevant, names)
    curves = fig.axes[1]
    labels = [text.get_text() for text in curves.get_legend().get_texts()]
    assert labels[0] == "all classes pooled" and sorted(labels[1:]) == names
    assert len(curves.get_lines()) == 9
    many = [f"c{i}" for i in range(30)]
    relevant = rng.random((100, 30)) < 0.3
    fig = evaluate.figure(rng.random((100, 30)), relevant, many)
    shown = [text.get_text() for text in fig.axes[1].get_legend().get_texts()]
    assert len(shown) == 1 + evaluate.CURVES == len(fig.axes[1].get_lines())
    assert f"{evaluate.CURVES} most frequent of 30 classes" in fig.axes[1].get_title()


NO_GPU_NOTICE = re.compile(
    r"Cannot create Cu(blas handle|rand generator)|Logging before InitGoogleLogging"
)


@pytest.mark.caffe
@pytest.mark.parametrize("verbose", [False, True])
def test_model_commands_keep_caffes_log_out_unless_verbose(model, tmp_path, verbose):  # noqa: F811
    folder, made = model
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLOG_")}
    common = ["--net", str(folder / "train_val.prototxt"), "--weights"]
    common += [str(folder / "bands.caffemodel"), "--classes", str(folder / "classes.txt")]
    common += ["--quiet", *(["--verbose"] if verbose else [])]
    evaluate_argv = ["--list", str(folder / "val.txt"), "--out", str(tmp_path / "r.json")]
    predict_argv = [str(folder / "images" / made[0][0])]
    for tool, argv in (("evaluate", evaluate_argv), ("predict", predict_argv)):
        done = subprocess.run(
            [sys.executable, "-m", f"python_layers.tools.{tool}", *common, *argv],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        caffe_lines = [line for line in done.stderr.splitlines() if "net.cpp:" in line]
        # A CUDA build of Caffe on a machine without a GPU (CI's CUDA stage) logs these errors
        # at start-up whatever the level; quiet keeps errors, so it stays, and is not counted.
        other_lines = [ln for ln in done.stderr.splitlines() if not NO_GPU_NOTICE.search(ln)]
        if verbose:
            assert len(caffe_lines) > 20, done.stderr
        else:
            assert caffe_lines == [] and len(other_lines) <= 1, done.stderr
    said = json.loads((tmp_path / "r.json").read_text())
    assert 0 < said["chance_map"] < said["map"]
