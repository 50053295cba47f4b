"""The list file's memory-mapped index: what it holds (against a plain-Python reading of the
list), every bad line named by file:line, rebuilt when the list changes, interrupted and
concurrent builds, and processes sharing its pages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from paths import REPO

from python_layers.data import index, index_writer
from python_layers.data.list_file import ListFileError


def write(tmp_path, text: str | bytes, name: str = "train.txt"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def reference(text: str):
    """The list read line by line in plain Python: (path, line, [(label, weight)]) per image."""
    images = []
    for number, line in enumerate(text.lstrip("\ufeff").split("\n"), start=1):
        tokens = line.split("#", 1)[0].split()
        if tokens:
            pairs = [t.partition(":") for t in tokens[1:]]
            images.append(
                (tokens[0], number, [(int(float(a)), float(w) if c else 1.0) for a, c, w in pairs])
            )
    return images


def assert_matches(built: index.Index, text: str, width: int = 20) -> None:
    expected = reference(text)
    assert len(built) == len(expected)
    assert [built.path(i) for i in range(len(built))] == [e[0] for e in expected]
    assert built.lines.tolist() == [e[1] for e in expected]
    labels, weights = built.targets(np.arange(len(built)), width)
    for row, (_, _, pairs) in enumerate(expected):
        assert labels[row].tolist() == [p[0] for p in pairs] + [-1] * (width - len(pairs))
        if weights is not None:
            np.testing.assert_allclose(weights[row, : len(pairs)], [p[1] for p in pairs])
    classes = max([p[0] for e in expected for p in e[2]], default=-1) + 1
    for c in range(classes):  # per-class lists: the images listing c with weight > 0, once
        having = sorted({i for i, e in enumerate(expected) for p in e[2] if p[0] == c and p[1]})
        start, end = built.class_offsets[c], built.class_offsets[c + 1]
        assert built.members[start:end].tolist() == having


def test_comments_weights_blank_lines_an_unlabelled_image_and_a_bom(tmp_path):
    text = (
        "\ufeff# images\n\na/1.jpg 3 1\nb/2.jpg 2:0.5 0:2  # weighted\n\nc/3.jpg\nd/4.jpg 4 3.0 4\n"
    )
    built = index.open_index(write(tmp_path, text))
    assert built.path(0) == "a/1.jpg"  # the byte-order mark is not part of the first path
    assert built.where(2) == f"{tmp_path / 'train.txt'}:6"
    assert_matches(built, text, width=3)
    assert built.class_counts(6).tolist() == [1, 1, 1, 2, 1, 0]  # "4 3.0 4": class 4 once


def test_random_lists_in_tiny_blocks_equal_the_line_by_line_reading(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    lines = []
    for i in range(800):
        kind = rng.integers(6)
        labels = rng.integers(0, 300, rng.integers(0, 9))
        weighted = kind == 0
        tokens = [f"{c}:{rng.uniform(0, 2):.3f}" if weighted else str(c) for c in labels]
        comment = "  # note: 1 2" if kind == 1 else ""
        lines.append("" if kind == 2 else f"{i}/img_{i}.jpg " + " ".join(tokens) + comment)
    text = "\n".join(lines)  # no newline at the end
    for block_bytes, name in ((13, "tiny.txt"), (1 << 23, "whole.txt")):
        monkeypatch.setattr(index_writer, "BLOCK_BYTES", block_bytes)
        built = index.open_index(write(tmp_path, text, name))
        assert_matches(built, text)
        assert built.weights is not None


def test_the_smallest_types_that_fit(tmp_path):
    small = index.open_index(write(tmp_path, "a.jpg 255\n", "small.txt"))
    large = index.open_index(write(tmp_path, "a.jpg 16999 3\n", "large.txt"))
    assert small.labels.dtype == np.uint8 and large.labels.dtype == np.uint16
    assert small.path_offsets.dtype == np.uint32 and small.members.dtype == np.uint32
    assert small.weights is None


@pytest.mark.parametrize(
    "line,message",
    [
        ("x.jpg 5", r"train\.txt:2: label '5' is not an integer in \[0, 5\) \(classes: 5\)"),
        ("x.jpg -1", r"train\.txt:2: label '-1' is not an integer >= 0$"),
        ("x.jpg 1.5", r"train\.txt:2: label '1\.5' is not an integer >= 0$"),
        ("x.jpg 3 cat", r"train\.txt:2: label 'cat' is not an integer >= 0$"),
        ("x.jpg 3:abc", r"train\.txt:2: weight 'abc' of label 3 is not a finite number >= 0"),
        ("x.jpg 3:-1", r"train\.txt:2: weight '-1' of label 3"),
        ("x.jpg 3:nan", r"train\.txt:2: weight 'nan' of label 3"),
        ("x.jpg 3:", r"train\.txt:2: weight '' of label 3"),
        (
            "x.jpg 9999999999",
            r"train\.txt:2: label '9999999999' is not an integer >= 0 "
            r"\(at most 2\^31 - 1\)",
        ),
        ("x.jpg 0 1 2 3", r"train\.txt:2: 4 labels, more than max_labels = 3"),
        (
            "my photo.jpg 3",
            r"train\.txt:2: label 'photo\.jpg' is not an integer >= 0; if it is "
            r"part of the image's path: paths cannot contain whitespace",
        ),
    ],
)
def test_each_bad_line_is_named_by_file_and_line(tmp_path, line, message):
    with pytest.raises(ListFileError, match=message):
        index.open_index(write(tmp_path, f"ok.jpg 0\n{line}\nok.jpg 1\n")).check(5, 3)


def test_a_missing_or_empty_list_file(tmp_path):
    with pytest.raises(ListFileError, match=r"nope\.txt: the list file does not exist"):
        index.open_index(tmp_path / "nope.txt")
    with pytest.raises(ListFileError, match=r"train\.txt: the list file names no image"):
        index.open_index(write(tmp_path, "\ufeff# nothing\n\n"))


def test_a_changed_list_is_indexed_again(tmp_path):
    path = write(tmp_path, "a.jpg 1\nb.jpg 2\n")
    first = index.open_index(path)
    assert index.open_index(path).header == first.header  # unchanged: the same index
    stat = os.stat(path)
    path.write_text("a.jpg 1\nb.jpg 3\n")  # same size; even with the old mtime put back
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = index.open_index(path)
    assert again.digest != first.digest
    assert again.targets(np.array([1]), 1)[0].tolist() == [[3]]


def test_an_interrupted_build_leaves_nothing_that_is_reused(tmp_path, monkeypatch):
    path = write(tmp_path, "a.jpg 1\nb.jpg 2\n")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_writer, "_members", interrupted)
    with pytest.raises(KeyboardInterrupt):
        index.open_index(path)
    target = index.index_path(path)
    assert not target.exists()
    monkeypatch.undo()
    (target.parent / f"{target.name}.tmp-killed").mkdir()  # a killed build's folder
    assert len(index.open_index(path)) == 2
    assert sorted(p.name for p in target.parent.glob(f"{target.name}*")) == [
        target.name,
        f"{target.name}.lock",
    ]


def test_indexes_of_deleted_lists_are_removed_by_the_next_build(tmp_path):
    gone = write(tmp_path, "a.jpg 1\n", "temporary.txt")
    index.open_index(gone)
    gone.unlink()
    index.open_index(write(tmp_path, "b.jpg 2\n", "next.txt"))
    assert not index.index_path(gone).exists()
    assert not Path(f"{index.index_path(gone)}.lock").exists()


RACE = """
import sys, time
from python_layers.data import index
from python_layers.data import index_file
built = []
original = index_file.build
index_file.build = lambda *a: (built.append(1), original(*a))
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
opened = index.open_index(sys.argv[1])
print(len(built), len(opened), opened.digest)
"""


def test_processes_starting_together_build_once(tmp_path):
    lines = [f"img/{i}.jpg {i % 7} {i % 11}" for i in range(50_000)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    start = str(time.time() + 2)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, str(path), start],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [child.communicate(timeout=120)[0].split() for child in children]
    assert sum(int(r[0]) for r in results) == 1  # one built, three waited and mapped it
    assert {(r[1], r[2]) for r in results} == {("50000", index.open_index(path).digest)}


SHARE = """
import json, sys
import numpy as np
from python_layers.data import index
opened = index.open_index(sys.argv[1])
for array in (opened.path_bytes, opened.lines, opened.labels, opened.members):
    array.sum()  # read every page
