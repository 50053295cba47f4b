"""The example as a user's route (make route): the commands in docs/tools.md are the ones the
route runs, and the route runs them (small data, a short schedule) to a report and tags."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import numpy as np
import pytest

from examples.digits_multilabel import data

REPO = Path(__file__).resolve().parent.parent


def doc_commands() -> list[list[str]]:
    text = (REPO / "docs" / "tools.md").read_text()
    block = re.search(r"```sh\n# make route runs:\n(.*?)```", text, re.S).group(1)
    joined = block.replace("\\\n", " ")
    return [shlex.split(line) for line in joined.splitlines() if line.strip()]


def test_docs_show_the_commands_the_route_runs():
    pytest.importorskip("caffe")
    from examples.digits_multilabel import route

    images = data.DEFAULT_DIR / "images"
    assert doc_commands() == route.commands(images, route.OUT, 1500)


@pytest.mark.caffe
@pytest.mark.slow
def test_route_from_tags_to_predictions(caffe, caffe_tool, tmp_path, monkeypatch, capfd):
    from examples.digits_multilabel import route

    monkeypatch.chdir(REPO)
    data.build(tmp_path / "data", n_train=600, n_test=150, seed=5)
    data.export_images(tmp_path / "data")
    out = tmp_path / "run"
    route.main(["--data", str(tmp_path / "data"), "--out", str(out), "--max-iter", "200"])
    said = capfd.readouterr().out
    assert said.count("$ ") == 5
    classes = (out / "classes.txt").read_text().split()
    assert sorted(classes) == sorted(route.NAMES)
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 150 and set(report["per_class_ap"]) == set(classes)
    chance = np.mean([count / 150 for count in report["positives_per_class"].values()])
    assert report["map"] > chance + 0.05, (report["map"], chance)  # a short run; it learns
    rows = [json.loads(line) for line in said.splitlines() if line.startswith('{"path"')]
    assert len(rows) == 3 and all(tag["name"] in classes for r in rows for tag in r["tags"])
