"""``build_index --check-images``: every image of a list exists and decodes, checked before
training (a missing or broken image is otherwise found only when a batch draws it)."""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor

from .index import Index

BATCH = 4096  # images handed to the threads at once (bounded memory whatever the list's size)


def _problem(path: str, color: bool) -> str | None:
    from . import decode  # Pillow / OpenCV only for the images' check

    if not os.path.isfile(path):
        return "no such file"
    try:
        decode.decode(path, color)
    except Exception as why:  # any failure to read one image is that image's
        return str(why) if isinstance(why, decode.BadImageError) else f"{type(why).__name__}: {why}"
    return None


def bad_images(
    images: Index, root: str, color: bool, threads: int | None = None, progress: bool = True
) -> list[str]:
    """``file:line: path: why`` of each image (``root`` joined with its list path, as the
    layer reads it) that is missing or does not decode, in list order; ``threads`` decode at
    once (default: the CPUs), with a progress bar on stderr."""
    from tqdm import tqdm

    bad = []
    bar = tqdm(total=len(images), desc="checking images", unit="img", file=sys.stderr,
               disable=not progress)  # fmt: skip
    with ThreadPoolExecutor(threads or os.cpu_count()) as pool, bar:
        for start in range(0, len(images), BATCH):
            ids = range(start, min(start + BATCH, len(images)))
            paths = [os.path.join(root, images.path(i)) for i in ids]
            for i, path, why in zip(ids, paths, pool.map(_problem, paths, [color] * len(paths))):
                if why is not None:
                    bad.append(f"{images.where(i)}: {path}: {why}")
            bar.update(len(paths))
    return bad
