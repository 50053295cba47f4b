"""Encoded image bytes to pixels as Caffe's ``ImageData`` gets them from OpenCV's ``imread``
(``IMREAD_COLOR``: 3 channels BGR; ``IMREAD_GRAYSCALE``: 1), decoded with Pillow.

What ``imread`` does and this module does the same way (tests/test_decode.py compares every
case with opencv-python-headless): the EXIF orientation is applied; 16-bit samples become 8
by keeping the high byte; CMYK becomes RGB by OpenCV's formula for JPEG (``k - (255 - c) k /
256`` per channel, on the inverted values Adobe writes) and libtiff's for TIFF; alpha is
dropped (no blending); palettes and 1-bit images are expanded; gray becomes 3 equal channels;
colour becomes gray as libjpeg does for JPEG (its Y channel), as libpng does for PNG, and as
``cvtColor`` does for the others (weights 0.299, 0.587, 0.114). Known differences, at most 1
level: colour 16-bit TIFF (Pillow keeps the high byte, OpenCV rounds v / 257), 16-bit colour
PNG read as gray (libpng weighs the 16-bit values), and WebP read as gray.

Plain 8-bit RGB and gray files stay Pillow images until they are resized (no copy of the
full-size pixels); the other kinds go through numpy once.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

# R, G, B weights, shift and rounding: libpng's rgb_to_gray (PNG), OpenCV's cvtColor (others)
_GRAY = {"PNG": ((9797, 19234, 3737), 15, 0), None: ((4899, 9617, 1868), 14, 1 << 13)}
_WIDE = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class BadImageError(ValueError):
    """An image that cannot be read, or is too small; the caller adds path and list line."""


def _to_gray(rgb: np.ndarray, kind: str | None) -> Image.Image:
    weights, shift, half = _GRAY.get(kind, _GRAY[None])
    weighted = rgb.astype(np.uint32) @ np.array(weights, np.uint32)
    return Image.fromarray(((weighted + half) >> shift).astype(np.uint8), "L")


def _base(image: Image.Image, kind: str | None) -> Image.Image:
    """The image as 8-bit "RGB" or "L", OpenCV's way (alpha dropped, 16 bits to 8, CMYK)."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode in _WIDE:
        pixels = np.asarray(image)
        if mode == "I" and pixels.max(initial=0) < 256:
            return Image.fromarray(pixels.astype(np.uint8), "L")  # 8 bits Pillow widened
        return Image.fromarray((pixels.astype(np.uint32) >> 8).astype(np.uint8), "L")
    if mode == "CMYK":
        cmyk = np.asarray(image).astype(np.int32)
        if kind == "JPEG":  # OpenCV's formula, on the inverted values Adobe's files hold
            k = 255 - cmyk[..., 3:]
            rgb = k - ((cmyk[..., :3]) * k >> 8)
        else:  # libtiff's
            rgb = (255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) // 255
        return Image.fromarray(rgb.astype(np.uint8), "RGB")
    if mode in ("LA", "La"):
        return image.getchannel(0)
    return image.convert("RGB")  # P, PA, 1, RGBA, RGBa, YCbCr, HSV, LAB


def open_image(source, color: bool, draft: tuple[int, int] | None = None) -> Image.Image:
    """``source`` (a path, the encoded bytes, or raw (H, W, C) BGR uint8 pixels) as a loaded
    Pillow image, "RGB" (``color``) or "L", oriented and converted as ``imread`` does.

    ``draft``: (width, height) the image will be resized to; a JPEG at least twice as large
    is decoded by libjpeg at 1/2, 1/4 or 1/8 scale (``Image.draft``), still at least that
    size: faster, and close to (not equal to) the exact path.
    """
    if isinstance(source, np.ndarray):  # raw pixels (a Datum without --encoded)
        rgb = source[:, :, ::-1] if source.shape[2] == 3 else source[:, :, 0]
        image, kind = Image.fromarray(np.ascontiguousarray(rgb)), None
    else:
        try:
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            kind = image.format
            if kind == "JPEG" and (draft or not color):
                image.draft("RGB" if color else "L", draft or image.size)  # gray: libjpeg's Y
            ImageOps.exif_transpose(image, in_place=True)  # loads it; turns only if tagged
            image.load()
            image = _base(image, kind)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as why:
            raise BadImageError(f"cannot read the image ({type(why).__name__}: {why})") from None
    if color:
        return image if image.mode == "RGB" else image.convert("RGB")
    return image if image.mode == "L" else _to_gray(np.asarray(image), kind)


def decode(source, color: bool, draft: tuple[int, int] | None = None) -> np.ndarray:
    """:func:`open_image` as (H, W, 3) BGR or (H, W, 1) gray uint8 pixels (views)."""
    pixels = np.asarray(open_image(source, color, draft))
    return pixels[:, :, ::-1] if color else pixels[:, :, None]