mapping, fields = None, {}
for line in open("/proc/self/smaps"):
    first = line.split()[0]
    if not first.endswith(":"):  # a mapping's first line: address range ... path
        mapping = line.split()[-1]
    elif mapping.endswith(".idx") and line.rstrip().endswith(" kB"):
        fields[first[:-1]] = fields.get(first[:-1], 0) + int(line.split()[1])
print(json.dumps(fields), flush=True)
sys.stdin.read()
"""


def test_two_processes_share_the_index_pages(tmp_path):
    """Both map the index and read all of it: its pages are shared (page cache), not copied."""
    lines = [f"images/{i:08d}.jpg {i % 300} {(i * 7) % 300} {i % 5}" for i in range(200_000)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    index.open_index(path)
    size_kb = os.path.getsize(index.index_path(path)) / 1024
    children, seen = [], []
    for _ in range(2):  # the second starts when the first holds the pages, and reads them too
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", SHARE, str(path)],
                cwd=REPO,
                text=True,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        )
        seen.append(json.loads(children[-1].stdout.readline()))
    for child in children:
        child.communicate("", timeout=60)
    for fields in seen:  # page-cache pages (dirty until written back), never anonymous
        assert fields["Rss"] > 0.5 * size_kb and fields["Anonymous"] == 0
    shared = seen[1]["Shared_Clean"] + seen[1]["Shared_Dirty"]
    assert shared > 0.5 * size_kb  # the second process shares the first one's pages


def test_class_groups_spilled_to_files_give_the_same_index(tmp_path, monkeypatch):
    """Per-class lists larger than memory are built a class group at a time from spill files
    (an external bucket sort); the index is the same as the one built in one group."""
    rng = np.random.default_rng(23)
    lines = []
    for i in range(3000):
        labels = (rng.zipf(1.5, rng.integers(0, 7)) - 1) % 400
        weighted = i % 5 == 0
        tokens = [f"{c}:{rng.choice([0, 0.5, 2])}" if weighted else str(c) for c in labels]
        lines.append(f"d/{i}.jpg " + " ".join(tokens))
    text = "\n".join(lines) + "\n"
    whole = index.open_index(write(tmp_path, text, "whole.txt"))
    bounds = []
    groups = index_writer.class_groups
    monkeypatch.setattr(
        index_writer, "class_groups", lambda *a: bounds.append(groups(*a)) or bounds[-1]
    )
    monkeypatch.setattr(index_writer, "MEMBERS_BYTES", 512)  # 128 images a group
    monkeypatch.setattr(index_writer, "CHUNK", 700)  # several chunks, so several runs a group
    grouped = index.open_index(write(tmp_path, text, "grouped.txt"))
    assert len(bounds[0]) > 20  # the spilled path, with many groups
    assert (np.diff(bounds[0]) > 0).all() and bounds[0][-1] == len(grouped.class_offsets) - 1
    np.testing.assert_array_equal(grouped.class_offsets, whole.class_offsets)
    np.testing.assert_array_equal(grouped.members, whole.members)
    assert_matches(grouped, text, width=8)
    assert not list(tmp_path.glob("**/group-*"))  # spill files removed


def test_class_groups_respect_the_budget_and_the_file_cap(monkeypatch):
    offsets = np.concatenate([[0], np.cumsum([5, 1, 300, 2, 2, 2, 0, 7])])
    monkeypatch.setattr(index_writer, "MEMBERS_BYTES", 40)  # 10 uint32 images
    bounds = index_writer.class_groups(offsets, 4)
    sizes = np.diff(offsets[bounds])
    assert bounds[0] == 0 and bounds[-1] == 8
    assert all(s <= 10 or n == 1 for s, n in zip(sizes, np.diff(bounds)))  # big class alone
    monkeypatch.setattr(index_writer, "MAX_GROUPS", 4)
    assert len(index_writer.class_groups(offsets, 4)) - 1 <= 4


def test_the_build_index_command_says_built_or_reused_and_exits_2_on_bad_labels(tmp_path, capsys):
    from python_layers.data import build_index

    path = write(tmp_path, "a.jpg 1\nb.jpg 2 0\n")
    assert build_index.main([str(path), "--quiet", "--classes", "3"]) == 0
    assert "2 images, 3 classes seen, index built: " in capsys.readouterr().out
    assert build_index.main([str(path), "--quiet"]) == 0
    assert "index reused: " in capsys.readouterr().out
    path.write_text("a.jpg 1\nb.jpg 2 0\n\n")  # another list: built again
    assert build_index.main([str(path), "--quiet"]) == 0
    assert "index built: " in capsys.readouterr().out
    assert build_index.main([str(path), "--quiet", "--classes", "2"]) == 2
    assert "train.txt:2: label '2' is not an integer in [0, 2)" in capsys.readouterr().err
