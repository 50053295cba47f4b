"""Decoding as Caffe's ImageData does (OpenCV's imread, IMREAD_COLOR / IMREAD_GRAYSCALE),
compared with opencv-python-headless on files of every kind users have, written here: JPEG
(baseline, progressive, CMYK, EXIF orientations 1-8), PNG (8/16-bit, gray, alpha, palette,
1-bit, EXIF), BMP, TIFF (8/16-bit, CMYK), GIF, WebP (lossless, lossy, alpha, EXIF)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from python_layers.data import decode, transforms

cv2 = pytest.importorskip("cv2")  # pinned in requirements-dev.txt
OPENCV = tuple(int(part) for part in cv2.__version__.split(".")[:2])

# (file, colour?) pairs where the two differ by at most 1 level, and why (see decode.py)
WITHIN_ONE = {
    ("rgb16.tif", True): "Pillow keeps the high byte; OpenCV rounds v / 257",
    ("rgb16.tif", False): "the same, before the gray conversion",
    ("rgb16.png", False): "libpng converts the 16-bit values to gray; Pillow has 8 bits",
    ("rgb.webp", False): "WebP to gray",
    ("rgba.webp", False): "WebP to gray",
    ("lossy.webp", False): "WebP to gray",
    ("exif6.webp", False): "WebP to gray",
}


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
        difference = np.abs(ours.astype(int) - expected).max()
        assert difference <= (1 if (name, color) in WITHIN_ONE else 0), difference


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
    same resize. Measured: mean 1.97 levels, 99th percentile 7, largest 12 (docs/data.md);
    bounds: mean < 3, 99th percentile < 10."""
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
    assert max(means) < 3 and max(tails) < 10, (means, tails)
