"""Images to network input with Caffe's ``ImageData`` and ``transform_param`` semantics.

For one image: decode with OpenCV as ``imread`` does (:mod:`.decode`), resize to ``new_height``
x ``new_width`` when both are set (``cv2.resize``, ``INTER_LINEAR``, as Caffe's
``ReadImageToCVMat``), then crop ``crop_size`` x ``crop_size`` (at a
random offset in TRAIN, centred in TEST), mirror (TRAIN only, with probability 1/2), and
``(value - mean) * scale``, channels in BGR order, laid out (C, H, W) as float32. The mean is
``mean_value`` (one value per channel, or one for all) or a ``mean_file`` array of the
pre-crop shape (C, H, W), cropped with the image. The random choices come in as three uniform
numbers per image, so that the caller decides where they come from (a pure function of seed,
batch and position).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .decode import BadImageError, decode

__all__ = ["BadImageError", "Transform", "crop_box", "load", "to_input"]


@dataclass(frozen=True)
class Transform:
    new_height: int = 0
    new_width: int = 0
    is_color: bool = True
    crop_size: int = 0
    mirror: bool = False
    mean_value: tuple[float, ...] = ()
    mean: np.ndarray | None = None  # (C, H, W) float32, from a mean_file
    scale: float = 1.0
    fast_decode: bool = False  # JPEGs >= 2x the resize target: libjpeg's DCT scaling first

    @property
    def channels(self) -> int:
        return 3 if self.is_color else 1


def load(source, transform: Transform) -> np.ndarray:
    """The decoded, resized image (from a path, encoded bytes or raw pixels) as (H, W, C)
    uint8, BGR or one gray channel: Caffe's ``ReadImageToCVMat`` (``DecodeDatumToCVMat``)."""
    resize = transform.new_height > 0 and transform.new_width > 0
    size = (transform.new_width, transform.new_height)
    pixels = decode(source, transform.is_color, size if resize and transform.fast_decode else None)
    if not resize:
        return pixels
    resized = cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)
    return resized if resized.ndim == 3 else resized[:, :, None]


def crop_box(shape: tuple[int, ...], transform: Transform, train: bool, u_h: float, u_w: float):
    """(top, left, height, width) of the crop in an (H, W, C) image."""
    height, width = shape[0], shape[1]
    size = transform.crop_size
    if not size:
        return 0, 0, height, width
    if height < size or width < size:
        raise BadImageError(
            f"the image is {height}x{width} (after resizing), smaller than crop_size {size}"
        )
    if train:  # Caffe: Rand(H - crop + 1), from the caller's uniform numbers
        return int(u_h * (height - size + 1)), int(u_w * (width - size + 1)), size, size
    return (height - size) // 2, (width - size) // 2, size, size


def to_input(
    pixels: np.ndarray, transform: Transform, train: bool, randoms: np.ndarray, out: np.ndarray
) -> None:
    """Crop, mirror, subtract the mean and scale ``pixels`` (H, W, C) into ``out`` (C, h, w).

    ``randoms``: three uniform numbers in [0, 1): crop row, crop column, mirror.
    """
    top, left, height, width = crop_box(pixels.shape, transform, train, randoms[0], randoms[1])
    if out.shape != (transform.channels, height, width):
        raise BadImageError(
            f"the image gives input of shape {(transform.channels, height, width)}, not the "
            f"batch's {out.shape}: set new_height/new_width or crop_size so that all agree"
        )
    window = pixels[top : top + height, left : left + width].transpose(2, 0, 1)  # (C, h, w)
    mean = None
    if transform.mean is not None:
        if transform.mean.shape[1:] != pixels.shape[:2]:
            raise BadImageError(
                f"mean_file has shape {transform.mean.shape}; the image is {pixels.shape[:2]}"
            )
        mean = transform.mean[:, top : top + height, left : left + width]
    if train and transform.mirror and randoms[2] < 0.5:  # flipped views: no extra copy
        window = window[:, :, ::-1]
        mean = None if mean is None else mean[:, :, ::-1]
    np.copyto(out, window, casting="unsafe")
    if mean is not None:
        out -= mean
    elif transform.mean_value:
        out -= np.asarray(transform.mean_value, np.float32).reshape(-1, 1, 1)
    if transform.scale != 1:
        out *= np.float32(transform.scale)
