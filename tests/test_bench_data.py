"""The data bench's runners (bench/bench_data.py) on tiny JPEGs: each side's clock covers
exactly the batches it counts, and nothing of one side runs into the other's round (the
large-JPEG row measured 0.74x PyTorch's images/s and 1.30x its CPU per image when the
fast_decode layer's batches in the making ran into the exact layer's round and the
DataLoader's count included a batch made before its clock started)."""

from __future__ import annotations

import sys

import pytest
from paths import REPO

sys.path.insert(0, str(REPO / "bench"))
import bench_data


@pytest.fixture
def tiny(monkeypatch, tmp_path):
    monkeypatch.setattr(bench_data, "BATCH", 4)
    monkeypatch.setattr(bench_data, "IMAGES", 4 * (bench_data.AHEAD + 3))
    monkeypatch.setattr(bench_data, "SIDE", 24)
    monkeypatch.setattr(bench_data, "CROP", 16)
    return bench_data.write_jpegs(tmp_path, count=bench_data.IMAGES, size=(40, 30))


@pytest.mark.caffe
def test_ours_leaves_nothing_running_after_its_round(caffe, tiny):
    run = bench_data.ours_runner(tiny)
    for _ in range(2):
        rate, cpu = run()
        assert rate > 0 and cpu > 0
        pending = run.layer.prefetcher.pending
        assert len(pending) == bench_data.AHEAD  # made ahead for the next round ...
        assert all(future.done() for future in pending.values())  # ... already finished


def test_torch_measures_after_its_warm_up(tiny):
    pytest.importorskip("torch")
    run = bench_data.torch_runner(tiny.parent)
    run()  # warm-up: starts the (persistent) workers
    rate, cpu = run()
    assert rate > 0 and cpu > 0


def test_torchvision_measures_after_its_warm_up(tiny):
    pytest.importorskip("torchvision")
    run = bench_data.torch_runner(tiny.parent, bench_data._TorchvisionDataset)
    run()
    rate, cpu = run()
    assert rate > 0 and cpu > 0
    pixels, _ = bench_data._TorchvisionDataset(tiny.parent)[0]  # the layer's crop, as floats
    assert pixels.shape == (3, bench_data.CROP, bench_data.CROP) and pixels.max() <= 1


def test_bare_loop_reads_every_image(tiny, monkeypatch):
    read, fromfile = [], bench_data.np.fromfile

    def counted(path, dtype):
        read.append(path)
        return fromfile(path, dtype)

    monkeypatch.setattr(bench_data.np, "fromfile", counted)
    rate, cpu = bench_data.bare_runner(tiny.parent)()
    assert rate > 0 and cpu > 0
    assert len(read) == bench_data.IMAGES  # the rate's count is the images read
