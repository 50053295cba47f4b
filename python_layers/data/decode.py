"""Encoded image bytes to pixels with OpenCV, as Caffe's ``ImageData`` gets them.

Caffe reads a file with ``cv::imread(path, IMREAD_COLOR or IMREAD_GRAYSCALE)`` and an encoded
LMDB ``Datum`` with ``cv::imdecode`` (``DecodeDatumToCVMat``); this module reads the file's
bytes in Python and calls ``cv2.imdecode`` with the same flags, so that the pixels are
OpenCV's own: the EXIF orientation applied (JPEG; PNG's ``eXIf`` by OpenCV >= 4.6, not by
Debian 11's 4.5.1), 16-bit samples to 8, CMYK, palettes and alpha as OpenCV converts them, gray
by libjpeg's or libpng's weights. Nothing here starts an external program or reads a format
OpenCV does not (issue: an EPS named ``.jpg`` made Pillow run Ghostscript).

Images larger than :data:`MAX_PIXELS` are refused before they are decoded (a decompression
bomb), when this module is the first to import ``cv2`` (OpenCV reads the limit once, at
import; otherwise OpenCV's own default of 2^30 pixels holds).
"""

from __future__ import annotations

import os
from typing import Union

import numpy as np

MAX_PIXELS = 178_956_970  # Pillow's decompression-bomb error threshold (2 x 89.5 Mpx)
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_PIXELS))
import cv2  # noqa: E402  (after the limit above: OpenCV reads it once, at import)

Encoded = Union[str, bytes, np.ndarray]  # a path, an encoded file, or raw (H, W, C) BGR pixels

_FLAGS = {True: cv2.IMREAD_COLOR, False: cv2.IMREAD_GRAYSCALE}
# libjpeg's DCT-domain scaling (1/2, 1/4, 1/8) inside the decoder, by colour and factor
_REDUCED = {
    (True, 2): cv2.IMREAD_REDUCED_COLOR_2,
    (True, 4): cv2.IMREAD_REDUCED_COLOR_4,
    (True, 8): cv2.IMREAD_REDUCED_COLOR_8,
    (False, 2): cv2.IMREAD_REDUCED_GRAYSCALE_2,
    (False, 4): cv2.IMREAD_REDUCED_GRAYSCALE_4,
    (False, 8): cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


class BadImageError(ValueError):
    """An image that cannot be read, or is too small; the caller adds path and list line."""


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG's frame header, or None when ``data`` is not a JPEG whose
    header can be found (the caller then decodes it at full size)."""
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _SOF:
            return int.from_bytes(data[at + 5 : at + 7], "big"), int.from_bytes(
                data[at + 7 : at + 9], "big"
            )
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def reduction(data: bytes, target: tuple[int, int]) -> int:
    """The largest libjpeg scale factor (8, 4, 2, or 1 for none) that keeps a JPEG at least
    ``target`` (width, height) in both sides, whatever its EXIF orientation."""
    size = jpeg_size(data)
    if size is None:
        return 1
    short, need = min(size), max(target)
    return next((f for f in (8, 4, 2) if -(-short // f) >= need), 1)


def _from_pixels(raw: np.ndarray, color: bool) -> np.ndarray:
    """Raw Datum pixels (H, W, C) BGR or gray, converted as OpenCV converts channels."""
    if raw.ndim != 3 or raw.shape[2] not in (1, 3) or raw.size == 0:
        raise BadImageError(f"a raw Datum of shape (H, W, C) = {raw.shape}; expected C = 1 or 3")
    if raw.shape[2] == 3:
        return raw if color else cv2.cvtColor(raw, cv2.COLOR_BGR2GRAY)
    return cv2.cvtColor(raw, cv2.COLOR_GRAY2BGR) if color else raw[:, :, 0]


def _read(source: str | bytes) -> bytes:
    if isinstance(source, bytes):
        return source
    try:
        with open(source, "rb") as handle:
            return handle.read()
    except OSError as why:
        raise BadImageError(f"cannot read the image ({type(why).__name__}: {why})") from None


def decode(source: Encoded, color: bool, fast_to: tuple[int, int] | None = None) -> np.ndarray:
    """``source`` (a path, the encoded bytes, or raw (H, W, C) BGR pixels) as OpenCV's
    ``imread`` gives it: (H, W, 3) BGR (``color``) or (H, W, 1) gray, uint8.

    ``fast_to``: (width, height) the image will be resized to; a JPEG at least twice as large
    is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (``IMREAD_REDUCED_*``), still at least that
    size: faster, close to (not equal to) the exact path.
    """
    try:
        if isinstance(source, np.ndarray):
            pixels = _from_pixels(source, color)
        else:
            data = _read(source)
            factor = reduction(data, fast_to) if fast_to else 1
            flag = _FLAGS[color] if factor == 1 else _REDUCED[(color, factor)]
            pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
            if pixels is None:
                raise BadImageError(
                    "cannot read the image (OpenCV cannot decode it: damaged, not an image, "
                    f"a format OpenCV does not read, or over {MAX_PIXELS} pixels)"
                )
    except BadImageError:
        raise
    except Exception as why:  # any failure to read one image is that image's error
        raise BadImageError(f"cannot read the image ({type(why).__name__}: {why})") from None
    return pixels if pixels.ndim == 3 else pixels[:, :, None]
