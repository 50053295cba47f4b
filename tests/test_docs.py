"""The documentation as a user reads it: every prototxt fragment in README.md, docs/ and the
docstrings parses with Caffe's protobuf (and its param_str with the layer's own parser), every
Python snippet in README.md and docs/ runs as written, every literal block in a docstring
parses, and every results block matches the results file it is written from. The numbers the
documents quote from the code: test_docs_constants.py."""

from __future__ import annotations

import ast
import json
import re
import runpy
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from paths import REPO

DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
SOURCES = sorted(
    path
    for folder in ("python_layers", "examples", "scripts", "bench")
    for path in (REPO / folder).rglob("*.py")
)
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.S | re.M)
LANGUAGES = {"prototxt", "python", "sh", "text", "json"}
SHELL_WORDS = ("python ", "make", "bash", "caffe ", ".venv/", "$ ", "pip", "docker")


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def fences() -> list[tuple[str, str, str]]:
    """(where, language, body) for every fenced block of the Markdown documents."""
    found = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            where = f"{path.relative_to(REPO)}:{_line(text, match.start())}"
            found.append((where, match.group(1), match.group(2)))
    return found


def docstring_blocks() -> list[tuple[str, str]]:
    """(where, dedented text) for every literal block (after a line ending in ``::``) of the
    docstrings of modules, classes and functions."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = [tree, *ast.walk(tree)]
        for node in nodes:
            if not isinstance(
                node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            ):
                continue
            doc = ast.get_docstring(node, clean=True)
            if not doc:
                continue
            lines = doc.split("\n")
            for index, line in enumerate(lines):
                if not line.rstrip().endswith("::"):
                    continue
                block = []
                for following in lines[index + 1 :]:
                    if following.strip() and not following.startswith((" ", "\t")):
                        break
                    block.append(following)
                where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 1) + index}"
                found.append((where, textwrap.dedent("\n".join(block)).strip("\n")))
    return found


DOC_FENCES = fences()
DOCSTRING_BLOCKS = list(dict.fromkeys(docstring_blocks()))  # the module node is walked twice
PROTOTXT = [(w, body) for w, lang, body in DOC_FENCES if lang == "prototxt"] + [
    (w, body) for w, body in DOCSTRING_BLOCKS if re.search(r"^\s*layer\s*\{", body, re.M)
]
PYTHON = [(w, body) for w, lang, body in DOC_FENCES if lang == "python"]
# Python in a docstring: a block with an import or a call (formulas and commands are not)
LOOKS_LIKE_PYTHON = re.compile(r"^\s*(from \S+ )?import \w|^\s*[\w.]+ = [\w.]+\(", re.M)
DOCSTRING_PYTHON = [
    (w, body)
    for w, body in DOCSTRING_BLOCKS
    if LOOKS_LIKE_PYTHON.search(body) and not body.lstrip().startswith(SHELL_WORDS)
]


def test_every_fence_names_its_language():
    unnamed = [(w, lang) for w, lang, _ in DOC_FENCES if lang not in LANGUAGES]
    assert not unnamed, f"fences need one of {sorted(LANGUAGES)} after the backticks: {unnamed}"


def test_the_documents_have_fragments_to_check():  # the collectors themselves can fail
    assert len(PROTOTXT) >= 6 and len(PYTHON) >= 3
    assert any(w.startswith("python_layers/multilabel_data.py") for w, _ in PROTOTXT)


def _parsers():
    from python_layers import params

    return {
        "SoftmaxLossLayer": params.softmax_loss_params,
        "MultiLabelMetricsLayer": params.multilabel_metrics_params,
        "MultiLabelImageDataLayer": params.multilabel_data_params,
    }


@pytest.mark.caffe
@pytest.mark.parametrize("where, body", PROTOTXT, ids=[w for w, _ in PROTOTXT])
def test_prototxt_fragment_parses(caffe, where, body):
    from caffe.proto import caffe_pb2
    from google.protobuf import text_format

    net = caffe_pb2.NetParameter()
    try:
        text_format.Parse(body, net)
    except text_format.ParseError as as_net:
        layer = caffe_pb2.LayerParameter()
        try:
            text_format.Parse(body, layer)
        except text_format.ParseError:
            pytest.fail(f"{where}: not a NetParameter ({as_net}) nor a LayerParameter")
        net.layer.append(layer)
    parsers = _parsers()
    for layer in net.layer:
        if layer.type == "Python" and layer.python_param.module.startswith("python_layers."):
            parse = parsers[layer.python_param.layer]
            parse(layer.python_param.param_str)  # raises the layer's own ValueError


@pytest.mark.caffe
@pytest.mark.parametrize("where, body", PYTHON, ids=[w for w, _ in PYTHON])
def test_python_snippet_runs(caffe, where, body, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "snippet.py"
    script.write_text(body)
    runpy.run_path(str(script), run_name="__main__")


@pytest.mark.parametrize("where, body", DOCSTRING_PYTHON, ids=[w for w, _ in DOCSTRING_PYTHON])
def test_docstring_python_block_parses(where, body):
    try:
        ast.parse(body)
    except SyntaxError as why:
        pytest.fail(f"{where}: {why}")


def test_results_blocks_match_the_results_files():
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "doc_results.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_relative_links_point_at_files():
    broken = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"\]\(([^)#\s]+)(#[^)]*)?\)", text):
            target = match.group(1)
            if "://" in target:
                continue
            if not (path.parent / target).exists():
                broken.append(f"{path.relative_to(REPO)}:{_line(text, match.start())} {target}")
    assert not broken, broken


def key_tables(path: Path) -> list[list[tuple[list[str], str]]]:
    """The `| key | default | meaning |` tables of a document: per row, its keys and the
    default cell."""
    tables, current = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("| key | default | meaning |"):
            current = []
            tables.append(current)
        elif current is not None and line.startswith("|") and not line.startswith("|---"):
            first, default = (cell.strip() for cell in line.split("|")[1:3])
            current.append((re.findall(r"`(\w+)`", first), default))
        elif not line.startswith("|"):
            current = None
    return tables


def _documented_defaults(table) -> dict:
    defaults = {}
    for keys, cell in table:
        values = re.findall(r"`([^`]*)`|\b(required|none)\b", cell)
        if len(values) == len(keys):
            for key, (literal, word) in zip(keys, values):
                defaults[key] = json.loads(literal) if literal else word
        else:
            defaults.update(dict.fromkeys(keys, "?"))
    return defaults


def _code_defaults(parse, required: dict) -> dict:
    given = json.dumps(required)
    values = parse(given)
    return {k: ("required" if k in required else v) for k, v in values.items()}


@pytest.mark.parametrize(
    "document, layer, required",
    [
        ("README.md", "softmax_loss", {}),
        ("docs/metrics.md", "multilabel_metrics", {}),
        ("docs/data.md", "multilabel_data", {"source": "a.txt", "classes": 2, "batch_size": 1}),
    ],
)
def test_parameter_tables_list_every_key_with_its_default(document, layer, required):
    from python_layers import params

    tables = key_tables(REPO / document)
    assert tables, f"{document} has no '| key | default | meaning |' table"
    documented = _documented_defaults(tables[0])
    code = _code_defaults(getattr(params, f"{layer}_params"), required)
    assert sorted(documented) == sorted(code), f"{document}: keys differ from the code's"
    for key, value in documented.items():
        if value == "?" or (value == "none" and code[key] in (None, ())):
            continue
        expected = list(code[key]) if isinstance(code[key], tuple) else code[key]
        assert value == expected, f"{document}: `{key}` documented as {value!r}, code {expected!r}"


def shell_commands(prefix: str) -> list[tuple[str, list[str]]]:
    """(where, argv after the program) for each command line of the `sh` fences that runs
    ``prefix``-something (continuation backslashes joined, comments dropped)."""
    found = []
    for where, lang, body in DOC_FENCES:
        if lang != "sh":
            continue
        for line in body.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and Path(words[0]).name.startswith(prefix):
                found.append((where, [Path(words[0]).name, *words[1:]]))
    return found


COMMANDS = shell_commands("multilabel-")


def test_the_documents_show_the_commands():
    shown = {argv[0] for _, argv in COMMANDS}
    assert {"multilabel-lists", "multilabel-evaluate", "multilabel-predict"} <= shown, shown


@pytest.mark.parametrize("where, argv", COMMANDS, ids=[f"{w} {a[0]}" for w, a in COMMANDS])
def test_documented_command_lines_parse(where, argv):
    """Each command line in the documents is accepted by that command's own parser."""
    import importlib

    name = argv[0].removeprefix("multilabel-")
    if name == "caffe":  # passes its arguments to Caffe's tool
        return
    module = importlib.import_module(f"python_layers.tools.{name}")
    try:
        module.parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"{where}: {' '.join(argv)} is not accepted by {argv[0]}")
