"""The scale rows of the data bench (bench/bench_data_scale.py) on a small list: the list it
writes is what it claims (1-8 labels a line, 17,000 classes, Zipf-like), and every row is
measured and printed (the 10M-line run itself belongs to `make bench`, not to the tests)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from paths import REPO

from python_layers.data import index

sys.path.insert(0, str(REPO / "bench"))
import bench_data_scale


def test_the_list_it_writes(tmp_path):
    path = tmp_path / "list.txt"
    bench_data_scale.write_list(path, 30_000, step=7_000)  # blocks that do not divide it
    built = index.open_index(path)
    assert len(built) == 30_000
    counts = np.diff(built.label_offsets.astype(np.int64))
    assert counts.min() == 1 and counts.max() == 8
    assert built.header["max_label"] < bench_data_scale.CLASSES
    per_class = built.class_counts(bench_data_scale.CLASSES)
    assert per_class[0] > per_class[1] > per_class[10] > 0  # a long tail
    assert built.path(1234) == "train/images_00/210.jpg"  # 1234 mod 512 files


@pytest.mark.slow
@pytest.mark.caffe
def test_every_row_is_measured_on_a_small_list(caffe):
    result = bench_data_scale.main(lines=20_000, rounds=1)
    assert sorted(result["batch_ms"]) == [
        "list_100k.txt natural", "list_100k.txt sqrt", "list_20000.txt natural",
        "list_20000.txt sqrt",
    ]  # fmt: skip
    assert all(value > 0 for value in result["batch_ms"].values())
    assert 0 < result["anonymous_mb_after_setup"] < result["peak_rss_mb_first_setup"]
    text = bench_data_scale.table(result)
    assert "first set-up" in text and "sampler alone, N = 10^9" in text
