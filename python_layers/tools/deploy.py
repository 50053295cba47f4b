"""Write the deploy prototxt of a train prototxt (see :mod:`python_layers.deploy_net`).

python -m python_layers.tools.deploy train_val.prototxt -o deploy.prototxt
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .cli import UsageError, run


def _shape(text: str) -> list[int]:
    try:
        dims = [int(part) for part in text.split(",")]
    except ValueError:
        dims = []
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(f"expected N,C,H,W (positive integers), got {text!r}")
    return dims


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="multilabel-deploy",
        description="A deploy net from a train net: the TEST-phase data layer becomes an Input "
        "layer named 'input' (top 'data'), losses and metrics are removed, a Softmax 'prob' "
        "is added. The snapshot of the train net loads into it.",
    )
    p.add_argument("train_net", help="the train prototxt (train_val.prototxt)")
    p.add_argument("-o", "--output", help="where to write it (default: standard output)")
    p.add_argument(
        "--shape",
        type=_shape,
        help="input shape N,C,H,W (default: from the data "
        "layer's batch_size, is_color, crop_size or new_height/new_width)",
    )
    p.add_argument("--input-name", default="input", help="the Input layer's name (default: input)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from ..deploy_net import deploy_net

    text = str(deploy_net(args.train_net, args.shape, args.input_name))
    if not args.output:
        sys.stdout.write(text)
        return 0
    try:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as why:
        raise UsageError(f"{args.output}: cannot write ({why.strerror})") from None
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def console() -> int:
    return run("multilabel-deploy", main)


if __name__ == "__main__":
    sys.exit(console())
