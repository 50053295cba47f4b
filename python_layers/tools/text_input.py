"""Reading annotation files as text, with every failure a one-line error at ``file:line``:
bytes that are not UTF-8, JSON nested past what Python's reader allows, CSV fields past the
csv module's limit."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from .cli import UsageError

# Python's json reader recurses once per level and fails with RecursionError near 1,000
# levels (fewer when called deep in a stack); the error names the line where the nesting
# passes this depth, which annotations (a few levels) never reach.
MAX_JSON_DEPTH = 500


def lines(path: Path) -> Iterator[str]:
    """The file's lines, split at ``\\n`` only (as list files and csv do), decoded as UTF-8
    (a leading byte-order mark dropped); bytes that are not UTF-8 name their line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as why:
                raise UsageError(
                    f"{path}:{number}: expected UTF-8 text, got byte {raw[why.start]:#04x} at "
                    f"column {why.start + 1} (re-save the file as UTF-8, e.g. iconv -f latin1 "
                    "-t utf-8)"
                ) from None


def read_text(path: Path) -> str:
    return "".join(lines(path))


def _too_deep(text: str) -> int | None:
    """The line where JSON ``text`` nests deeper than MAX_JSON_DEPTH, or None."""
    depth, line, in_string, escaped = 0, 1, False, False
    for char in text:
        if in_string:
            escaped, in_string = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return line
        elif char in "]}":
            depth -= 1
        if char == "\n":
            line += 1
    return None


def loads(text: str, path: Path, first_line: int = 1):
    """``json.loads``, its errors (and nesting too deep to read) at ``path:line``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as why:
        raise UsageError(f"{path}:{why.lineno + first_line - 1}: not JSON ({why.msg})") from None
    except RecursionError:
        # only now the (slow, character by character) scan for the line: a real COCO file
        # of hundreds of MB is never scanned
        deep = _too_deep(text) or 1
    raise UsageError(
        f"{path}:{deep + first_line - 1}: JSON nested more than {MAX_JSON_DEPTH} levels deep "
        "(annotations nest a few levels; is this the right file?)"
    )


def csv_rows(path: Path, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """(line number where the row ends, fields) of a CSV file."""
    reader = csv.reader(lines(path), delimiter=delimiter)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as why:
            raise UsageError(f"{path}:{reader.line_num}: not CSV ({why})") from None
        yield reader.line_num, row
