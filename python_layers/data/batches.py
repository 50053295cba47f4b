"""Batches of images and targets, and their prefetching.

:class:`BatchMaker` turns a global batch index into this rank's arrays: it asks the sampler
which images, draws each image's crop and mirror numbers from ``(seed, b)``, and reads and
transforms the images, so that batch b is the same whatever thread makes it and whenever.
:class:`Prefetcher` keeps the next few batches in the making on daemon threads (bounded: at
most ``depth`` batches exist at once; daemon threads never hold up the exit of the process).
"""

from __future__ import annotations

import atexit
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from . import input_spec, sampler, transforms
from .index import Index
from .sources import Source

# At exit, Python ends daemon threads that come back from C code with a forced unwind; one that
# comes back through OpenCV's C++ wrapper (whose catch (...) swallows it) aborts the process
# ("FATAL: exception not rethrown"). So the workers stop between images at exit, and the exit
# waits for those inside an image to leave it.
_STOPPING = threading.Event()
_BUSY = threading.Condition()
_busy_workers = 0


class _StoppedError(Exception):
    """The process is exiting: the batch in the making is dropped."""


@atexit.register
def _wait_for_workers(timeout: float = 30.0) -> None:
    _STOPPING.set()
    with _BUSY:
        _BUSY.wait_for(lambda: _busy_workers == 0, timeout)


@dataclass(frozen=True)
class Plan:
    """What the batches are: sizes, order, randomness, phase and form of the targets."""

    batch_size: int  # per rank
    ranks: int
    rank: int
    seed: int
    sampling: str
    shuffle: bool
    train: bool
    classes: int
    max_labels: int
    targets: str  # "labels" or "dense"
    skip_bad_images: bool

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.ranks


@dataclass
class Batch:
    data: np.ndarray  # (B, C, H, W) float32
    targets: np.ndarray  # (B, K) label lists, or (B, classes) dense
    weights: np.ndarray | None  # (B, K) with label lists from a weighted list file
    skipped: list[str]  # "file:line path (why)" of bad images replaced in this batch


class BatchMaker:
    def __init__(self, images: Index, source: Source, transform: transforms.Transform, plan: Plan):
        self.images, self.source, self.transform, self.plan = images, source, transform, plan
        self.sampler = sampler.choose(
            plan.sampling, images, batch_size=plan.global_batch, seed=plan.seed,
            shuffle=plan.shuffle, classes=plan.classes, rank=plan.rank, ranks=plan.ranks,
        )  # fmt: skip
        self.shape = self._input_shape()

    def _input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input (:func:`.input_spec.input_shape`): the first image is read
        only when nothing crops or resizes."""

        def first_size() -> tuple[int, int]:
            try:
                first = transforms.load(self.source.read(0), self.transform)
            except transforms.BadImageError as why:  # read at set-up: named like any other
                where = f"{self.images.where(0)} {self.source.name(0)}"
                raise transforms.BadImageError(f"{where}: {why}") from None
            return first.shape[0], first.shape[1]

        return input_spec.input_shape(self.transform, first_size)

    def indices(self, b: int) -> np.ndarray:
        """This rank's image indices in global batch b."""
        return self.sampler.batch(b)

    def randoms(self, b: int) -> np.ndarray:
        """(B, 3) uniform numbers (crop row, crop column, mirror) for this rank's images."""
        p = self.plan
        every = np.random.default_rng([p.seed, b, 1]).random((p.global_batch, 3))
        return sampler.rank_part(every, p.rank, p.ranks)

    def __call__(self, b: int) -> Batch:
        p, images = self.plan, self.images
        indices, randoms = self.indices(b), self.randoms(b)
        data = np.empty((p.batch_size, *self.shape), np.float32)
        skipped: list[str] = []
        for slot, (index, numbers) in enumerate(zip(indices, randoms)):
            for attempt in range(len(images)):  # a bad image: the next one in the list
                if _STOPPING.is_set():
                    raise _StoppedError
                current = (int(index) + attempt) % len(images)
                try:
                    pixels = transforms.load(self.source.read(current), self.transform)
                    transforms.to_input(pixels, self.transform, p.train, numbers, data[slot])
                except transforms.BadImageError as why:
                    where = f"{images.where(current)} {self.source.name(current)}"
                    if not p.skip_bad_images:
                        raise transforms.BadImageError(f"{where}: {why}") from None
                    skipped.append(f"{where} ({why})")
                    continue
                indices[slot] = current
                break
            else:
                raise transforms.BadImageError(f"{images.source}: no image could be read")
        labels, weights = images.targets(indices, p.max_labels)
        if p.targets == "dense":
            dense = np.zeros((p.batch_size, p.classes), np.float32)
            rows, slots = np.nonzero(labels >= 0)
            values = 1.0 if weights is None else weights[rows, slots]
            np.add.at(dense, (rows, labels[rows, slots].astype(np.int64)), values)
            return Batch(data, dense, None, skipped)
        return Batch(data, labels, weights, skipped)


class Prefetcher:
    """Batches ``start, start + 1, ...`` made ahead on ``workers`` daemon threads, at most
    ``depth`` at once; :meth:`next` returns them in order (re-raising a batch's error)."""

    def __init__(self, make, start: int, depth: int, workers: int):
        self.make, self.next_index, self.depth = make, start, depth
        self.pending: dict[int, Future] = {}
        self.tasks: queue.Queue = queue.Queue()
        self.submitted = start
        self.workers = workers
        for _ in range(workers):
            threading.Thread(target=self._work, daemon=True, name="multilabel-data").start()
        self._fill()

    def _work(self) -> None:
        while True:
            task = self.tasks.get()
            if task is None:  # close()
                return
            b, future = task
            if future.set_running_or_notify_cancel():
                global _busy_workers
                with _BUSY:
                    _busy_workers += 1
                try:
                    future.set_result(self.make(b))
                except BaseException as why:  # handed to the caller of next()
                    future.set_exception(why)
                finally:
                    with _BUSY:
                        _busy_workers -= 1
                        _BUSY.notify_all()

    def _fill(self) -> None:
        while self.submitted < self.next_index + self.depth:
            future: Future = Future()
            self.pending[self.submitted] = future
            self.tasks.put((self.submitted, future))
            self.submitted += 1

    def next(self) -> Batch:
        future = self.pending.pop(self.next_index)
        self.next_index += 1
        self._fill()
        return future.result()

    def close(self) -> None:
        """Cancel what has not started and let the threads end after their current batch."""
        for future in self.pending.values():
            future.cancel()
        self.pending.clear()
        for _ in range(self.workers):
            self.tasks.put(None)
