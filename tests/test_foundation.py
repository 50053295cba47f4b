"""The project's own Caffe build: pycaffe with Python layers, the `caffe` tool wrapper, and the
build script's source check."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from nets import input_layer, net, run_caffe, softmax_loss_layer, tiny_training_files
from paths import REPO


@pytest.mark.caffe
def test_pycaffe_has_the_python_layer(caffe):
    assert "Python" in caffe.layer_type_list()
    assert "SoftmaxWithLoss" in caffe.layer_type_list()


@pytest.mark.caffe
def test_python_layer_forward_and_backward_numbers(make_net):
    """A hand-computed case: scores (0, log 3) and target (0.5, 0.5)."""
    n = make_net(
        net(
            input_layer(scores=(1, 2), targets=(1, 2)),
            softmax_loss_layer("scores", "targets", loss_weight=2.0),
        )
    )
    n.blobs["scores"].data[...] = [[0.0, np.log(3.0)]]  # p = (1/4, 3/4)
    n.blobs["targets"].data[...] = [[1.0, 1.0]]  # normalised to (1/2, 1/2)
    loss = float(n.forward()["loss"])
    n.backward()
    assert loss == pytest.approx(-(0.5 * np.log(0.25) + 0.5 * np.log(0.75)), rel=1e-6)
    np.testing.assert_allclose(
        n.blobs["scores"].diff, 2.0 * np.array([[0.25 - 0.5, 0.75 - 0.5]]), rtol=1e-6
    )


@pytest.mark.caffe
def test_caffe_tool_trains_a_net_with_our_python_loss(caffe_tool, tmp_path):
    solver = tiny_training_files(tmp_path)
    done = run_caffe(caffe_tool, "train", f"--solver={solver}", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    losses = [float(x) for x in re.findall(r"Iteration \d+.*?, loss = ([-\d.e]+)", done.stderr)]
    assert len(losses) >= 5, done.stderr[-3000:]
    assert losses[-1] < 0.3 * losses[0], losses


@pytest.mark.caffe
def test_any_caffe_tool_shows_our_layers_error_and_where(caffe_tool, tmp_path):
    """Debian's unpatched tool too: the layer prints its error before Caffe aborts."""
    solver = tiny_training_files(tmp_path, param_str='{"normalisation": "full"}')
    done = run_caffe(caffe_tool, "train", f"--solver={solver}", cwd=tmp_path)
    assert done.returncode != 0
    assert (
        "SoftmaxLossLayer.setup: ValueError: SoftmaxLossLayer: unknown param_str key(s) "
        "'normalisation'" in done.stderr
    )
    assert re.search(r"\n  at \S+\.py:\d+ in \w+", done.stderr), done.stderr[-2000:]


@pytest.mark.caffe
def test_caffe_tool_prints_the_python_traceback_and_exits_nonzero(patched_caffe_tool, tmp_path):
    solver = tiny_training_files(tmp_path, param_str='{"normalisation": "full"}')
    done = run_caffe(patched_caffe_tool, "train", f"--solver={solver}", cwd=tmp_path)
    assert done.returncode != 0
    assert "Traceback (most recent call last)" in done.stderr
    assert "ValueError: SoftmaxLossLayer: unknown param_str key(s) 'normalisation'" in done.stderr
    assert "Aborted" not in done.stderr and done.returncode > 0  # an exit, not a SIGABRT


def test_build_script_rejects_a_tarball_with_the_wrong_hash(tmp_path):
    fake = tmp_path / "caffe.orig.tar.gz"
    fake.write_bytes(b"not the pinned source")
    prefix = tmp_path / "prefix"
    env = dict(
        os.environ, CAFFE_SOURCE_TARBALL=str(fake), CAFFE_PREFIX=str(prefix), PYTHON=sys.executable
    )
    done = subprocess.run(
        ["bash", str(REPO / "docker" / "build_caffe.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "sha256 mismatch" in done.stderr
    assert (
        "expected: e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c" in done.stderr
    )
    actual = __import__("hashlib").sha256(b"not the pinned source").hexdigest()
    assert f"actual:   {actual}" in done.stderr
    assert not (prefix / ".build-complete").exists()
