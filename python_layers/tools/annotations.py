"""Annotation readers: each gives records (an image path, its tags with weights, where it came
from) and the class names in the order the source defines them.

- COCO instances JSON: an image's tags are the categories of its annotations (crowd ones too);
  class order: category id.
- PASCAL VOC ``Annotations/*.xml``: the ``<object>`` names; ``difficult`` objects count
  (``include``) or not (``exclude``); class order: by name.
- OpenImages image-level labels CSV (``ImageID,Source,LabelName,Confidence``): confidence 1
  is a tag; 0 is a verified negative, counted but not written (a list file has no negatives:
  every class an image does not list is a negative for the loss); names from the class
  descriptions CSV (``LabelName,DisplayName``), class order: that file's.
- CSV/TSV with a header (a path column and a tags column) and JSON lines
  (``{"path": ..., "tags": [...]}`` or ``"tags": {"tag": weight}``); class order: first seen.

:data:`FORMATS` names each format for ``multilabel-lists`` (its help, its own options, and its
reader called with the command line): a new format is a reader and its entry, in this file.
"""

from __future__ import annotations

import argparse
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import text_input
from .cli import UsageError

# Every character str.splitlines() breaks a line at: a tag holding one would take two lines
# of classes.txt for any reader that splits that way, shifting every later class's name.
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"


@dataclass
class Record:
    path: str
    tags: dict[str, float]  # tag -> weight (1 unless the source gives weights)
    where: str  # file:line or file + JSON path, for messages


@dataclass
class Annotations:
    records: list[Record]
    classes: list[str]  # every class the source names, in its own order
    notes: dict[str, int] = field(default_factory=dict)  # e.g. verified negatives


def _tag(name: object, where: str) -> str:
    if not isinstance(name, str) or not name.strip() or any(c in LINE_BREAKS for c in name):
        raise UsageError(
            f"{where}: expected a tag name (non-empty text, one line: no line or paragraph "
            f"separator, \\v, \\f, \\x1c-\\x1e or \\x85), got {name!r}"
        )
    return name.strip()


def _add(seen: dict[str, None], name: str) -> None:
    seen.setdefault(name, None)


def read_coco(path: Path, prefix: str = "") -> Annotations:
    data = text_input.loads(text_input.read_text(path), path)

    def items(key: str) -> list:
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, list):
            raise UsageError(
                f"{path}: {key}: expected a list (COCO instances JSON), got {value!r:.60}"
            )
        return value

    names: dict[int, str] = {}
    for i, category in enumerate(items("categories")):
        where = f"{path}: categories[{i}]"
        if not isinstance(category, dict) or not isinstance(category.get("id"), int):
            raise UsageError(f"{where}.id: expected an integer, got {category!r:.60}")
        names[category["id"]] = _tag(category.get("name"), f"{where}.name")
    names = _distinct(names, "id ")
    by_id: dict[int, Record] = {}
    for i, image in enumerate(items("images")):
        where = f"{path}: images[{i}]"
        if not isinstance(image, dict) or not isinstance(image.get("id"), int):
            raise UsageError(f"{where}.id: expected an integer, got {image!r:.60}")
        file_name = image.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise UsageError(f"{where}.file_name: expected a file name, got {file_name!r}")
        by_id[image["id"]] = Record(prefix + file_name, {}, where)
    for i, annotation in enumerate(items("annotations")):
        where = f"{path}: annotations[{i}]"
        image_id = annotation.get("image_id") if isinstance(annotation, dict) else None
        category_id = annotation.get("category_id") if isinstance(annotation, dict) else None
        if image_id not in by_id:
            raise UsageError(f"{where}.image_id: {image_id!r} is not the id of any images[] entry")
        if category_id not in names:
            raise UsageError(f"{where}.category_id: {category_id!r} is not a categories[] id")
        by_id[image_id].tags[names[category_id]] = 1.0
    return Annotations(list(by_id.values()), [names[key] for key in sorted(names)])


def _distinct(names: dict, label: str) -> dict:
    """Names two keys share made ``name (key)``, as OpenImages' own tools tell them apart."""
    taken: dict[str, int] = {}
    for name in names.values():
        taken[name] = taken.get(name, 0) + 1
    return {
        key: f"{name} ({label}{key})" if taken[name] > 1 else name for key, name in names.items()
    }


def voc_image_set(root: Path, image_set: str | None) -> list[str] | None:
    """The image ids of VOC's ``ImageSets/Main/<image_set>.txt`` (train, val, trainval,
    test), in its order; None without an image set."""
    if image_set is None:
        return None
    path = Path(root) / "ImageSets" / "Main" / f"{image_set}.txt"
    if not path.is_file():
        found = sorted(p.stem for p in path.parent.glob("*.txt") if "_" not in p.stem)
        raise UsageError(f"{path}: no such image set (found: {', '.join(found) or 'none'})")
    ids = []
    for number, line in enumerate(text_input.lines(path), start=1):
        fields = line.split()
        if len(fields) > 1:  # <class>_<set>.txt has "id 1|0|-1"; the plain set only ids
            raise UsageError(f"{path}:{number}: expected one image id a line, got {line!r:.60}")
        ids += fields
    return ids


