"""The deploy helper, evaluate and predict on a small net trained here with the data layer:
the deploy net loads the snapshot and gives the TEST net's probabilities; evaluate's report
and predict's tags come from those probabilities; lists -> data layer round trip."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from paths import REPO
from PIL import Image

from python_layers.tools.cli import run

pytestmark = pytest.mark.caffe

CLASSES = ["top", "middle", "bottom"]
SIDE = 12


def write_images(folder, count: int, seed: int) -> list[tuple[str, list[str]]]:
    """Gray images with a bright band in the rows of each present class; (file, tags)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i in range(count):
        present = rng.random(len(CLASSES)) < 0.4
        pixels = rng.integers(0, 60, size=(SIDE, SIDE), dtype=np.uint8)
        for c in np.flatnonzero(present):
            pixels[4 * c : 4 * c + 4] += 150
        name = f"img_{i:03d}.png"
        Image.fromarray(pixels).save(folder / name)
        made.append((name, [CLASSES[c] for c in np.flatnonzero(present)]))
    return made


def train_net_text(folder) -> str:
    def data(phase: str, listed: str, shuffle: bool) -> str:
        keys = {
            "source": str(folder / listed),
            "root_folder": f"{folder / 'images'}/",
            "classes": 3,
            "batch_size": 10,
            "max_labels": 3,
            "is_color": False,
            "scale": 1 / 255,
            "shuffle": shuffle,
            "seed": 1,
        }
        return (
            f'layer {{ name: "data" type: "Python" top: "data" top: "labels" '
            f'python_param {{ module: "python_layers.multilabel_data" '
            f'layer: "MultiLabelImageDataLayer" param_str: {json.dumps(json.dumps(keys))} }} '
            f"param {{ lr_mult: 0 decay_mult: 0 }} include {{ phase: {phase} }} }}\n"
        )

    return (
        'name: "bands"\n'
        + data("TRAIN", "train.txt", True)
        + data("TEST", "val.txt", False)
        + 'layer { name: "scores" type: "InnerProduct" bottom: "data" top: "scores" '
        'inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.01 } } }\n'
        'layer { name: "loss" type: "Python" bottom: "scores" bottom: "labels" top: "loss" '
        'python_param { module: "python_layers.softmax_loss" layer: "SoftmaxLossLayer" '
        'param_str: \'{"targets": "labels"}\' } loss_weight: 1 }\n'
        'layer { name: "prob" type: "Softmax" bottom: "scores" top: "prob" '
        "include { phase: TEST } }\n"
    )


@pytest.fixture(scope="module")
def model(caffe, tmp_path_factory):
    """A CSV of tags -> the lists command -> a train net with the data layer (named "data", as
    hand-written nets name it) -> 60 SGD iterations -> a snapshot with the layer's state blob."""
    from python_layers.tools import lists

    folder = tmp_path_factory.mktemp("bands")
    made = write_images(folder / "images", 120, seed=7)
    rows = "".join(f"{name},{' '.join(tags)}\n" for name, tags in made)
    (folder / "tags.csv").write_text("path,tags\n" + rows)
    argv = ["table", str(folder / "tags.csv"), "--out", str(folder), "--val-fraction", "0.3"]
    argv += ["--seed", "1", "--order", "source"]
    assert lists.main(argv) == 0
    (folder / "train_val.prototxt").write_text(train_net_text(folder))
    (folder / "solver.prototxt").write_text(
        f'net: "{folder / "train_val.prototxt"}" base_lr: 0.5 lr_policy: "fixed" momentum: 0.9 '
        "max_iter: 60 display: 0 snapshot: 0 solver_mode: CPU random_seed: 1\n"
    )
    solver = caffe.SGDSolver(str(folder / "solver.prototxt"))
    solver.step(60)
    solver.net.save(str(folder / "bands.caffemodel"))
    return folder, made


def test_lists_round_trip_through_the_data_layer(model, caffe):
    folder, made = model
    tags = dict(made)
    net = caffe.Net(str(folder / "train_val.prototxt"), caffe.TEST)
    val = (folder / "val.txt").read_text().split("\n")[:-1]
    net.forward()
    for line, labels in zip(val, net.blobs["labels"].data):
        wanted = sorted(CLASSES.index(t) for t in tags[line.split()[0]])
        assert sorted(int(x) for x in labels if x >= 0) == wanted


