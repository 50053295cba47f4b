"""Failure modes of real training runs through `.venv/bin/caffe`: every one ends quickly with a
message a user can act on, and an interrupted run resumes to exactly the same weights."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from nets import run_caffe, tiny_training_files

pytestmark = pytest.mark.caffe


def test_label_width_mismatch_stops_at_set_up(caffe_tool, tmp_path):
    solver = tiny_training_files(tmp_path, label_width=5)
    started = time.monotonic()
    done = run_caffe(caffe_tool, "train", f"--solver={solver}", cwd=tmp_path)
    assert done.returncode != 0 and time.monotonic() - started < 30
    assert "SoftmaxLossLayer: bottom[1] (targets) has shape (16, 5)" in done.stderr
    assert "scores of shape (16, 3)" in done.stderr


def test_missing_hdf5_file_names_the_file(caffe_tool, tmp_path):
    solver = tiny_training_files(tmp_path)
    (tmp_path / "train.h5").unlink()
    done = run_caffe(caffe_tool, "train", f"--solver={solver}", cwd=tmp_path)
    assert done.returncode != 0
    assert "train.h5" in done.stderr and "Failed opening HDF5 file" in done.stderr


def test_corrupt_hdf5_file_names_the_file(caffe_tool, tmp_path):
    solver = tiny_training_files(tmp_path)
    (tmp_path / "train.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 100)
    done = run_caffe(caffe_tool, "train", f"--solver={solver}", cwd=tmp_path)
    assert done.returncode != 0
    assert "train.h5" in done.stderr and "Failed opening HDF5 file" in done.stderr


def test_divergence_stops_with_floating_point_error_naming_the_scores(caffe_tool, tmp_path):
    # smoothing keeps the gradient from vanishing, so the weights run off to inf
    solver = tiny_training_files(
        tmp_path, base_lr=1e38, max_iter=2000, param_str='{"label_smoothing": 0.1}'
    )
    started = time.monotonic()
    done = run_caffe(caffe_tool, "train", f"--solver={solver}", cwd=tmp_path)
    assert done.returncode != 0 and time.monotonic() - started < 60
    assert "FloatingPointError: SoftmaxLossLayer: bottom[0] (scores) holds" in done.stderr
    assert "Iteration 2000" not in done.stderr


def final_weights(caffe, solver_dir, iteration):
    net = caffe.Net(
        str(solver_dir / "train.prototxt"),
        caffe.TEST,
        weights=str(solver_dir / f"snap_iter_{iteration}.caffemodel"),
    )
    return {name: [blob.data.copy() for blob in blobs] for name, blobs in net.params.items()}


def test_interrupted_and_resumed_run_ends_with_the_same_weights(caffe, caffe_tool, tmp_path):
    """SIGINT midway (`--sigint_effect=snapshot`), then the process is killed; resuming from
    the snapshot finishes with the uninterrupted run's weights, bit for bit.

    Each batch is the whole training set, so the data layer's read position, which Caffe does
    not snapshot, cannot matter."""
    max_iter, batch = 3000, 64  # the tiny set has 64 rows
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    straight.mkdir()
    interrupted.mkdir()
    solver = tiny_training_files(
        straight, max_iter=max_iter, batch_size=batch, base_lr=0.05, snapshot=max_iter
    )
    assert run_caffe(caffe_tool, "train", f"--solver={solver}", cwd=straight).returncode == 0

    solver = tiny_training_files(
        interrupted, max_iter=max_iter, batch_size=batch, base_lr=0.05, snapshot=max_iter
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(GLOG_logtostderr="1")
    env.pop("GLOG_minloglevel", None)
    process = subprocess.Popen(
        [str(caffe_tool), "train", f"--solver={solver}", "--sigint_effect=snapshot"],
        cwd=interrupted,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    snapshotted = False
    for line in process.stderr:
        if "Iteration 200," in line:  # well under way: ask for a snapshot
            process.send_signal(signal.SIGINT)
        if "Snapshotting solver state" in line:
            snapshotted = True
        elif snapshotted and "Iteration" in line:  # the snapshot is on disk: now crash hard
            process.kill()
            break
    process.wait(timeout=120)
    states = sorted(interrupted.glob("snap_iter_*.solverstate"))
    assert len(states) == 1 and snapshotted, states
    stopped_at = int(states[0].stem.rsplit("_", 1)[1])
    assert 200 <= stopped_at < max_iter, stopped_at
    assert not (interrupted / f"snap_iter_{max_iter}.caffemodel").exists()

    done = run_caffe(
        caffe_tool, "train", f"--solver={solver}", f"--snapshot={states[0]}", cwd=interrupted
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Resuming from {states[0]}" in done.stderr
    expected = final_weights(caffe, straight, max_iter)
    got = final_weights(caffe, interrupted, max_iter)
    for name, blobs in expected.items():
        for want, have in zip(blobs, got[name]):
            np.testing.assert_array_equal(have, want, err_msg=name)
