"""``build_index --check-images`` through its command line, on real image files: missing,
truncated and non-image files named by file:line, exit 2; a clean list exits 0."""

from __future__ import annotations

import os
import subprocess
import sys

from image_data import write_images
from paths import REPO


def build_index(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "python_layers.data.build_index", *args],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_bad_image_is_named_by_file_and_line(tmp_path):
    listing, _ = write_images(tmp_path, count=12)
    (tmp_path / "img" / "3.png").unlink()
    png = (tmp_path / "img" / "5.png").read_bytes()
    (tmp_path / "img" / "5.png").write_bytes(png[: len(png) // 2])  # cut short
    (tmp_path / "img" / "9.png").write_text("not an image\n")
    done = build_index(str(listing), "--check-images", "--root-folder", str(tmp_path),
                       "--threads", "4")  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "checking images" in done.stderr  # the progress bar, on stderr
    summary = done.stderr[done.stderr.index("build_index: 3 of 12 images") :].splitlines()
    assert summary[0] == f"build_index: 3 of 12 images of {listing} cannot be read:"
    image = tmp_path / "img"
    assert summary[1] == f"  {listing}:5: {image / '3.png'}: no such file"  # line 1 is a comment
    assert summary[2].startswith(f"  {listing}:7: {image / '5.png'}: ")
    assert summary[3].startswith(f"  {listing}:11: {image / '9.png'}: ")
    assert len(summary) == 4


def test_a_list_whose_images_all_read_exits_0(tmp_path):
    listing, _ = write_images(tmp_path, count=5)
    done = build_index(str(listing), "--check-images", "--root-folder", str(tmp_path), "--gray",
                       "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"{listing}: all 5 images read" in done.stdout
    assert done.stderr == ""


def test_a_wrong_root_folder_is_hinted(tmp_path):
    listing, _ = write_images(tmp_path, count=3)
    done = build_index(str(listing), "--check-images", "--quiet")  # paths relative to the repo
    assert done.returncode == 2
    assert "3 of 3 images" in done.stderr and "(is --root-folder right?)" in done.stderr