def read_voc(
    root: Path,
    difficult: str = "include",
    prefix: str = "JPEGImages/",
    image_set: str | None = None,
) -> Annotations:
    folder = Path(root) / "Annotations" if (Path(root) / "Annotations").is_dir() else Path(root)
    ids = voc_image_set(root, image_set)
    files = sorted(folder.glob("*.xml")) if ids is None else [folder / f"{i}.xml" for i in ids]
    if not files:
        raise UsageError(f"{root}: no Annotations/*.xml (a PASCAL VOC folder, e.g. VOC2012)")
    for number, xml in enumerate(files, start=1):
        if not xml.is_file():
            raise UsageError(
                f"{root}/ImageSets/Main/{image_set}.txt:{number}: image {xml.stem} has no "
                f"{xml} (VOC's test annotations come in their own download)"
            )
    records, seen = [], {}
    for xml in files:
        try:
            tree = ET.parse(xml)
        except ET.ParseError as why:
            raise UsageError(f"{xml}:{why.position[0]}: not XML ({why})") from None
        file_name = tree.findtext("filename")
        if not file_name or not file_name.strip():
            raise UsageError(f"{xml}: <annotation>/<filename>: expected the image's file name")
        tags: dict[str, float] = {}
        for i, obj in enumerate(tree.iterfind("object")):
            name = _tag(obj.findtext("name"), f"{xml}: <object> {i + 1}/<name>")
            _add(seen, name)
            if difficult == "exclude" and (obj.findtext("difficult") or "0").strip() == "1":
                continue
            tags[name] = 1.0
        records.append(Record(prefix + file_name.strip(), tags, str(xml)))
    return Annotations(records, sorted(seen))


def _rows(path: Path, delimiter: str):
    """(line number, row dict, header) of a CSV with a header."""
    header: list[str] | None = None
    for number, fields in text_input.csv_rows(path, delimiter):
        if header is None:
            header = fields
        elif fields:  # csv.DictReader's rule: blank rows are skipped
            yield number, dict(zip(header, fields)), header


def _column(row: dict, key: str, header: list, where: str) -> str:
    if key not in header:
        raise UsageError(f"{where}: no column {key!r} in the header {header} (--*-column sets it)")
    value = row.get(key)
    if value is None:
        raise UsageError(f"{where}: the row ends before column {key!r}")
    return value


def read_openimages(
    labels: Path, descriptions: Path | None = None, prefix: str = "", suffix: str = ".jpg"
) -> Annotations:
    names: dict[str, str] = {}
    if descriptions is not None:
        for number, row in text_input.csv_rows(descriptions):
            if number == 1 and row[:2] == ["LabelName", "DisplayName"]:
                continue
            if len(row) < 2:
                raise UsageError(f"{descriptions}:{number}: expected LabelName,DisplayName")
            names[row[0]] = _tag(row[1], f"{descriptions}:{number}")
        names = _distinct(names, "")
    images: dict[str, Record] = {}
    seen: dict[str, None] = dict.fromkeys(names.values())
    negatives = 0
    for number, row, header in _rows(labels, ","):
        where = f"{labels}:{number}"
        image = _column(row, "ImageID", header, where)
        mid = _column(row, "LabelName", header, where)
        confidence = _column(row, "Confidence", header, where).strip()
        if confidence not in ("0", "1", "0.0", "1.0"):
            raise UsageError(
                f"{where}: Confidence: expected 1 (a label) or 0 (a verified "
                f"negative), got {confidence!r}"
            )
        if descriptions is not None and mid not in names:
            raise UsageError(f"{where}: LabelName {mid!r} is not in {descriptions}")
        record = images.setdefault(image, Record(prefix + image + suffix, {}, where))
        if float(confidence) == 1:
            name = names.get(mid, mid)
            _add(seen, name)
            record.tags[name] = 1.0
        else:
            negatives += 1
    return Annotations(list(images.values()), list(seen), {"verified_negatives": negatives})


def _weighted(tag: str, where: str) -> tuple[str, float]:
    name, _, text = tag.rpartition(":")
    try:
        weight = float(text)
    except ValueError:
        weight = -1.0
    if not name or not weight >= 0 or weight == float("inf"):
        raise UsageError(f"{where}: expected tag:weight (a weight >= 0), got {tag!r}")
    return _tag(name, where), weight


