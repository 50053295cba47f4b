"""Annotations -> list files for ``MultiLabelImageDataLayer`` and ``classes.txt``.

    python -m python_layers.tools.lists table tags.csv --out lists/ --val-fraction 0.1
    python -m python_layers.tools.lists coco instances_train2017.json --out lists/ \\
        --prefix train2017/
    python -m python_layers.tools.lists coco instances_val2017.json --out lists/ --name val \\
        --classes lists/classes.txt --prefix val2017/

Writes ``OUT/NAME.txt`` (and ``OUT/val.txt`` with ``--val-fraction``) and ``OUT/classes.txt``
(one name a line; line n, from 0, is class n), and prints a summary. The vocabulary is the
classes with at least ``--min-count`` images, the ``--top-k`` most frequent of them (as
Mahajan et al. filter hashtags), or a fixed ``--classes`` file (for a second split); tags
outside it are dropped. The split is a pure function of (seed, path): an image stays on its
side when others are added.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data import list_file
from . import annotations as readers
from .cli import UsageError, doc_parser, read_classes, run

DROPPED_SHOWN = 5  # the summary names this many of the dropped tags, the most frequent


def vocabulary(
    data: readers.Annotations,
    min_count: int = 1,
    top_k: int | None = None,
    order: str = "frequency",
) -> list[str]:
    """The kept class names, in class-index order (``frequency``: most images first, ties by
    name; ``name``; ``source``: the annotations' own order)."""
    counts = Counter(tag for record in data.records for tag, w in record.tags.items() if w > 0)
    kept = [name for name in data.classes if counts[name] >= min_count]
    by_frequency = sorted(kept, key=lambda name: (-counts[name], name))
    if top_k is not None:
        chosen = set(by_frequency[:top_k])
        kept = [name for name in kept if name in chosen]
    if order == "frequency":
        return [name for name in by_frequency if name in set(kept)]
    return sorted(kept) if order == "name" else kept


def in_validation(path: str, seed: int, fraction: float) -> bool:
    """Whether ``path`` falls in the validation split: sha256 of (seed, path) as a uniform."""
    digest = hashlib.sha256(f"{seed}\0{path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < fraction


def list_line(record: readers.Record, index: dict[str, int]) -> str:
    """``path c1 c2 ...`` (``c:w`` when some weight is not 1), classes in index order."""
    kept = sorted((index[tag], weight) for tag, weight in record.tags.items() if tag in index)
    weighted = any(weight != 1 for _, weight in kept)
    labels = [f"{c}:{weight:g}" if weighted else str(c) for c, weight in kept]
    try:
        return list_file.line(record.path, labels)
    except ValueError as why:  # the path rule is the list reader's: data/list_file.py
        raise UsageError(f"{record.where}: {why}") from None


def summary(splits: dict[str, list[readers.Record]], classes: list[str], data) -> str:
    """Images, classes, labels per image, images without labels, head and tail frequencies."""
    index = set(classes)
    records = [record for part in splits.values() for record in part]
    per_image = np.array([sum(tag in index for tag in r.tags) for r in records])
    counts = Counter(tag for r in records for tag in r.tags if tag in index)
    ranked = sorted(classes, key=lambda name: (-counts[name], name))
    head = ", ".join(f"{name} {counts[name]}" for name in ranked[:5])
    tail = ", ".join(f"{name} {counts[name]}" for name in ranked[-5:][::-1])
    dropped = Counter(tag for r in records for tag in r.tags if tag not in index)
    first_at = {}
    for r in records:
        for tag in r.tags:
            if tag not in index:
                first_at.setdefault(tag, r.where)
    lines = [
        f"images: {len(records)} ("
        + ", ".join(f"{name} {len(part)}" for name, part in splits.items())
        + ")",
        f"classes: {len(classes)} of {len(data.classes)} in the annotations "
        f"({sum(dropped.values())} tags outside the vocabulary dropped)",
        f"labels per image: mean {per_image.mean():.2f}, median {np.median(per_image):g}, "
        f"max {per_image.max()}",
        f"images without labels: {int((per_image == 0).sum())}",
        f"most frequent: {head}",
        f"least frequent: {tail}",
    ]
    if dropped:  # name them: a misspelt or differently cased tag is found here
        shown = dropped.most_common(DROPPED_SHOWN)
        more = len(dropped) - len(shown)
        lines.append(
            "dropped tags: "
            + ", ".join(f"{tag!r} {n} (first: {first_at[tag]})" for tag, n in shown)
            + (f", and {more} more" if more else "")
        )
    lines += [f"{key.replace('_', ' ')}: {value}" for key, value in data.notes.items()]
    return "\n".join(lines)


def lowercased(data: readers.Annotations) -> None:
    """Every tag in lower case (as Caffe's PASCAL example writes VOC's names); tags that
    then coincide are one class, of the largest weight."""
    data.classes = list(dict.fromkeys(name.lower() for name in data.classes))
    for record in data.records:
        tags: dict[str, float] = {}
        for tag, weight in record.tags.items():
            tags[tag.lower()] = max(weight, tags.get(tag.lower(), weight))
        record.tags = tags


def common_arguments() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("annotations", type=Path, help="the annotation file (or VOC folder)")
    p.add_argument("--out", type=Path, required=True, help="folder for the lists and classes.txt")
    p.add_argument("--name", help="list file name (default: train; voc: the image set's name)")
    p.add_argument("--prefix", default="", help="prepended to every image path")
    p.add_argument("--classes", type=Path, help="a fixed vocabulary (classes.txt) to use")
    p.add_argument("--min-count", type=int, default=1, help="keep classes with >= N images")
    p.add_argument("--top-k", type=int, help="keep the K most frequent classes")
    p.add_argument(
        "--order",
        choices=["frequency", "name", "source"],
        default="frequency",
        help="class index order (default: frequency, most images first)",
    )
    p.add_argument("--val-fraction", type=float, default=0.0, help="share for OUT/val.txt")
    p.add_argument("--seed", type=int, default=0, help="the split's seed (default 0)")
    p.add_argument("--drop-empty", action="store_true", help="leave out images without labels")
    p.add_argument(
        "--lowercase",
        action="store_true",
        help="tags in lower case (class names are case-sensitive otherwise: Cat != cat)",
    )
    return p


def parser() -> argparse.ArgumentParser:
    p = doc_parser("multilabel-lists", __doc__)
    formats = p.add_subparsers(
        dest="format",
        required=True,
        metavar="FORMAT",
        help="; ".join(f"{name}: {kind.help}" for name, kind in readers.FORMATS.items())
        + " (FORMAT --help: its options)",
    )
    common = common_arguments()
    for name, kind in readers.FORMATS.items():  # each format's own options: annotations.py
        kind.options(
            formats.add_parser(name, parents=[common], help=kind.help, description=kind.help)
        )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not 0 <= args.val_fraction < 1:
        raise UsageError(f"--val-fraction: expected a number in [0, 1), got {args.val_fraction}")
    if not args.annotations.exists():
        raise UsageError(f"{args.annotations}: no such file or folder")
    kind = readers.FORMATS[args.format]
    data = kind.read(args)
    if args.lowercase:
        lowercased(data)
    if args.name is None:
        args.name = kind.list_name(args) or "train"
    if args.classes:
        classes = read_classes(args.classes)
        data.classes = list(dict.fromkeys([*classes, *data.classes]))
    else:
        classes = vocabulary(data, args.min_count, args.top_k, args.order)
    index = {name: i for i, name in enumerate(classes)}
    first: dict[str, str] = {}
    splits: dict[str, list[readers.Record]] = {args.name: []}
    if args.val_fraction:
        splits["val"] = []
    for record in data.records:
        if record.path in first:
            raise UsageError(
                f"{record.where}: image {record.path} again (first: {first[record.path]})"
            )
        first[record.path] = record.where
        if args.drop_empty and not any(tag in index for tag in record.tags):
            continue
        val = args.val_fraction and in_validation(record.path, args.seed, args.val_fraction)
        splits["val" if val else args.name].append(record)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in splits.items():
        with open(args.out / f"{name}.txt", "w", encoding="utf-8") as handle:
            handle.writelines(list_line(record, index) for record in part)
    (args.out / "classes.txt").write_text("".join(f"{name}\n" for name in classes), "utf-8")
    print(summary(splits, classes, data))
    print(f"wrote {', '.join(str(args.out / f'{n}.txt') for n in [*splits, 'classes'])}")
    return 0


def console() -> int:
    return run("multilabel-lists", main)


if __name__ == "__main__":
    sys.exit(console())
