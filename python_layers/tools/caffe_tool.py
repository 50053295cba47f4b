"""Run Caffe's ``caffe`` tool with this package's layers importable.

    multilabel-caffe train --solver=solver.prototxt

For a ``caffe`` that is not this project's build (Debian's and Ubuntu's ``caffe`` package):
its embedded Python gets this interpreter's ``sys.path`` (the venv: numpy, protobuf, this
package) on ``PYTHONPATH``, and ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python`` (a
protobuf C++ extension from the venv, loaded into a ``caffe`` linked against another libprotobuf,
crashes it). The tool is ``$CAFFE_BIN``, else the first ``caffe`` on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path


def environment(base: dict | None = None) -> dict:
    """``base`` (default: this process's environment) with the path and protobuf settings."""
    env = dict(os.environ if base is None else base)
    package_parent = str(Path(__file__).resolve().parents[2])
    paths = [package_parent, *(p for p in sys.path if p)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    env.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
    return env


def tool() -> str:
    """The ``caffe`` executable to run."""
    found = os.environ.get("CAFFE_BIN") or shutil.which("caffe")
    if not found or not os.access(found, os.X_OK):
        raise SystemExit(
            "multilabel-caffe: error: no `caffe` tool on PATH (Debian: apt-get install caffe; "
            "Ubuntu: caffe-cpu; or set CAFFE_BIN to its path)"
        )
    return found


def console(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__.strip())
        return 0
    executable = tool()
    os.execve(executable, [executable, *args], environment())
    return 1  # not reached: execve replaces this process


if __name__ == "__main__":
    sys.exit(console())