def read_table(
    path: Path,
    path_column: str = "path",
    tags_column: str = "tags",
    tag_separator: str | None = None,
    weights: bool = False,
    prefix: str = "",
) -> Annotations:
    delimiter = "\t" if Path(path).suffix.lower() in (".tsv", ".tab") else ","
    records, seen = [], {}
    for number, row, header in _rows(path, delimiter):
        where = f"{path}:{number}"
        image = _column(row, path_column, header, where).strip()
        text = _column(row, tags_column, header, where)
        tags: dict[str, float] = {}
        for tag in (t for t in text.split(tag_separator) if t.strip()):
            name, weight = _weighted(tag.strip(), where) if weights else (_tag(tag, where), 1.0)
            _add(seen, name)
            tags[name] = weight
        records.append(Record(prefix + image, tags, where))
    return Annotations(records, list(seen))


def read_jsonl(
    path: Path, path_key: str = "path", tags_key: str = "tags", prefix: str = ""
) -> Annotations:
    records, seen = [], {}
    for number, line in enumerate(text_input.lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        item = text_input.loads(line.rstrip("\r\n"), path, number)
        image = item.get(path_key) if isinstance(item, dict) else None
        if not isinstance(image, str) or not image:
            raise UsageError(f"{where}: {path_key!r}: expected the image path, got {image!r}")
        given = item.get(tags_key, [])
        if isinstance(given, list):
            given = {_tag(name, f"{where}: {tags_key}"): 1.0 for name in given}
        if not isinstance(given, dict):
            raise UsageError(
                f"{where}: {tags_key!r}: expected a list of tags or "
                f"{{tag: weight}}, got {given!r:.60}"
            )
        tags: dict[str, float] = {}
        for name, weight in given.items():
            if (
                isinstance(weight, bool)
                or not isinstance(weight, (int, float))
                or not (0 <= weight < float("inf"))
            ):
                raise UsageError(
                    f"{where}: {tags_key}[{name!r}]: expected a weight >= 0, got {weight!r}"
                )
            name = _tag(name, f"{where}: {tags_key}")
            tags[name] = float(weight)
            _add(seen, name)
        records.append(Record(prefix + image, tags, where))
    return Annotations(records, list(seen))


# --- The formats, as multilabel-lists offers them -----------------------------------------------


def _no_options(parser: argparse.ArgumentParser) -> None:
    pass


def _no_name(args: argparse.Namespace) -> str | None:
    return None


@dataclass(frozen=True)
class Format:
    """One annotation format of ``multilabel-lists FORMAT``."""

    help: str
    read: Callable[[argparse.Namespace], Annotations]  # from the parsed command line
    options: Callable[[argparse.ArgumentParser], None] = _no_options  # the format's own
    list_name: Callable[[argparse.Namespace], str | None] = _no_name  # default: "train"


def _voc_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image-set",
        help="read VOC's ImageSets/Main/<NAME>.txt (train, val, trainval, test) and only its "
        "images; the list is then NAME.txt (passing that file as ANNOTATIONS does the same)",
    )
    parser.add_argument(
        "--difficult",
        choices=["include", "exclude"],
        default="include",
        help="whether difficult objects make a label (default: include)",
    )


def _voc(args: argparse.Namespace) -> Annotations:
    root, image_set = args.annotations, args.image_set
    if root.is_file() and root.parent.parts[-2:] == ("ImageSets", "Main"):
        root, image_set = root.parents[2], root.stem  # VOC2012/ImageSets/Main/train.txt
    return read_voc(root, args.difficult, args.prefix or "JPEGImages/", image_set)


def _voc_name(args: argparse.Namespace) -> str | None:
    """The image set's name: --image-set, or the set file given as ANNOTATIONS."""
    if args.image_set:
        return args.image_set
    if args.annotations.is_file() and args.annotations.parent.name == "Main":
        return args.annotations.stem
    return None


def _openimages_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--descriptions", type=Path, help="class descriptions CSV")
    parser.add_argument("--suffix", default=".jpg", help="image file suffix")


def _columns(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--path-column", default="path", help="the path column or key")
    parser.add_argument("--tags-column", default="tags", help="the tags column or key")


def _table_options(parser: argparse.ArgumentParser) -> None:
    _columns(parser)
    parser.add_argument("--tag-separator", help="between tags (default: whitespace)")
    parser.add_argument("--weights", action="store_true", help="tags are tag:weight")


def _table(args: argparse.Namespace) -> Annotations:
    return read_table(
        args.annotations,
        args.path_column,
        args.tags_column,
        args.tag_separator,
        args.weights,
        args.prefix,
    )


FORMATS: dict[str, Format] = {
    "coco": Format("COCO instances JSON", lambda args: read_coco(args.annotations, args.prefix)),
    "voc": Format(
        "a PASCAL VOC folder (Annotations/*.xml, ImageSets/Main/<set>.txt)",
        _voc,
        _voc_options,
        _voc_name,
    ),
    "openimages": Format(
        "OpenImages image-level labels CSV",
        lambda args: read_openimages(args.annotations, args.descriptions, args.prefix, args.suffix),
        _openimages_options,
    ),
    "table": Format("CSV/TSV with a header", _table, _table_options),
    "jsonl": Format(
        "JSON lines",
        lambda args: read_jsonl(args.annotations, args.path_column, args.tags_column, args.prefix),
        _columns,
    ),
}
