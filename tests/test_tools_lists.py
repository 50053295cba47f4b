"""The lists command: each annotation format, written as its official tools write it, gives
the expected list files and classes.txt; vocabulary, split, summary, and errors."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from python_layers.tools import lists
from python_layers.tools.cli import run


def convert(*argv: str) -> int:
    return run("multilabel-lists", lists.main, [str(a) for a in argv])


def read(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_coco_categories_of_annotations_in_category_id_order(tmp_path):
    coco = {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 4, "height": 4},
            {"id": 3, "file_name": "b.jpg", "width": 4, "height": 4},
            {"id": 9, "file_name": "c.jpg", "width": 4, "height": 4},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 18, "bbox": [0, 0, 1, 1], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0},
            {"id": 3, "image_id": 7, "category_id": 18, "bbox": [1, 1, 1, 1], "iscrowd": 0},
            {"id": 4, "image_id": 3, "category_id": 18, "bbox": [0, 0, 2, 2], "iscrowd": 1},
        ],
        "categories": [
            {"id": 18, "name": "dog", "supercategory": "animal"},
            {"id": 1, "name": "person", "supercategory": "person"},
            {"id": 44, "name": "bottle", "supercategory": "kitchen"},
        ],
    }
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    out = tmp_path / "lists"
    argv = ["coco", tmp_path / "instances.json", "--out", out, "--order", "source"]
    assert convert(*argv, "--prefix", "train2017/") == 0
    assert read(out / "classes.txt") == ["person", "dog"]  # no image has a bottle
    assert read(out / "train.txt") == [
        "train2017/a.jpg 0 1",
        "train2017/b.jpg 1",
        "train2017/c.jpg",
    ]
    assert convert(*argv, "--min-count", "0") == 0
    assert read(out / "classes.txt") == ["person", "dog", "bottle"]


def voc_xml(filename: str, objects: list[tuple[str, int]]) -> str:
    parts = [f"<annotation><folder>VOC2012</folder><filename>{filename}</filename>"]
    parts += [
        f"<object><name>{name}</name><pose>Left</pose><truncated>0</truncated>"
        f"<difficult>{hard}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax>"
        "<ymax>2</ymax></bndbox></object>"
        for name, hard in objects
    ]
    return "".join(parts) + "</annotation>"


@pytest.mark.parametrize(
    ("difficult", "expected"),
    [
        ("include", ["JPEGImages/1.jpg 0 1", "JPEGImages/2.jpg 1"]),
        ("exclude", ["JPEGImages/1.jpg 0", "JPEGImages/2.jpg 1"]),
    ],
)
def test_voc_objects_and_the_difficult_choice(tmp_path, difficult, expected):
    folder = tmp_path / "VOC2012" / "Annotations"
    folder.mkdir(parents=True)
    (folder / "1.xml").write_text(voc_xml("1.jpg", [("cat", 0), ("dog", 1)]))
    (folder / "2.xml").write_text(voc_xml("2.jpg", [("dog", 0), ("dog", 0)]))
    out = tmp_path / "lists"
    assert (
        convert(
            "voc", tmp_path / "VOC2012", "--out", out, "--difficult", difficult, "--order", "name"
        )
        == 0
    )
    assert read(out / "classes.txt") == ["cat", "dog"]
    assert read(out / "train.txt") == expected


def test_openimages_positives_and_verified_negatives(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text(
        "ImageID,Source,LabelName,Confidence\n"
        "000a1,verification,/m/01g317,1\n"
        "000a1,verification,/m/0bt9lr,0\n"
        "000b2,crowdsource-verification,/m/0bt9lr,1\n"
        "000c3,verification,/m/01g317,0\n"
    )
    (tmp_path / "descriptions.csv").write_text(
        "LabelName,DisplayName\n/m/0bt9lr,Dog\n/m/01g317,Person\n"
    )
    out = tmp_path / "lists"
    assert (
        convert(
            "openimages",
            tmp_path / "labels.csv",
            "--descriptions",
            tmp_path / "descriptions.csv",
            "--out",
            out,
            "--order",
            "source",
        )
        == 0
    )
    assert read(out / "classes.txt") == ["Dog", "Person"]
    assert read(out / "train.txt") == ["000a1.jpg 1", "000b2.jpg 0", "000c3.jpg"]
    said = capsys.readouterr().out
    assert "verified negatives: 2" in said and "images without labels: 1" in said


def test_table_with_weights_and_jsonl_give_the_same_lists(tmp_path):
    (tmp_path / "tags.tsv").write_text("file\tkeywords\nx.png\tsun:0.5 sea:2\ny.png\tsea:1\n")
    (tmp_path / "tags.jsonl").write_text(
        '{"file": "x.png", "keywords": {"sun": 0.5, "sea": 2}}\n\n'
        '{"file": "y.png", "keywords": ["sea"]}\n'
    )
    for name in ("tags.tsv", "tags.jsonl"):
        kind = "table" if name.endswith("tsv") else "jsonl"
        out = tmp_path / name.replace(".", "_")
        extra = ["--weights"] if kind == "table" else []
        assert (
            convert(
                kind,
                tmp_path / name,
                "--out",
                out,
                "--path-column",
                "file",
                "--tags-column",
                "keywords",
                *extra,
            )
            == 0
        )
        assert read(out / "classes.txt") == ["sea", "sun"]
        assert read(out / "train.txt") == ["x.png 0:2 1:0.5", "y.png 0"]  # weight 1: plain


def test_vocabulary_min_count_top_k_and_dropped_tags(tmp_path, capsys):
    rows = ["path,tags"] + [
        f"{i}.png,common {'mid' if i < 3 else ''} {'rare' if i == 0 else ''}" for i in range(5)
    ]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "a"
    assert convert("table", tmp_path / "t.csv", "--out", out, "--min-count", "2") == 0
    assert read(out / "classes.txt") == ["common", "mid"]
    assert read(out / "train.txt")[0] == "0.png 0 1"
    assert "classes: 2 of 3 in the annotations (1 tags outside the vocabulary dropped)" in (
        capsys.readouterr().out
    )
    assert (
        convert(
            "table", tmp_path / "t.csv", "--out", tmp_path / "b", "--top-k", "1", "--drop-empty"
        )
        == 0
    )
    assert read(tmp_path / "b" / "classes.txt") == ["common"]
    assert len(read(tmp_path / "b" / "train.txt")) == 5


def test_split_is_seeded_stable_and_near_the_fraction(tmp_path):
    paths = [f"img_{i:05d}.png" for i in range(4000)]
    val = {p for p in paths if lists.in_validation(p, 3, 0.2)}
    assert abs(len(val) / len(paths) - 0.2) < 0.02  # binomial sd 0.0063
    more = paths + [f"new_{i}.png" for i in range(500)]
    assert {p for p in more if lists.in_validation(p, 3, 0.2)} & set(paths) == val
    assert {p for p in paths if lists.in_validation(p, 4, 0.2)} != val
    (tmp_path / "t.csv").write_text("path,tags\n" + "".join(f"{p},a\n" for p in paths[:200]))
    for seed_dir in ("one", "two"):
        convert(
            "table",
            tmp_path / "t.csv",
            "--out",
            tmp_path / seed_dir,
            "--val-fraction",
            "0.25",
            "--seed",
            "3",
        )
    assert read(tmp_path / "one" / "val.txt") == read(tmp_path / "two" / "val.txt")
    got = {line.split()[0] for line in read(tmp_path / "one" / "val.txt")}
    assert got == {p for p in paths[:200] if lists.in_validation(p, 3, 0.25)}


def test_fixed_vocabulary_for_a_second_split(tmp_path):
    (tmp_path / "classes.txt").write_text("b\na\n")
    (tmp_path / "t.csv").write_text("path,tags\n1.png,a c\n2.png,b\n")
    assert (
        convert(
            "table",
            tmp_path / "t.csv",
            "--out",
            tmp_path / "o",
            "--classes",
            tmp_path / "classes.txt",
            "--name",
            "val",
        )
        == 0
    )
    assert read(tmp_path / "o" / "val.txt") == ["1.png 1", "2.png 0"]
    assert read(tmp_path / "o" / "classes.txt") == ["b", "a"]


@pytest.mark.parametrize(
    ("kind", "name", "text", "message"),
    [
        (
            "table",
            "t.csv",
            "path,tags\na.png,x\nb c.png,y\n",
            "t.csv:3: image path 'b c.png' has whitespace",
        ),
        ("table", "t.csv", "image,tags\na.png,x\n", "t.csv:2: no column 'path' in the header"),
        ("table", "t.csv", "path,tags\na.png,x:oops\n", None),
        (
            "jsonl",
            "t.jsonl",
            '{"path": "a.png", "tags": ["x"]}\n{"path": "b.png", "tags": 3}\n',
            "t.jsonl:2: 'tags': expected a list of tags",
        ),
        ("jsonl", "t.jsonl", '{"path": "a.png"\n', "t.jsonl:1: not JSON"),
        ("table", "t.csv", "path,tags\na.png,x\na.png,y\n", "t.csv:3: image a.png again (first: "),
        (
            "coco",
            "c.json",
            '{"images": [{"id": 1, "file_name": "a.jpg"}], "categories": '
            '[{"id": 1, "name": "x"}], "annotations": [{"image_id": 2, "category_id": 1}]}',
            "c.json: annotations[0].image_id: 2 is not the id of any images[] entry",
        ),
        (
            "openimages",
            "o.csv",
            "ImageID,Source,LabelName,Confidence\na,x,/m/1,0.7\n",
            "o.csv:2: Confidence: expected 1 (a label) or 0",
        ),
    ],
)
def test_bad_input_names_the_place(tmp_path, capsys, kind, name, text, message):
    (tmp_path / name).write_text(text)
    extra = ["--weights"] if message is None else []
    assert convert(kind, tmp_path / name, "--out", tmp_path / "o", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("multilabel-lists: error: ")
    assert (message or "t.csv:2: expected tag:weight (a weight >= 0), got 'x:oops'") in err


def test_voc_bad_xml_names_file_and_line(tmp_path, capsys):
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "Annotations" / "1.xml").write_text(
        "<annotation>\n<filename>1.jpg</filename>\n<object>"
    )
    assert convert("voc", tmp_path, "--out", tmp_path / "o") == 2
    assert f"{tmp_path / 'Annotations' / '1.xml'}:3: not XML" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["lists", "deploy", "evaluate", "predict", "caffe_tool"])
def test_help_and_usage_exit_codes(command):
    module = f"python_layers.tools.{command}"
    done = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "multilabel-" in done.stdout, done.stderr
    if command != "caffe_tool":
        bad = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True)
        assert bad.returncode == 2 and "error:" in bad.stderr


def test_summary_counts(tmp_path, capsys):
    rng = np.random.default_rng(11)
    counts = rng.integers(0, 4, size=30)
    lines = [f"{i}.png," + " ".join(f"t{j}" for j in range(k)) for i, k in enumerate(counts)]
    (tmp_path / "t.csv").write_text("path,tags\n" + "\n".join(lines) + "\n")
    assert convert("table", tmp_path / "t.csv", "--out", tmp_path / "o") == 0
    said = capsys.readouterr().out
    assert "images: 30 (train 30)" in said
    assert f"labels per image: mean {counts.mean():.2f}, median {np.median(counts):g}" in said
    assert f"images without labels: {(counts == 0).sum()}" in said
    assert f"most frequent: t0 {(counts > 0).sum()}, t1 {(counts > 1).sum()}" in said


def test_a_format_is_its_entry_in_annotations(tmp_path, monkeypatch):
    """A new annotation format is a reader and its FORMATS entry in annotations.py: the lists
    command offers it, with its own options, and writes its lists (no other file to edit)."""
    from python_layers.tools import annotations

    def options(parser):
        parser.add_argument("--tag", default="thing")

    def read_names(args):
        paths = args.annotations.read_text().split()
        records = [annotations.Record(args.prefix + p, {args.tag: 1.0}, p) for p in paths]
        return annotations.Annotations(records, [args.tag])

    kind = annotations.Format("one path a line, one tag for all", read_names, options)
    monkeypatch.setitem(annotations.FORMATS, "names", kind)
    (tmp_path / "names.txt").write_text("a.png\nb.png\n")
    assert convert("names", tmp_path / "names.txt", "--out", tmp_path / "out", "--tag", "cat") == 0
    assert read(tmp_path / "out" / "train.txt") == ["a.png 0", "b.png 0"]
    assert read(tmp_path / "out" / "classes.txt") == ["cat"]
