"""Benchmark of MultiLabelImageDataLayer (part of ``make bench``; also runs on its own).

1. Images per second through decode, resize to 256x256, random crop 224, mirror, batch 64,
   2 workers, on real-size JPEGs (500x375) written here, against two peers on the same files
   with the same worker count: PyTorch's DataLoader (2 worker processes) doing the same with
   Pillow (what torchvision's ``Resize``, ``RandomCrop``, ``RandomHorizontalFlip`` and
   ``ToTensor`` do on PIL images), and the DataLoader with torchvision's own tensor path
   (``decode_jpeg``, ``v2.Resize`` with antialias off, when torchvision is installed). All in
   steady state (no worker start-up, no batch made before the clock starts counted, no work of
   one side left running into the other's round: see ``ours_runner`` and ``torch_runner``).
   Interleaved rounds, the best of each. Also the CPU time per image (user + system, every
   thread or worker process), the same layer with 1 worker (how images/s grows from 1 to 2),
   and the floor: bare ``cv2.imdecode`` + ``cv2.resize`` + crop, mirror and float copy in a
   loop on one thread, with no index, sampler, threads or batches (``bare_runner``).
2. The same on large JPEGs (1600x1200): the exact path and ``fast_decode`` (libjpeg's DCT
   scaling first).
3. The example's conv net fed by the layer (the digit collages as PNG files) against the
   same net fed preloaded Input blobs: iteration time (forward + backward), ratio.
4. The layer at list scale (bench_data_scale.py; ``--lines``, default 10M; 0 skips it).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import wait
from pathlib import Path

import numpy as np

os.environ.setdefault("GLOG_minloglevel", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import caffe

BATCH, CROP, SIDE, WORKERS = 64, 224, 256, 2
IMAGES = 768  # 12 batches per pass
AHEAD = 2 * WORKERS  # batches either side has made ahead: not timed (steady state only)
ROUNDS = 3


def write_jpegs(directory: Path, count: int = IMAGES, size=(500, 375)) -> Path:
    """Smooth random RGB photos-alike (quality 90) and a list file with labels."""
    from PIL import Image

    rng = np.random.default_rng(0)
    lines = []
    for index in range(count):
        small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
        image.save(directory / f"{index}.jpg", quality=90)
        lines.append(f"{index}.jpg {index % 10} {(index * 7) % 10}")
    listing = directory / "list.txt"
    listing.write_text("\n".join(lines) + "\n")
    return listing


def cpu_seconds(pids=()) -> float:
    """User + system CPU seconds of this process (all threads) and of processes ``pids``."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = time.process_time()
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def ours_runner(listing: Path, fast_decode: bool = False, workers: int = WORKERS):
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
        workers=workers,
        prefetch=AHEAD,  # whatever the worker count: the clock below takes AHEAD off it
        fast_decode=fast_decode,
    )
    n.silence = L.Silence(n.data, n.labels, ntop=0)
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as f:
        f.write(str(n.to_proto()))
    net = caffe.Net(f.name, caffe.TRAIN)
    os.unlink(f.name)
    timed = IMAGES // BATCH - AHEAD

    def run() -> tuple[float, float]:
        # The AHEAD batches made after the previous round are taken off the clock; taking them
        # hands the idle workers new ones: from here on they make exactly the timed batches.
        for _ in range(AHEAD):
            net.forward()
        started, cpu = time.perf_counter(), cpu_seconds()
        for _ in range(timed):
            net.forward()
        images = timed * BATCH
        rate, cpu = images / (time.perf_counter() - started), (cpu_seconds() - cpu) / images
        # The next AHEAD batches, already in the making, are finished here, off the clock:
        # left running, they would take CPU from the next runner's round and be counted in
        # it (the same process for the other layer, the DataLoader's main process for torch).
        wait(list(net.layers[0].prefetcher.pending.values()))
        return rate, cpu

    run.layer = net.layers[0]  # the Python layer object (tests look at its prefetcher)
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


class _TorchvisionDataset(_PillowDataset):
    """torchvision's tensor path: its libjpeg decode, then v2's Resize (bilinear, antialias
    off: OpenCV's INTER_LINEAR), RandomCrop, RandomHorizontalFlip and the float conversion."""

    def __init__(self, directory: Path):
        import torch
        from torchvision.transforms import v2

        super().__init__(directory)
        self.transform = v2.Compose(
            [
                v2.Resize((SIDE, SIDE), antialias=False),
                v2.RandomCrop(CROP),
                v2.RandomHorizontalFlip(),
                v2.ToDtype(torch.float32, scale=True),
            ]
        )

    def __getitem__(self, index):
        from torchvision.io import decode_jpeg, read_file

        return self.transform(decode_jpeg(read_file(str(self.paths[index])))), index % 10


def torch_runner(directory: Path, dataset: type = _PillowDataset):
    try:
        import torch
        from torch.utils.data import DataLoader

        made = dataset(directory)
    except ImportError:
        return None
    torch.set_num_threads(1)
    loader = DataLoader(
        made,
        batch_size=BATCH,
        shuffle=True,
        num_workers=WORKERS,
        persistent_workers=True,
        prefetch_factor=AHEAD // WORKERS,
    )

    def run() -> tuple[float, float]:
        # The workers (started by the warm-up round: persistent) are idle between epochs and
        # make nothing ahead, so the clock runs over a whole epoch: every batch counted is
        # made after it starts, and none is made after it stops. (Starting the clock at the
        # arrival of batch AHEAD counted batch AHEAD + 1, made at the same time by the other
        # worker before the clock started: 7 batches counted for 6 batches of work.)
        warm = loader._iterator is not None  # the warm-up round starts the workers
        pids = [w.pid for w in loader._iterator._workers] if warm else []
        count, started, cpu = 0, time.perf_counter(), cpu_seconds(pids)
        for images, _ in loader:
            count += len(images)
        rate = count / (time.perf_counter() - started)
        return rate, ((cpu_seconds(pids) - cpu) / count if warm else 0.0)

    return run


