"""Decoding as Caffe's ImageData does (OpenCV's imread, IMREAD_COLOR / IMREAD_GRAYSCALE),
compared with opencv-python-headless on files of every kind users have, written here: JPEG
(baseline, progressive, CMYK, EXIF orientations 1-8), PNG (8/16-bit, gray, alpha, palette,
1-bit, EXIF), BMP, TIFF (8/16-bit, CMYK), GIF, WebP (lossless, lossy, alpha, EXIF)."""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from python_layers.data import decode, transforms

cv2 = pytest.importorskip("cv2")  # pinned in requirements-dev.txt
OPENCV = tuple(int(part) for part in cv2.__version__.split(".")[:2])


def smooth(rng, height, width, channels=3):
    small = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, channels), dtype=np.uint8)
    image = Image.fromarray(small.squeeze(), "RGB" if channels == 3 else "L")
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Every kind of file, 37x53 (not square: orientation shows), with random content."""
    folder = tmp_path_factory.mktemp("kinds")
    rng = np.random.default_rng(11)
    rgb = smooth(rng, 37, 53)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (37, 53, 1), dtype=np.uint8)], axis=2)
    wide = rng.integers(0, 65536, (37, 53, 3)).astype(np.uint16)
    photo = Image.fromarray(rgb)
    written = {
        "base.jpg": (photo, dict(quality=90)),
        "progressive.jpg": (photo, dict(quality=90, progressive=True)),
        "cmyk.jpg": (photo.convert("CMYK"), dict(quality=90)),
        "rgb8.png": (photo, {}),
        "gray8.png": (photo.convert("L"), {}),
        "rgba.png": (Image.fromarray(rgba), {}),
        "la.png": (photo.convert("LA"), {}),
        "palette.png": (photo.quantize(64), {}),
        "palette.gif": (photo.quantize(64), {}),
        "bilevel.png": (photo.convert("1"), {}),
        "rgb.bmp": (photo, {}),
        "rgb.tif": (photo, {}),
        "cmyk.tif": (photo.convert("CMYK"), {}),
        "rgb.webp": (photo, dict(lossless=True)),
        "rgba.webp": (Image.fromarray(rgba), dict(lossless=True)),
        "lossy.webp": (photo, dict(quality=80)),
    }
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        written[f"exif{orientation}.jpg"] = (photo, dict(quality=90, exif=exif))
        if orientation == 6:
            written["exif6.png"] = (photo, dict(exif=exif))
            written["exif6.webp"] = (photo, dict(exif=exif, lossless=True))
    for name, (image, options) in written.items():
        image.save(folder / name, **options)
    cv2.imwrite(str(folder / "rgb16.png"), wide)  # 16-bit files: OpenCV writes them
    cv2.imwrite(str(folder / "gray16.png"), wide[:, :, 0])
    cv2.imwrite(str(folder / "rgb16.tif"), wide)
    cv2.imwrite(str(folder / "gray16.tif"), wide[:, :, 0])
    return folder


NAMES = [
    "base.jpg", "progressive.jpg", "cmyk.jpg", *[f"exif{o}.jpg" for o in range(1, 9)],
    "rgb8.png", "gray8.png", "rgb16.png", "gray16.png", "rgba.png", "la.png", "palette.png",
    "bilevel.png", "exif6.png", "rgb.bmp", "rgb.tif", "cmyk.tif", "rgb16.tif", "gray16.tif",
    "palette.gif", "rgb.webp", "rgba.webp", "lossy.webp", "exif6.webp",
]  # fmt: skip


@pytest.mark.parametrize("color", [True, False], ids=["color", "gray"])
@pytest.mark.parametrize("name", NAMES)
def test_pixels_equal_opencv_imread(files, name, color):
    if OPENCV < (4, 14) and (name.endswith(".gif") or name == "exif6.webp"):
        pytest.skip("OpenCV < 4.14 reads no GIF and ignores WebP's EXIF; this follows 4.14")
    path = str(files / name)
    expected = cv2.imread(path, cv2.IMREAD_COLOR if color else cv2.IMREAD_GRAYSCALE)
    expected = expected if expected.ndim == 3 else expected[:, :, None]
    for source in (path, (files / name).read_bytes()):  # a file, or bytes (from an LMDB)
        ours = decode.decode(source, color)
        assert ours.shape == expected.shape and ours.dtype == np.uint8
        np.testing.assert_array_equal(ours, expected)  # OpenCV's own decoder: bit-equal


def test_the_orientation_is_applied(files):
    """EXIF 6 (rotate 90 clockwise to view): the 37x53 photo comes out 53x37."""
    plain, turned = (
        decode.decode(str(files / "exif1.jpg"), True),
        decode.decode(str(files / "exif6.jpg"), True),
    )
    assert turned.shape == (53, 37, 3)
    np.testing.assert_array_equal(turned, np.rot90(plain, k=-1))


def test_raw_datum_pixels_convert_like_files():
    rng = np.random.default_rng(2)
    bgr = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode.decode(bgr, True), bgr)
    expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)[:, :, None]
    np.testing.assert_array_equal(decode.decode(bgr, False), expected)


def test_a_bad_file_is_a_bad_image_error(tmp_path):
    (tmp_path / "x.png").write_bytes(b"\x89PNG not really")
    for source in (str(tmp_path / "x.png"), b"garbage", str(tmp_path / "missing.jpg")):
        with pytest.raises(decode.BadImageError, match="cannot read the image"):
            decode.decode(source, True)


def test_fast_decode_of_large_jpegs_is_close_to_the_exact_path(tmp_path):
    """1600x1200 photos-alike, resized to 256x256: libjpeg's 1/4-scale DCT decode, then the
    same INTER_LINEAR resize. The exact path aliases (INTER_LINEAR reads 4 source pixels of
    each 6.25 x 4.7 block: Caffe's pixels), the 1/4-scale decode averages first. Measured: mean
    7.3 levels, 99th percentile 28 (docs/data.md); bounds: mean < 9, 99th percentile < 35."""
    rng = np.random.default_rng(3)
    means, tails = [], []
    for index in range(4):
        path = tmp_path / f"{index}.jpg"
        Image.fromarray(smooth(rng, 1200, 1600)).save(path, quality=90)
        exact = transforms.load(str(path), transforms.Transform(256, 256))
        fast = transforms.load(str(path), transforms.Transform(256, 256, fast_decode=True))
        difference = np.abs(exact.astype(int) - fast)
        means.append(difference.mean())
        tails.append(np.percentile(difference, 99))
    assert max(means) < 9 and max(tails) < 35, (means, tails)


def test_an_eps_file_named_jpg_starts_no_program(tmp_path, monkeypatch):
    """Pillow ran Ghostscript on EPS whatever the file's name; OpenCV reads no EPS."""
    marker = tmp_path / "gs-ran"
    fake = tmp_path / "bin" / "gs"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nnewpath 0 0 moveto showpage\n"
    (tmp_path / "photo.jpg").write_bytes(eps)
    for color in (True, False):
        with pytest.raises(decode.BadImageError, match="cannot read the image"):
            transforms.load(str(tmp_path / "photo.jpg"), transforms.Transform(8, 8, color))
    assert not marker.exists()


def _png_header(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + header
    crc = struct.pack(">I", zlib.crc32(chunk))
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(header)) + chunk + crc


def test_a_decompression_bomb_is_refused_before_decoding():
    """A 100000 x 100000 PNG header (10^10 pixels, 30 GB decoded): refused, nothing allocated."""
    with pytest.raises(decode.BadImageError, match=r"over \d+ pixels"):
        decode.decode(_png_header(100_000, 100_000) + b"\0" * 64, True)


def test_a_raw_datum_without_channels_is_a_bad_image():
    for raw in (np.zeros((4, 5, 0), np.uint8), np.zeros((4, 5, 2), np.uint8)):
        with pytest.raises(decode.BadImageError, match="raw Datum"):
            decode.decode(raw, True)


def test_fast_decode_keeps_the_jpeg_at_least_the_target(tmp_path):
    """libjpeg's factor is the largest that keeps both sides >= the target's larger side."""
    path = tmp_path / "big.jpg"
    cv2.imwrite(str(path), np.zeros((1200, 1600, 3), np.uint8))
    data = path.read_bytes()
    assert decode.jpeg_size(data) == (1200, 1600)
    expected = {(256, 256): 4, (256, 150): 4, (500, 500): 2, (700, 300): 1, (100, 100): 8}
    assert {t: decode.reduction(data, t) for t in expected} == expected
    assert decode.reduction(_png_header(1600, 1200), (100, 100)) == 1  # not a JPEG: exact
    assert decode.decode(data, True, (500, 500)).shape == (600, 800, 3)
