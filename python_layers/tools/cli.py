"""What the commands share: reading ``classes.txt``, the transform keys, and clean failure."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Callable


class UsageError(Exception):
    """Bad input to a command: printed as ``NAME: error: message``, exit status 2."""


def run(name: str, main: Callable[[Sequence[str] | None], int], argv=None) -> int:
    """``main(argv)``, turning a UsageError, ValueError or missing file into a one-line error.
    Caffe's INFO and WARNING log lines (some 300 for a net's set-up) are kept out
    (``GLOG_minloglevel``, unless set, or ``--verbose`` is given)."""
    given = sys.argv[1:] if argv is None else list(argv)
    if "--verbose" not in given:
        # before anything imports caffe: glog reads its flags when pycaffe loads it
        os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        status = main(argv)
        sys.stdout.flush()  # here, so that a closed pipe is caught, not reported at exit
        return status
    except (UsageError, ValueError, FileNotFoundError) as why:
        print(f"{name}: error: {why}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader left (`| head`): stop quietly, and point stdout at /dev/null so that
        # Python's flush at exit does not report the pipe again (the Python docs' recipe).
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


def doc_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """A parser whose description is the module doc's first line, its epilog the rest."""
    return argparse.ArgumentParser(
        prog=prog,
        description=doc.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=doc.split("\n", 2)[2],
    )


def read_classes(path: str | Path) -> list[str]:
    """``classes.txt``: one class name a line, line n (from 0) = class index n."""
    # split at "\n" only: str.splitlines() also splits at U+2028, U+0085, \v, \f, ..., which
    # a tag may hold, and every later class would get the next one's name
    # "utf-8-sig": a byte-order mark (Notepad's) is not part of class 0's name, as list files
    text = Path(path).read_text(encoding="utf-8-sig")
    names = [line.removesuffix("\r") for line in text.split("\n")]
    if names[-1] == "":
        names.pop()
    for number, name in enumerate(names, start=1):
        if not name.strip():
            raise UsageError(f"{path}:{number}: empty class name (one name a line, no blanks)")
    return names


def transform_from(args) -> dict:
    """The image transform keys: from ``--net`` (its TEST data layer) and/or ``--transform``."""
    keys: dict = {}
    if getattr(args, "net", None):
        from ..deploy_net import data_layer, data_params

        keys.update(data_params(data_layer(args.net)))
    if getattr(args, "transform", None):
        try:
            keys.update(json.loads(args.transform))
        except json.JSONDecodeError as why:
            raise UsageError(f"--transform: not JSON ({why}): {args.transform!r}") from None
    if getattr(args, "root_folder", None) is not None:
        keys["root_folder"] = args.root_folder
    return keys


def add_model_arguments(parser) -> None:
    """--deploy/--net, --weights, --transform: what evaluate and predict need."""
    parser.add_argument("--weights", required=True, help="the trained .caffemodel")
    parser.add_argument(
        "--deploy", help="deploy prototxt (default: made from --net with the deploy helper)"
    )
    parser.add_argument(
        "--net",
        help="the train prototxt: its TEST-phase MultiLabelImageDataLayer gives the transform "
        "keys (and, without --deploy, the deploy net)",
    )
    parser.add_argument(
        "--transform",
        help='the data layer\'s image keys as JSON, e.g. \'{"new_height": 256, "new_width": '
        '256, "crop_size": 224, "mean_value": [104, 117, 123]}\' (over --net\'s)',
    )
    parser.add_argument("--root-folder", help="prepended to list paths (over the keys' own)")
    parser.add_argument(
        "--verbose", action="store_true", help="show Caffe's log (its set-up: ~300 lines)"
    )


def deploy_path(args, folder: Path) -> Path:
    """--deploy, or a deploy net written into ``folder`` from --net."""
    if args.deploy:
        return Path(args.deploy)
    if not args.net:
        raise UsageError("give --deploy (a deploy prototxt) or --net (the train prototxt)")
    from ..deploy_net import deploy_net

    path = folder / "deploy.prototxt"
    path.write_text(str(deploy_net(args.net)), encoding="utf-8")
    return path
