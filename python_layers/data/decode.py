"""Encoded image bytes to pixels as Caffe's ``ImageData`` gets them from OpenCV's ``imread``
(``IMREAD_COLOR``: 3 channels BGR; ``IMREAD_GRAYSCALE``: 1), decoded with Pillow.

What ``imread`` does and this module does the same way (tests/test_decode.py compares every
case with opencv-python-headless): the EXIF orientation is applied; 16-bit samples become 8
by keeping the high byte; CMYK becomes BGR by OpenCV's formula (``k - (255 - c) k / 256``
per channel, on the inverted values Adobe writes); alpha is dropped (no blending); palettes
and 1-bit images are expanded; gray becomes 3 equal channels; colour becomes gray as libjpeg
does for JPEG (its Y channel), as libpng does for PNG, and as ``cvtColor`` does for the
others (weights 0.299, 0.587, 0.114). Known differences, at most 1 level: colour 16-bit TIFF
(Pillow keeps the high byte, OpenCV rounds v / 257), 16-bit colour PNG read as gray (libpng
weighs the 16-bit values), and WebP read as gray.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

# R, G, B weights and shift: OpenCV's cvtColor (rounded), libpng's rgb_to_gray (truncated)
_GRAY = {"cvtColor": ((4899, 9617, 1868), 14, 1 << 13), "PNG": ((9797, 19234, 3737), 15, 0)}


class BadImageError(ValueError):
    """An image that cannot be read, or is too small; the caller adds path and list line."""


def _eight_bits(image: Image.Image, kind: str | None) -> np.ndarray:
    """(H, W) or (H, W, C) uint8 of any Pillow image, OpenCV's way (no alpha); ``kind``:
    the file's format."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        pixels = np.asarray(image)
        if mode == "I" and pixels.max(initial=0) < 256:
            return pixels.astype(np.uint8)  # an 8-bit image Pillow widened
        return (pixels.astype(np.uint32) >> 8).astype(np.uint8)  # 16 bits: the high byte
    if mode == "CMYK":
        cmyk = np.asarray(image).astype(np.int32)
        if kind == "JPEG":  # OpenCV's formula, on the inverted values Adobe's files hold
            inverted = 255 - cmyk
            k = inverted[..., 3:]
            return (k - ((255 - inverted[..., :3]) * k >> 8)).astype(np.uint8)
        return ((255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) // 255).astype(np.uint8)  # libtiff
    if mode in ("L", "RGB"):
        return np.asarray(image)
    if mode in ("LA", "La"):
        return np.asarray(image.getchannel(0))
    return np.asarray(image.convert("RGB"))  # P, PA, 1, RGBA, RGBa, YCbCr, HSV, LAB


def decode(source, color: bool, draft: tuple[int, int] | None = None) -> np.ndarray:
    """``source`` (a path, the encoded bytes, or raw (H, W, C) BGR uint8 pixels) as (H, W, 3)
    BGR or (H, W, 1) gray uint8.

    ``draft``: (width, height) that the image will be resized to; a JPEG at least twice as
    large is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (``Image.draft``), still at least
    that size: faster, and close to (not equal to) the exact path.
    """
    if isinstance(source, np.ndarray):  # raw pixels (a Datum without --encoded)
        return _channels(source[:, :, ::-1], color, None)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            kind = image.format
            if kind == "JPEG" and (draft or not color):
                size = draft if draft else image.size
                image.draft("RGB" if color else "L", size)  # gray: libjpeg's Y, as OpenCV
            oriented = ImageOps.exif_transpose(image)
            pixels = _eight_bits(oriented, kind)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as why:
        raise BadImageError(f"cannot read the image ({type(why).__name__}: {why})") from None
    return _channels(pixels, color, kind)


def _channels(pixels: np.ndarray, color: bool, kind: str | None) -> np.ndarray:
    """RGB or gray pixels to BGR (color) or one gray channel, as OpenCV converts them."""
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if color:
        return np.repeat(pixels, 3, axis=2) if pixels.shape[2] == 1 else pixels[:, :, ::-1]
    if pixels.shape[2] == 1:
        return pixels
    weights, shift, half = _GRAY["PNG" if kind == "PNG" else "cvtColor"]
    weighted = pixels.astype(np.uint32) @ np.array(weights, np.uint32)
    return ((weighted + half) >> shift).astype(np.uint8)[:, :, None]