def test_deploy_net_loads_the_snapshot_and_gives_the_test_nets_probabilities(model, caffe):
    from python_layers.deploy_net import data_layer, data_params, deploy_net
    from python_layers.inference import Predictor

    folder, _ = model
    deploy = deploy_net(folder / "train_val.prototxt")
    assert [layer.name for layer in deploy.layer] == ["input", "scores", "prob"]
    assert deploy.layer[0].type == "Input" and list(deploy.layer[0].top) == ["data"]
    assert list(deploy.layer[0].input_param.shape[0].dim) == [10, 1, SIDE, SIDE]
    (folder / "deploy.prototxt").write_text(str(deploy))
    test_net = caffe.Net(
        str(folder / "train_val.prototxt"), caffe.TEST, weights=str(folder / "bands.caffemodel")
    )
    paths = [line.split()[0] for line in (folder / "val.txt").read_text().splitlines()]
    expected = []
    for _ in range(-(-len(paths) // 10)):
        expected.append(test_net.forward()["prob"].copy())
    expected = np.concatenate(expected)[: len(paths)]
    keys = data_params(data_layer(folder / "train_val.prototxt"))
    got = Predictor(folder / "deploy.prototxt", folder / "bands.caffemodel", keys)
    probs = got.probabilities(paths)
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-6)
    assert probs.argmax(axis=1).tolist() != [0] * len(paths)  # it learned something


def test_an_input_named_like_the_data_layer_cannot_load_the_snapshot(model, tmp_path):
    """The trap the helper avoids: Caffe aborts (issue 18, item 5)."""
    from python_layers.deploy_net import deploy_net

    folder, _ = model
    trap = deploy_net(folder / "train_val.prototxt")  # its Input then renamed as the data layer
    next(layer for layer in trap.layer if layer.name == "input").name = "data"
    (tmp_path / "trap.prototxt").write_text(str(trap))
    code = "import caffe; caffe.Net({!r}, caffe.TEST, weights={!r})".format(
        str(tmp_path / "trap.prototxt"),
        str(folder / "bands.caffemodel"),
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "Incompatible number of blobs for layer data" in done.stderr


def test_deploy_command_writes_the_same_net(model, tmp_path):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    from python_layers.tools import deploy

    folder, _ = model
    out = tmp_path / "deploy.prototxt"
    assert (
        run(
            "multilabel-deploy",
            deploy.main,
            [str(folder / "train_val.prototxt"), "-o", str(out), "--shape", "1,1,12,12"],
        )
        == 0
    )
    net = text_format.Parse(out.read_text(), caffe_pb2.NetParameter())
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 1, 12, 12]
    assert run("multilabel-deploy", deploy.main, [str(tmp_path / "missing.prototxt")]) == 2


def test_evaluate_command_reports_the_nets_numbers(model, tmp_path):
    from python_layers.deploy_net import data_layer, data_params
    from python_layers.inference import Predictor
    from python_layers.tools import evaluate, scoring

    folder, _ = model
    argv = [
        "--net",
        str(folder / "train_val.prototxt"),
        "--weights",
        str(folder / "bands.caffemodel"),
        "--list",
        str(folder / "val.txt"),
        "--classes",
        str(folder / "classes.txt"),
        "--val-list",
        str(folder / "train.txt"),
        "--out",
        str(tmp_path / "report.json"),
        "--plot",
        str(tmp_path / "report.png"),
        "--quiet",
    ]
    assert run("multilabel-evaluate", evaluate.main, argv) == 0
    got = json.loads((tmp_path / "report.json").read_text())
    keys = data_params(data_layer(folder / "train_val.prototxt"))
    predictor = Predictor(folder / "deploy.prototxt", folder / "bands.caffemodel", keys)
    thresholds = scoring.choose_thresholds(*predictor.list_probabilities(folder / "train.txt", 3))
    paths = [line.split()[0] for line in (folder / "val.txt").read_text().splitlines()]
    relevant = np.zeros((len(paths), 3), bool)
    for row, line in enumerate((folder / "val.txt").read_text().splitlines()):
        relevant[row, [int(c) for c in line.split()[1:]]] = True  # the list, read here
    expected = evaluate.report(
        predictor.probabilities(paths), relevant, CLASSES, (1, 3, 5), thresholds
    )
    for key in (
        "map",
        "precision_at_k",
        "recall_at_k",
        "per_class_ap",
        "thresholds",
        "f1_global_threshold",
        "f1_per_class_thresholds",
    ):
        assert got[key] == json.loads(json.dumps(expected[key])), key  # the same probabilities
    assert got["map"] > 0.7  # chance: about 0.4 (the share of positives)
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = [*argv[:4], "--list", str(tmp_path / "nope.txt"), "--classes"]
    missing.append(str(folder / "classes.txt"))
    assert run("multilabel-evaluate", evaluate.main, missing) == 2


def test_predict_command_top_k_and_thresholds(model, tmp_path, capsys):
    from python_layers.deploy_net import data_layer, data_params
    from python_layers.inference import Predictor
    from python_layers.tools import predict

    folder, made = model
    images = [str(folder / "images" / name) for name, _ in made[:7]]
    common = [
        "--deploy",
        str(folder / "deploy.prototxt"),
        "--net",
        str(folder / "train_val.prototxt"),
        "--weights",
        str(folder / "bands.caffemodel"),
        "--classes",
        str(folder / "classes.txt"),
        "--quiet",
    ]
    assert run("multilabel-predict", predict.main, [*common, *images, "--top-k", "2"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    keys = data_params(data_layer(folder / "train_val.prototxt"))
    probs = Predictor(folder / "deploy.prototxt", folder / "bands.caffemodel", keys).probabilities(
        images
    )
    for row, path, p in zip(rows, images, probs):
        order = np.argsort(-p, kind="stable")[:2]
        assert row["path"] == path
        assert [t["class"] for t in row["tags"]] == order.tolist()
        assert [t["name"] for t in row["tags"]] == [CLASSES[c] for c in order]
        assert [t["prob"] for t in row["tags"]] == pytest.approx(p[order], abs=1e-6)
    report = tmp_path / "report.json"
    report.write_text(
        json.dumps(
            {"thresholds": {"global": 0.3, "per_class": dict(zip(CLASSES, [0.2, 0.5, 0.9]))}}
        )
    )
    out = tmp_path / "tags.csv"
    argv = [*common, *images, "--thresholds", str(report), "--format", "csv", "-o", str(out)]
    assert run("multilabel-predict", predict.main, argv) == 0
    lines = out.read_text().splitlines()
    wanted = sum(int((p >= [0.2, 0.5, 0.9]).sum()) for p in probs)
    assert lines[0] == "path,rank,class,name,prob" and len(lines) == 1 + wanted
    assert run("multilabel-predict", predict.main, [*common, str(tmp_path / "nope.png")]) == 2
    assert "nope.png: no such file or folder" in capsys.readouterr().err


def test_predict_reads_a_list_with_a_bom_as_without(model, tmp_path, capsys):
    """--list is read as the data layer reads a list (a UTF-8 byte-order mark, as Windows'
    Notepad saves, ignored; before, the first path kept it and the image was not found)."""
    from python_layers.tools import predict

    folder, _ = model
    plain = (folder / "val.txt").read_bytes()
    (tmp_path / "plain.txt").write_bytes(plain)
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + plain)
    common = ["--net", str(folder / "train_val.prototxt"), "--classes", str(folder / "classes.txt")]
    common += ["--weights", str(folder / "bands.caffemodel"), "--quiet"]  # the deploy net: --net's
    outputs = []
    for name in ("plain.txt", "bom.txt"):
        argv = [*common, "--list", str(tmp_path / name)]
        assert run("multilabel-predict", predict.main, argv) == 0, capsys.readouterr().err
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    assert len(outputs[0].splitlines()) == len(plain.splitlines())


def doc_blocks(name: str, language: str) -> list[str]:
    text = (REPO / "docs" / name).read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


def test_the_docs_deploy_command_runs_as_written(model, tmp_path, monkeypatch):
    """docs/tools.md's `multilabel-deploy` line, in a folder laid out as it says (its Python
    and prototxt are run and parsed by test_docs.py)."""
    folder, _ = model
    work = tmp_path / "work"
    work.mkdir()
    (work / "train_val.prototxt").write_text((folder / "train_val.prototxt").read_text())
    monkeypatch.chdir(work)
    (command,) = [b for b in doc_blocks("tools.md", "sh") if "multilabel-deploy" in b]
    tool = Path(sys.prefix) / "bin" / "multilabel-deploy"
    args = shlex.split(command.strip())
    assert args[0] == "multilabel-deploy"
    subprocess.run([str(tool), *args[1:]], check=True)
    net = (work / "deploy.prototxt").read_text()
    assert 'name: "input"' in net and 'top: "data"' in net