def bare_runner(directory: Path):
    """The floor: OpenCV's decode and resize, the crop, mirror and float copy, one thread."""
    import cv2

    paths = sorted(directory.glob("*.jpg"))
    rng = np.random.default_rng(0)
    out = np.empty((3, CROP, CROP), np.float32)

    def run() -> tuple[float, float]:
        started, cpu = time.perf_counter(), cpu_seconds()
        for path in paths:
            pixels = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_COLOR)
            pixels = cv2.resize(pixels, (SIDE, SIDE), interpolation=cv2.INTER_LINEAR)
            top, left = rng.integers(0, SIDE - CROP + 1, 2)
            window = pixels[top : top + CROP, left : left + CROP].transpose(2, 0, 1)
            np.copyto(out, window[:, :, ::-1] if rng.random() < 0.5 else window, casting="unsafe")
        images = len(paths)
        return images / (time.perf_counter() - started), (cpu_seconds() - cpu) / images

    return run


def images_per_second(size=(500, 375), fast: bool = False) -> dict:
    """Interleaved rounds, the best rate of each; CPU time per image from that round."""
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder)
        listing = write_jpegs(directory, size=size)
        runs = {
            "ours": ours_runner(listing),
            "one_worker": ours_runner(listing, workers=1),
            "bare": bare_runner(directory),
            "torch": torch_runner(directory),
            "torchvision": torch_runner(directory, _TorchvisionDataset),
        }
        if fast:
            runs["fast"] = ours_runner(listing, fast_decode=True)
        best = {name: (0.0, 0.0) for name, run in runs.items() if run}
        for name in best:  # warm-up: worker start, first decodes
            runs[name]()
        for _ in range(ROUNDS):
            for name in best:
                best[name] = max(best[name], runs[name]())
    result = {"image_size": list(size)}
    for name, (rate, cpu) in best.items():
        result[f"{name}_images_per_s"], result[f"{name}_cpu_ms_per_image"] = rate, cpu * 1e3
    if "torch" in best:
        result["ratio"] = best["ours"][0] / best["torch"][0]
        result["cpu_ratio"] = best["ours"][1] / best["torch"][1]
    if "torchvision" in best:
        result["torchvision_ratio"] = best["ours"][0] / best["torchvision"][0]
        result["torchvision_cpu_ratio"] = best["ours"][1] / best["torchvision"][1]
    result["cpu_over_bare"] = best["ours"][1] / best["bare"][1]
    result["two_over_one_worker"] = best["ours"][0] / best["one_worker"][0]
    if fast:
        result["fast_over_exact"] = best["fast"][0] / best["ours"][0]
    return result


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


def row_text(r: dict) -> str:
    def side(name: str, label: str) -> str:
        if f"{name}_images_per_s" not in r:
            return f"{label} not installed"
        rate, cpu = r[f"{name}_images_per_s"], r[f"{name}_cpu_ms_per_image"]
        return f"{label} {rate:.0f} images/s ({cpu:.2f} ms CPU per image)"

    ratios = [
        f"ours/{peer} images/s {r[key]:.2f}"
        for peer, key in (
            ("Pillow DataLoader", "ratio"),
            ("torchvision DataLoader", "torchvision_ratio"),
        )
        if key in r
    ]
    ratios += [
        f"ours/{peer} CPU per image {r[key]:.2f}"
        for peer, key in (
            ("Pillow DataLoader", "cpu_ratio"),
            ("torchvision DataLoader", "torchvision_cpu_ratio"),
            ("bare OpenCV", "cpu_over_bare"),
        )
        if key in r
    ]
    ratios.append(f"2 workers/1 worker images/s {r['two_over_one_worker']:.2f}")
    if "fast_over_exact" in r:
        ratios.append(f"fast/exact images/s {r['fast_over_exact']:.2f}")
    sides = [
        side("ours", f"ours ({WORKERS} workers)"),
        side("one_worker", "ours (1 worker)"),
        side("fast", "fast_decode") if "fast_images_per_s" in r else None,
        side("bare", "bare OpenCV loop (1 thread)"),
        side("torch", "Pillow DataLoader"),
        side("torchvision", "torchvision DataLoader"),
    ]
    return (
        f"image data layer, {BATCH} JPEGs of {r['image_size'][0]}x{r['image_size'][1]} -> "
        f"resize {SIDE} -> crop {CROP} + mirror: "
        + "; ".join(s for s in sides if s)
        + "\n  "
        + ", ".join(ratios)
    )


def main(lines: int) -> dict:
    import bench_data_scale

    caffe.set_mode_cpu()
    result = {
        "decode_resize_crop": images_per_second(),
        "large_jpeg": images_per_second((1600, 1200), fast=True),
        "example_net": example_net_fed_by_the_layer(),
        "scale": bench_data_scale.main(lines) if lines else None,
    }
    for name in ("decode_resize_crop", "large_jpeg"):
        print(row_text(result[name]))
    net = result["example_net"]
    print(
        f"example net fed by the layer: {net['layer_ms']:.2f} ms per iteration vs "
        f"{net['input_ms']:.2f} ms with preloaded Input blobs: ratio {net['ratio']:.3f}"
    )
    if result["scale"]:
        print(bench_data_scale.table(result["scale"]))
    return result


if __name__ == "__main__":
    lines = int(os.environ.get("BENCH_DATA_LINES", 10_000_000))
    print(json.dumps(main(lines)))  # one line, last: bench.py reads it
