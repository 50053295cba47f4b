"""Benchmark of MultiLabelImageDataLayer (part of ``make bench``; also runs on its own).

1. Images per second through decode, resize to 256x256, random crop 224, mirror, batch 64,
   2 workers, on real-size JPEGs (500x375) written here, against PyTorch's DataLoader (2
   worker processes) doing the same with Pillow on the same files, both in steady state
   (the batches each made ahead before the clock starts are not counted) (torchvision's
   ``Resize``, ``RandomCrop``, ``RandomHorizontalFlip`` and ``ToTensor`` are these same
   Pillow and numpy calls; torchvision itself is not installed). Interleaved rounds, the best
   of each.
2. The example's conv net fed by the layer (the digit collages as PNG files) against the
   same net fed preloaded Input blobs: iteration time (forward + backward), ratio.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import caffe

BATCH, CROP, SIDE, WORKERS = 64, 224, 256, 2
IMAGES = 768  # 12 batches per pass
AHEAD = 2 * WORKERS  # batches either side has made ahead: not timed (steady state only)
ROUNDS = 3


def write_jpegs(directory: Path, count: int = IMAGES) -> Path:
    """Smooth random 500x375 RGB photos-alike (quality 90) and a list file with labels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = []
    for index in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((500, 375), Image.Resampling.BICUBIC)
        image.save(directory / f"{index}.jpg", quality=90)
        lines.append(f"{index}.jpg {index % 10} {(index * 7) % 10}")
    listing = directory / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def ours_runner(listing: Path):
    from caffe import layers as L

    from python_layers.netspec import multilabel_image_data

    n = caffe.NetSpec()
    n.data, n.labels = multilabel_image_data(
        source=str(listing),
        root_folder=f"{listing.parent}/",
        classes=10,
        batch_size=BATCH,
        new_height=SIDE,
        new_width=SIDE,
        crop_size=CROP,
        mirror=True,
        shuffle=True,
        seed=1,
        workers=WORKERS,
        prefetch=2 * WORKERS,
    )
    n.silence = L.Silence(n.data, n.labels, ntop=0)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(str(n.to_proto()))
    net = caffe.Net(f.name, caffe.TRAIN)
    os.unlink(f.name)
    timed = IMAGES // BATCH - AHEAD

    def run() -> float:
        for _ in range(AHEAD):  # made ahead while the other side ran: not timed
            net.forward()
        started = time.perf_counter()
        for _ in range(timed):
            net.forward()
        return timed * BATCH / (time.perf_counter() - started)

    return run


class _PillowDataset:
    """What torchvision's Resize((256, 256)), RandomCrop(224), RandomHorizontalFlip and
    ToTensor do, with the same Pillow calls."""

    def __init__(self, directory: Path):
        self.paths = sorted(directory.glob("*.jpg"))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index):
        import torch
        from PIL import Image

        with Image.open(self.paths[index]) as image:
            image = image.convert("RGB").resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        top, left = np.random.randint(0, SIDE - CROP + 1, 2)
        image = image.crop((left, top, left + CROP, top + CROP))
        if np.random.rand() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pixels = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        return pixels.float().div_(255), index % 10


def torch_runner(directory: Path):
    try:
        import torch
        from torch.utils.data import DataLoader
    except ImportError:
        return None
    torch.set_num_threads(1)
    loader = DataLoader(
        _PillowDataset(directory),
        batch_size=BATCH,
        shuffle=True,
        num_workers=WORKERS,
        persistent_workers=True,
        prefetch_factor=AHEAD // WORKERS,
    )

    def run() -> float:
        count, started = 0, None
        for index, (images, _) in enumerate(loader):
            if index == AHEAD:  # the first batches come from the workers' start-up
                started = time.perf_counter()
            elif index > AHEAD:
                count += len(images)
        return count / (time.perf_counter() - started)

    return run


def images_per_second() -> dict:
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        listing = write_jpegs(directory)
        runs = {"ours": ours_runner(listing), "torch": torch_runner(directory)}
        best = {name: 0.0 for name, run in runs.items() if run}
        for name in best:  # warm-up: worker start, first decodes
            runs[name]()
        for _ in range(ROUNDS):
            for name in best:
                best[name] = max(best[name], runs[name]())
    return {
        "ours_images_per_s": best["ours"],
        "torch_images_per_s": best.get("torch"),
        "ratio": best["ours"] / best["torch"] if best.get("torch") else None,
    }


def example_net_fed_by_the_layer(repeats: int = 30) -> dict:
    """Iteration time of the example net: image data layer vs preloaded Input blobs."""
    from caffe import layers as L

    from examples.digits_multilabel import data as digits
    from examples.digits_multilabel.nets import TRAIN_BATCH, body
    from examples.digits_multilabel.train import ensure_data
    from python_layers.netspec import multilabel_image_data, softmax_loss

    ensure_data()
    images = digits.DEFAULT_DIR / "images"

    def net_with(source: str):
        n = caffe.NetSpec()
        if source == "layer":
            n.data, n.labels = multilabel_image_data(
                source=str(images / "train_khot.txt"),
                root_folder=f"{images}/",
                classes=digits.CLASSES,
                batch_size=TRAIN_BATCH,
                max_labels=digits.MAX_DIGITS,
                is_color=False,
                scale=1 / 255,
                shuffle=True,
                seed=1,
            )
        else:
            n.data, n.labels = L.Input(
                shape=[dict(dim=[TRAIN_BATCH, 1, 32, 32]), dict(dim=[TRAIN_BATCH, 4])], ntop=2
            )
        body(n, n.data)
        n.loss = softmax_loss(n.scores, n.labels, targets="labels")
        with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
            f.write(str(n.to_proto()))
        net = caffe.Net(f.name, caffe.TRAIN)
        os.unlink(f.name)
        if source == "input":
            net.blobs["data"].data[...] = np.random.default_rng(0).uniform(size=(64, 1, 32, 32))
            net.blobs["labels"].data[...] = [[1, 2, -1, -1]] * TRAIN_BATCH
        return lambda: (net.forward(), net.backward())

    runs = {"layer": net_with("layer"), "input": net_with("input")}
    best = {name: float("inf") for name in runs}
    for _ in range(ROUNDS):
        for name, run in runs.items():
            run()
            started = time.perf_counter()
            for _ in range(repeats):
                run()
            best[name] = min(best[name], (time.perf_counter() - started) / repeats * 1e3)
    return {
        "layer_ms": best["layer"],
        "input_ms": best["input"],
        "ratio": best["layer"] / best["input"],
    }


def main() -> dict:
    caffe.set_mode_cpu()
    result = {
        "decode_resize_crop": images_per_second(),
        "example_net": example_net_fed_by_the_layer(),
    }
    speed, net = result["decode_resize_crop"], result["example_net"]
    torch_text = (
        f"PyTorch DataLoader {speed['torch_images_per_s']:.0f} images/s, "
        f"ours/torch = {speed['ratio']:.2f}"
        if speed["ratio"]
        else "PyTorch not installed"
    )
    print(
        f"\nimage data layer, {BATCH} JPEGs of 500x375 -> resize {SIDE} -> crop {CROP} + mirror, "
        f"{WORKERS} workers: ours {speed['ours_images_per_s']:.0f} images/s; {torch_text}"
    )
    print(
        f"example net fed by the layer: {net['layer_ms']:.2f} ms per iteration vs "
        f"{net['input_ms']:.2f} ms with preloaded Input blobs: ratio {net['ratio']:.3f}"
    )
    return result


if __name__ == "__main__":
    print(json.dumps(main()))  # one line, last: bench.py reads it
