"""Index list files ahead of training, with a progress bar (what the data layer does itself on
first use): ``python -m python_layers.data.build_index train.txt val.txt``.

Prints where each index is, whether it was built now or reused (the list unchanged), its size
and its counts. ``--classes`` and ``--max-labels`` check the labels as the layer would (the
index itself does not depend on them); without them only the list's syntax is checked. Bad
input exits 2 with ``file:line``, as the other commands do.

``--check-images`` also reads every image (``--root-folder`` joined with its path, as the
layer's ``root_folder``; ``--gray`` for ``is_color: false``) on ``--threads`` threads with a
progress bar, and lists each missing or undecodable one as ``file:line: path: why``; any such
image exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from . import check_images, index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lists", nargs="+", help="list files (as the layer's source)")
    parser.add_argument("--classes", type=int, help="check labels < classes")
    parser.add_argument("--max-labels", type=int, help="check labels per line <= this")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--check-images", action="store_true", help="read every image")
    parser.add_argument("--root-folder", default="", help="the layer's root_folder")
    parser.add_argument("--gray", action="store_true", help="decode as is_color: false")
    parser.add_argument("--threads", type=int, help="images decoded at once (default: CPUs)")
    args = parser.parse_args(argv)
    failed = False
    for source in args.lists:
        started = time.perf_counter()
        try:
            built = index.open_index(source, progress=not args.quiet)
            if args.classes is not None or args.max_labels is not None:
                built.check(args.classes or 2**32, args.max_labels or 2**32)
        except index.ListFileError as why:
            print(f"build_index: {why}", file=sys.stderr)
            return 2
        where = index.index_path(source)
        done = "built" if built.built else "reused"
        print(
            f"{source}: {len(built)} images, {built.header['max_label'] + 1} classes seen, "
            f"index {done}: {where} ({os.path.getsize(where) / 2**20:.1f} MiB, "
            f"{time.perf_counter() - started:.1f} s)"
        )
        if args.check_images:
            failed |= _check_images(built, source, args)
    return 2 if failed else 0


def _check_images(built: index.Index, source: str, args: argparse.Namespace) -> bool:
    """Whether some image of ``built`` is bad (each printed on stderr)."""
    bad = check_images.bad_images(
        built, args.root_folder, not args.gray, args.threads, progress=not args.quiet
    )
    if not bad:
        print(f"{source}: all {len(built)} images read")
        return False
    hint = " (is --root-folder right?)" if len(bad) == len(built) else ""
    print(f"build_index: {len(bad)} of {len(built)} images of {source} cannot be read{hint}:",
          *bad, sep="\n  ", file=sys.stderr)  # fmt: skip
    return True


if __name__ == "__main__":
    sys.exit(main())
