"""MultiLabelImageDataLayer in training processes, on real image files: sharding across ranks,
exact resume through `caffe train`, shutdown (workers busy, Ctrl-C), and a short training
from PNG files. The layer in a single net: test_multilabel_data.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
from image_data import data_net, write_images
from nets import assert_learns, run_caffe
from paths import REPO

from python_layers.data import batches

pytestmark = pytest.mark.caffe


# --- Sharding, resume, shutdown -----------------------------------------------------------

SHARD_PROBE = """
import json, sys
import caffe
directory, count, rank, prototxt = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
caffe.set_mode_cpu()
caffe.set_solver_count(count)
caffe.set_solver_rank(rank)
caffe.set_multiprocess(True)  # as python/train.py does (PythonLayer insists)
net = caffe.Net(prototxt, caffe.TRAIN)
seen = []
for _ in range(4):
    net.forward()
    seen.append(net.blobs["data"].data[:, 2, 0, 0].astype(int).tolist())
print(json.dumps(seen))
"""


def test_ranks_take_disjoint_shares_that_make_up_the_global_batch(tmp_path):
    listing, _ = write_images(tmp_path, count=20)

    def shares(batch_size, count):
        prototxt = tmp_path / f"net{count}.prototxt"
        prototxt.write_text(data_net(tmp_path, source=str(listing), classes=4,
                                     batch_size=batch_size, shuffle=True, seed=7,
                                     sampling="sqrt"))  # fmt: skip
        runs = []
        for rank in range(count):
            done = subprocess.run(
                [sys.executable, "-c", SHARD_PROBE, str(tmp_path), str(count), str(rank),
                 str(prototxt)],
                capture_output=True, text=True, cwd=REPO, check=True,
            )  # fmt: skip
            runs.append(json.loads(done.stdout.splitlines()[-1]))
        return runs

    (single,) = shares(6, 1)  # one process, global batch 6
    ranks = shares(2, 3)  # three ranks of 2
    for b in range(4):
        assert ranks[0][b] + ranks[1][b] + ranks[2][b] == single[b]


def resume_files(directory, listing, max_iter, snapshot, seed: int = 11):
    """A solver and its net (data layer -> InnerProduct "ip" -> loss on label lists); ``seed``
    is the data layer's."""
    from caffe import NetSpec
    from caffe import layers as L

    from python_layers.netspec import multilabel_image_data, softmax_loss

    n = NetSpec()
    n.data, n.labels = multilabel_image_data(
        source=str(listing), root_folder=f"{listing.parent}/", classes=4, batch_size=3,
        crop_size=4, mirror=True, shuffle=True, seed=seed, sampling="sqrt", max_labels=3,
    )  # fmt: skip
    n.scores = L.InnerProduct(
        n.data, name="ip", num_output=4, weight_filler=dict(type="gaussian", std=0.1)
    )
    n.loss = softmax_loss(n.scores, n.labels, targets="labels")
    net = directory / "train.prototxt"
    net.write_text(str(n.to_proto()))
    solver = directory / f"solver{max_iter}.prototxt"
    solver.write_text(
        f'net: "{net}"\nbase_lr: 0.05\nlr_policy: "step"\ngamma: 0.5\nstepsize: 7\n'
        f"max_iter: {max_iter}\nmomentum: 0.9\nweight_decay: 0.001\nsolver_mode: CPU\n"
        f'random_seed: 3\nsnapshot: {snapshot}\nsnapshot_prefix: "{directory / "snap"}"\n'
        "snapshot_after_train: true\ndisplay: 0\n"
    )
    return solver


