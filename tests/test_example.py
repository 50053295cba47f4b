"""The example: data builder, committed nets, and a short real training run through Caffe."""

from __future__ import annotations

import hashlib
import json

import h5py
import numpy as np
import pytest
from nets import assert_learns

from examples.digits_multilabel import data
from python_layers.labels import PADDING


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    data.build(out, n_train=300, n_test=120, seed=5)
    return out


def read(path):
    with h5py.File(path, "r") as f:
        return {name: f[name][...] for name in f}


def test_same_seed_same_bytes(small_data, tmp_path):
    data.build(tmp_path, n_train=300, n_test=120, seed=5)
    for name in ("train_khot.h5", "test_ink.h5"):
        digest = [
            hashlib.sha256((d / name).read_bytes()).hexdigest() for d in (small_data, tmp_path)
        ]
        assert digest[0] == digest[1]


def test_no_source_scan_in_both_splits(small_data):
    train, test = read(small_data / "train_khot.h5"), read(small_data / "test_khot.h5")
    train_scans = set(train["sources"][train["sources"] >= 0].tolist())
    test_scans = set(test["sources"][test["sources"] >= 0].tolist())
    assert train_scans and test_scans and not train_scans & test_scans


def test_shapes_ranges_and_label_rules(small_data):
    khot, ink = read(small_data / "train_khot.h5"), read(small_data / "train_ink.h5")
    assert (
        khot["data"].shape == (300, 1, data.CANVAS, data.CANVAS)
        and khot["data"].dtype == np.float32
    )
    assert 0 <= khot["data"].min() and khot["data"].max() <= 1
    np.testing.assert_array_equal(khot["data"], ink["data"])
    digits_per_canvas = (khot["sources"] >= 0).sum(axis=1)
    assert set(digits_per_canvas.tolist()) == {1, 2, 3, 4}
    assert set(np.unique(khot["label"]).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(ink["label"] > 0, khot["label"] > 0)  # same classes present
    np.testing.assert_allclose(ink["label"].sum(axis=1), 1, rtol=1e-6)
    assert len(np.unique(np.round(ink["label"][ink["label"] > 0], 3))) > 50  # real-valued


@pytest.mark.parametrize("kind", ["khot", "ink"])
def test_label_lists_hold_the_dense_targets(small_data, kind):
    """labels (N, 4), -1 padded (+ label_weights for ink) spell out exactly the dense label."""
    f = read(small_data / f"train_{kind}.h5")
    labels, dense = f["labels"], f["label"]
    assert labels.shape == (300, data.MAX_DIGITS) and labels.dtype == np.float32
    weights = f.get("label_weights", (labels >= 0).astype(np.float32))
    assert ("label_weights" in f) == (kind == "ink")
    rebuilt = np.zeros_like(dense)
    for (row, j), label in np.ndenumerate(labels):
        if label >= 0:
            rebuilt[row, int(label)] += weights[row, j]
        else:
            assert weights[row, j] == 0 and (labels[row, j:] == PADDING).all()  # padding at the end
    np.testing.assert_array_equal(rebuilt, dense)


def test_ink_label_is_the_visible_share():
    scans, labels = data.load_scans()
    first, second = np.flatnonzero(labels == 1)[0], np.flatnonzero(labels == 7)[0]
    canvas, khot, ink = data.compose(scans, labels, np.array([first, second]), [(0, 0), (20, 20)])
    ink_1, ink_7 = scans[first].sum(), scans[second].sum()  # no overlap: all ink is visible
    assert khot[1] == khot[7] == 1 and khot.sum() == 2
    assert ink[1] == pytest.approx(ink_1 / (ink_1 + ink_7), rel=1e-5)
    assert canvas.sum() == pytest.approx(ink_1 + ink_7, rel=1e-5)


def test_committed_prototxt_files_are_current(caffe):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format
    from paths import REPO

    from examples.digits_multilabel.nets import PROTOTXT_DIR, generated_files

    for name, text in generated_files().items():
        committed = (REPO / PROTOTXT_DIR / name).read_text()
        if committed == text:
            continue
        # protobuf < 4 prints some numbers otherwise (1.0 for 1): then the messages must agree
        kind = caffe_pb2.SolverParameter if name.startswith("solver") else caffe_pb2.NetParameter
        parsed = [text_format.Parse(t, kind()) for t in (committed, text)]
        assert parsed[0] == parsed[1], f"{name} is stale: run nets.py"


@pytest.mark.caffe
@pytest.mark.slow
def test_short_training_through_the_caffe_tool_beats_chance(caffe_tool, tmp_path, monkeypatch):
    """A few hundred iterations via .venv/bin/caffe: loss falls clearly, mAP beats chance."""
    from paths import REPO

    from examples.digits_multilabel import train

    monkeypatch.chdir(REPO)  # the nets' paths are relative to the repository root
    result = train.train("ci_short", max_iter=300, runs=tmp_path)
    assert_learns(result)
    written = json.loads((tmp_path / "ci_short" / "metrics.json").read_text())
    assert written["test"]["map"] == result["test"]["map"]
    for name in ("caffe.log", "learning_curve.png", "snapshot_iter_300.caffemodel"):
        assert (tmp_path / "ci_short" / name).stat().st_size > 0


@pytest.mark.caffe
@pytest.mark.slow
def test_short_training_on_label_lists_beats_chance(caffe_tool, tmp_path, monkeypatch):
    """The label-list route: HDF5 labels + label_weights into the loss and the metrics layer,
    no dense target blob in the net."""
    from paths import REPO

    from examples.digits_multilabel import train

    monkeypatch.chdir(REPO)
    result = train.train("ci_lists", targets="ink", max_iter=300, runs=tmp_path, form="labels")
    net_text = (tmp_path / "ci_lists" / "train_val.prototxt").read_text()
    assert 'top: "label_weights"' in net_text and 'top: "label"\n' not in net_text
    assert_learns(result)
    assert result["curves"]["test"]["map"][-1][1] > result["test"]["chance_map"] + 0.15


@pytest.mark.caffe
def test_training_from_python_with_get_solver(caffe, tmp_path, monkeypatch):
    from paths import REPO

    from examples.digits_multilabel import train

    monkeypatch.chdir(REPO)
    train.ensure_data()
    solver_path = train.write_run_files(tmp_path, "softmax", "khot", seed=3, max_iter=20)
    solver = caffe.get_solver(str(solver_path))
    solver.step(1)
    first = float(solver.net.blobs["loss"].data)
    solver.step(19)
    assert np.isfinite(first) and solver.iter == 20
    solver.test_nets[0].forward()
    assert 0 <= float(solver.test_nets[0].blobs["map"].data) <= 1
