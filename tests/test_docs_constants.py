"""The numbers the documents quote from the code, checked against the code (the rest of the
documentation's checks: test_docs.py). Each row: a document, a phrase (a regular expression
whose group is the number as written there) and the code's value; every place the phrase
occurs must state that value, and the phrase must still be there (a rewrite that drops it
has to update this table)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from paths import REPO

from python_layers import labels
from python_layers.data import index_writer, order
from python_layers.loss import fused_positions, numba_parts
from python_layers.loss.cuda import launch as cuda_launch

MIB = 1 << 20
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}


def largest_label_of(dtype) -> int:
    """The largest label the index still stores in ``dtype`` (or narrower), found by asking
    the code: a bisection, as the type chosen widens with the label."""
    width = np.dtype(dtype).itemsize
    fits, wider = 0, 2**40  # _smallest(fits) is at most dtype, _smallest(wider) wider than it
    while wider - fits > 1:
        middle = (fits + wider) // 2
        if index_writer._smallest(middle).itemsize > width:
            wider = middle
        else:
            fits = middle
    return fits


# (document, phrase with the number as its group, the code's value, the unit the text uses)
QUOTED = [
    ("docs/gpu.md", r"one read of (\w+) doubles", lambda: cuda_launch.N_STATUS, 1),
    (
        "docs/gpu.md",
        r"a thread block per row for \(N, C\) with C >= (\d+)",
        lambda: cuda_launch.BLOCK_CLASSES,
        1,
    ),
    ("docs/data_scale.md", r"a (\d+)-round balanced Feistel", lambda: order.ROUNDS, 1),
    (
        "docs/data_scale.md",
        r"times the odd constant\s+`(0x[0-9A-Fa-f]+)`",
        lambda: int(order._MUL),
        1,
    ),
    (
        "docs/data_scale.md",
        r"(\d+) MiB \(`index_writer\.MEMBERS_BYTES`",
        lambda: index_writer.MEMBERS_BYTES,
        MIB,
    ),
    (
        "docs/data_scale.md",
        r"a class group's lists: (\d+) MiB",
        lambda: index_writer.MEMBERS_BYTES,
        MIB,
    ),
    ("docs/data_scale.md", r"at most (\d+) groups", lambda: index_writer.MAX_GROUPS, 1),
    (
        "docs/data_scale.md",
        r"so that (\d+) groups hold them all",
        lambda: index_writer.MAX_GROUPS,
        1,
    ),
    (
        "docs/data_scale.md",
        r"parsing in blocks of (\d+) MiB",
        lambda: index_writer.BLOCK_BYTES,
        MIB,
    ),
    (
        "docs/data_scale.md",
        r"uint8 while\s+the largest label is at most ([\d,]+)",
        lambda: largest_label_of(np.uint8),
        1,
    ),
    ("docs/data_scale.md", r"uint16 up to ([\d,]+)", lambda: largest_label_of(np.uint16), 1),
    ("docs/performance.md", r"blocks of (\d+) positions", lambda: fused_positions.BLOCK, 1),
    (
        "docs/performance.md",
        r"threads from\s+([\d,]+) scores up",
        lambda: numba_parts.PARALLEL_ELEMENTS,
        1,
    ),
    *[
        (document, r"padded\s+with (-?\d+)", lambda: labels.PADDING, 1)
        for document in (
            "README.md",
            "docs/loss.md",
            "docs/metrics.md",
            "docs/data.md",
            "docs/data_scale.md",
        )
    ],
]


def number(written: str) -> int:
    """'four', '131,072', '0x9E37...', '-1' -> the integer."""
    if written.lower() in WORDS:
        return WORDS[written.lower()]
    return int(written.replace(",", ""), 0)


@pytest.mark.parametrize(
    "document, phrase, value, unit", QUOTED, ids=[f"{d} {p[:30]}" for d, p, _, _ in QUOTED]
)
def test_the_documents_quote_the_codes_constants(document, phrase, value, unit):
    text = (REPO / document).read_text(encoding="utf-8")
    quoted = re.findall(phrase, text)
    assert quoted, f"{document} no longer says /{phrase}/: update this table"
    expected = value()
    for written in quoted:
        assert number(written) * unit == expected, (
            f"{document}: /{phrase}/ says {written}; the code has {expected // unit}"
        )


def test_the_number_reader_reads_what_the_documents_write():  # the table's parser can fail
    assert [number(w) for w in ("four", "Six", "131,072", "0x10", "-1")] == [4, 6, 131072, 16, -1]