def test_an_interrupted_and_resumed_run_ends_bit_identical(caffe, caffe_tool, tmp_path):
    """Shuffle and sqrt resampling, a batch of 3 that does not divide 10 images: 16
    iterations straight, against 9, a snapshot, and a resume to 16."""
    listing, _ = write_images(tmp_path, count=10, size=(6, 6))
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    for directory in (straight, broken):
        directory.mkdir()
    done = run_caffe(caffe_tool, "train", f"--solver={resume_files(straight, listing, 16, 0)}",
                     cwd=straight)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    first = run_caffe(caffe_tool, "train", f"--solver={resume_files(broken, listing, 9, 0)}",
                      cwd=broken)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    second = run_caffe(caffe_tool, "train",
                       f"--solver={resume_files(broken, listing, 16, 0)}",
                       f"--snapshot={broken / 'snap_iter_9.solverstate'}", cwd=broken)  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    a = caffe.Net(str(straight / "train.prototxt"), str(straight / "snap_iter_16.caffemodel"),
                  caffe.TEST)  # fmt: skip
    b = caffe.Net(str(broken / "train.prototxt"), str(broken / "snap_iter_16.caffemodel"),
                  caffe.TEST)  # fmt: skip
    for name in ("ip", "image_data"):
        for blob_a, blob_b in zip(a.params[name], b.params[name]):
            np.testing.assert_array_equal(blob_a.data, blob_b.data)
    assert float(a.params["image_data"][0].data[1]) == 16  # the state: 16 batches read
    # a resume under another configuration fails loudly instead of reading other batches
    changed = resume_files(broken, listing, 20, 0, seed=12)
    wrong = run_caffe(caffe_tool, "train", f"--solver={changed}",
                      f"--snapshot={broken / 'snap_iter_16.solverstate'}", cwd=broken)  # fmt: skip
    assert wrong.returncode != 0
    assert "the restored snapshot's data state was written by another configuration" in (
        wrong.stderr
    )


EXIT_PROBE = """
import sys
import caffe
caffe.set_mode_cpu()
net = caffe.Net(sys.argv[1], caffe.TRAIN)
net.forward()
print("forwarded", flush=True)
"""


def test_the_process_exits_promptly_with_workers_busy(tmp_path):
    """Eight batches in the making on four workers when the script ends: no hang."""
    listing, _ = write_images(tmp_path, count=40, size=(64, 64))
    prototxt = tmp_path / "net.prototxt"
    prototxt.write_text(data_net(tmp_path, source=str(listing), classes=4, batch_size=20,
                                 workers=4, prefetch=8))  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", EXIT_PROBE, str(prototxt)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "forwarded" in done.stdout
    assert time.monotonic() - started < 30


def test_prefetcher_close_stops_its_threads():
    import threading

    before = threading.active_count()
    prefetcher = batches.Prefetcher(lambda b: b, start=0, depth=3, workers=2)
    assert [prefetcher.next() for _ in range(5)] == [0, 1, 2, 3, 4]
    prefetcher.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


def test_ctrl_c_stops_caffe_train_with_workers_running(caffe_tool, tmp_path):
    """SIGINT (Caffe's default --sigint_effect=stop): training stops at the next iteration,
    the tool snapshots and exits 0 within seconds, the data layer's busy workers
    notwithstanding (a crash or a hang at teardown would show here)."""
    listing, _ = write_images(tmp_path, count=30, size=(32, 32))
    solver = resume_files(tmp_path, listing, 100000, 0)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(GLOG_logtostderr="1", GLOG_minloglevel="0")  # "stopped early" is an INFO line
    process = subprocess.Popen(
        [str(caffe_tool), "train", f"--solver={solver}"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    time.sleep(6)  # well into training
    assert process.poll() is None
    started = time.monotonic()
    process.send_signal(2)  # SIGINT: Caffe's default is to stop (and snapshot)
    output, _ = process.communicate(timeout=60)
    assert time.monotonic() - started < 30
    assert process.returncode == 0, output[-3000:]
    assert "Optimization stopped early." in output, output[-3000:]
    (snapshot,) = tmp_path.glob("snap_iter_*.caffemodel")  # written on the way out
    assert 0 < int(snapshot.stem.removeprefix("snap_iter_")) < 100000


@pytest.mark.slow
def test_short_training_from_png_files_beats_chance(caffe_tool, tmp_path, monkeypatch):
    """The example's image route: PNG files and list files through the data layer, label
    lists with weights into the loss and the metrics layer."""
    from examples.digits_multilabel import train

    monkeypatch.chdir(REPO)
    result = train.train("ci_images", targets="ink", max_iter=300, runs=tmp_path, form="images")
    net_text = (tmp_path / "ci_images" / "train_val.prototxt").read_text()
    assert "MultiLabelImageDataLayer" in net_text and "HDF5Data" not in net_text
    assert_learns(result)
