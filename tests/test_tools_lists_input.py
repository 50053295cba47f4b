"""The lists command on awkward input: line breaks inside tags, COCO names shared by two ids,
deep JSON, long CSV fields, bytes that are not UTF-8, a closed pipe; VOC's image sets, dropped
tags named, --lowercase, and each format's own --help."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_tools_lists import convert, read, voc_xml

from python_layers.tools.cli import read_classes


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85", "\v", "\f", "\x1c", "\x1e"])
def test_a_tag_with_a_line_break_is_refused_at_its_line(tmp_path, capsys, separator):
    (tmp_path / "t.jsonl").write_text(
        json.dumps({"path": "a.png", "tags": ["ok"]})
        + "\n"
        + json.dumps({"path": "b.png", "tags": [f"sea{separator}side"]})
        + "\n",
        encoding="utf-8",
    )
    assert convert("jsonl", tmp_path / "t.jsonl", "--out", tmp_path / "o") == 2
    assert "t.jsonl:2: tags: expected a tag name (non-empty text, one line" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_classes_txt_is_read_by_newline_only(tmp_path):
    # a classes.txt written by another tool with such a name keeps its class indices
    (tmp_path / "classes.txt").write_text("sea\u2028side\nsun\x1cset\r\nsky\n", encoding="utf-8")
    assert read_classes(tmp_path / "classes.txt") == ["sea\u2028side", "sun\x1cset", "sky"]


def test_coco_categories_sharing_a_name_stay_apart(tmp_path):
    coco = {
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 17},
            {"id": 2, "image_id": 2, "category_id": 4},
            {"id": 3, "image_id": 2, "category_id": 9},
        ],
        "categories": [
            {"id": 17, "name": "cat"},
            {"id": 4, "name": "cat"},
            {"id": 9, "name": "dog"},
        ],
    }
    (tmp_path / "c.json").write_text(json.dumps(coco))
    out = tmp_path / "o"
    assert convert("coco", tmp_path / "c.json", "--out", out, "--order", "source") == 0
    assert read(out / "classes.txt") == ["cat (id 4)", "dog", "cat (id 17)"]
    assert read(out / "train.txt") == ["a.jpg 2", "b.jpg 0 1"]


def _write(path, data: bytes) -> None:
    path.write_bytes(data)


@pytest.mark.parametrize(
    ("kind", "name", "data", "message"),
    [
        (
            "coco",
            "c.json",
            b'{"images":\n' + b"[" * 100_000 + b"]" * 100_000 + b"}",
            "c.json:2: JSON nested",
        ),
        (
            "jsonl",
            "t.jsonl",
            b'{"path": "a.png"}\n' + b"[" * 5000 + b"\n",
            "t.jsonl:2: JSON nested",
        ),
        (
            "table",
            "t.csv",
            b'path,tags\na.png,x\nb.png,"' + b"y" * 200_000 + b'"\n',
            "t.csv:3: not CSV (field larger",
        ),
        (
            "table",
            "t.csv",
            "path,tags\na.png,x\nb.png,caf\u00e9\n".encode("latin-1"),
            "t.csv:3: expected UTF-8 text, got byte 0xe9",
        ),
        (
            "jsonl",
            "t.jsonl",
            '{"path": "\u00e9.png"}\n'.encode("latin-1"),
            "t.jsonl:1: expected UTF-8 text",
        ),
    ],
)
def test_awkward_files_give_one_line_at_file_and_line(tmp_path, capsys, kind, name, data, message):
    _write(tmp_path / name, data)
    assert convert(kind, tmp_path / name, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert err.startswith("multilabel-lists: error: ") and err.count("\n") == 1, err[:300]
    assert message in err


def test_a_closed_pipe_ends_quietly(tmp_path):
    (tmp_path / "t.csv").write_text("path,tags\n" + "".join(f"{i}.png,t{i}\n" for i in range(50)))
    argv = [sys.executable, "-m", "python_layers.tools.lists", "table", str(tmp_path / "t.csv")]
    process = subprocess.Popen(
        [*argv, "--out", str(tmp_path / "o")], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    process.stdout.close()  # as `| head -0` does: the reader is gone before the summary
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 1
    assert err == ""  # no BrokenPipeError traceback, no "Exception ignored"
    assert len(read(tmp_path / "o" / "train.txt")) == 50


def voc_folder(tmp_path, sets: dict[str, list[str]]):
    root = tmp_path / "VOC2012"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    names = {"2008_000001": ["cat"], "2008_000002": ["dog"], "2008_000003": ["Cat", "dog"]}
    for stem, objects in names.items():
        xml = voc_xml(f"{stem}.jpg", [(name, 0) for name in objects])
        (root / "Annotations" / f"{stem}.xml").write_text(xml)
    for name, ids in sets.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    (root / "ImageSets" / "Main" / "cat_train.txt").write_text("2008_000001  1\n")
    return root


def test_voc_reads_its_image_sets(tmp_path):
    root = voc_folder(tmp_path, {"train": ["2008_000003", "2008_000001"], "val": ["2008_000002"]})
    out = tmp_path / "o"
    assert convert("voc", root, "--out", out, "--image-set", "train", "--order", "name") == 0
    assert read(out / "train.txt") == [
        "JPEGImages/2008_000003.jpg 0 2",
        "JPEGImages/2008_000001.jpg 1",
    ]
    classes = out / "classes.txt"
    # the image set's file itself, as VOC users pass it: the list is named after it
    argv = ["--out", out, "--classes", classes]
    assert convert("voc", root / "ImageSets" / "Main" / "val.txt", *argv) == 0
    assert read(out / "val.txt") == ["JPEGImages/2008_000002.jpg 2"]


def test_voc_image_set_errors_name_the_place(tmp_path, capsys):
    root = voc_folder(tmp_path, {"train": ["2008_000001", "2008_000009"]})
    assert convert("voc", root, "--out", tmp_path / "o", "--image-set", "train") == 2
    assert "ImageSets/Main/train.txt:2: image 2008_000009 has no" in capsys.readouterr().err
    assert convert("voc", root, "--out", tmp_path / "o", "--image-set", "tarin") == 2
    assert "tarin.txt: no such image set (found: train)" in capsys.readouterr().err


def test_dropped_tags_are_named_with_counts_and_a_place(tmp_path, capsys):
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    rows = "path,tags\n1.png,cat dgo\n2.png,Cat dgo\n3.png,dog\n4.png,bird\n"
    (tmp_path / "t.csv").write_text(rows)
    argv = [
        "table",
        tmp_path / "t.csv",
        "--out",
        tmp_path / "o",
        "--classes",
        tmp_path / "classes.txt",
    ]
    assert convert(*argv) == 0
    said = capsys.readouterr().out
    place = tmp_path / "t.csv"
    assert (
        f"dropped tags: 'dgo' 2 (first: {place}:2), 'Cat' 1 (first: {place}:3), "
        f"'bird' 1 (first: {place}:5)"
    ) in said
    assert convert(*argv, "--lowercase") == 0
    assert read(tmp_path / "o" / "train.txt") == ["1.png 0", "2.png 0", "3.png 1", "4.png"]


def test_voc_lowercase_merges_cased_names(tmp_path):
    root = voc_folder(tmp_path, {})
    out = tmp_path / "o"
    assert convert("voc", root, "--out", out, "--order", "name") == 0
    assert read(out / "classes.txt") == ["Cat", "cat", "dog"]  # case-sensitive by default
    assert convert("voc", root, "--out", out, "--order", "name", "--lowercase") == 0
    assert read(out / "classes.txt") == ["cat", "dog"]


@pytest.mark.parametrize(
    ("kind", "own", "others"),
    [
        ("voc", ["--image-set", "--difficult"], ["--tags-column", "--descriptions"]),
        ("table", ["--tags-column", "--weights"], ["--difficult", "--image-set"]),
        ("openimages", ["--descriptions", "--suffix"], ["--difficult", "--tags-column"]),
    ],
)
def test_each_format_help_shows_its_own_options(kind, own, others):
    module = "python_layers.tools.lists"
    done = subprocess.run(
        [sys.executable, "-m", module, kind, "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert all(option in done.stdout for option in [*own, "--out", "--lowercase"]), done.stdout
    assert not any(option in done.stdout for option in others), done.stdout


def test_classes_txt_with_a_byte_order_mark_reads_as_without(tmp_path):
    (tmp_path / "classes.txt").write_bytes(b"\xef\xbb\xbfcat\ndog\n")
    assert read_classes(tmp_path / "classes.txt") == ["cat", "dog"]
