"""Caffe layer: multi-label image data from a list file, prefetched, resumable, sharded.

Prototxt::

    layer {
      name: "image_data"  type: "Python"      # not the deploy net's input name ("data")
      top: "data"  top: "labels"              # + top: "label_weights" when the list has weights
      python_param {
        module: "python_layers.multilabel_data"  layer: "MultiLabelImageDataLayer"
        # one string: adjacent literals join (a literal cannot cross a line)
        param_str: '{"source": "train.txt", "root_folder": "images/", "classes": 17000, '
                   '"batch_size": 64, "targets": "labels", "max_labels": 8, '
                   '"new_height": 256, "new_width": 256, "crop_size": 224, "mirror": true, '
                   '"mean_value": [104, 117, 123], "shuffle": true, "seed": 1, '
                   '"sampling": "sqrt", "workers": 2}'
      }
      param { lr_mult: 0 decay_mult: 0 }      # the read position: saved, never trained
      include { phase: TRAIN }
    }

The list file is indexed on first use (:mod:`python_layers.data.index`: a memory-mapped file
in a cache folder, shared by every process that reads the list; ``python -m
python_layers.data.build_index train.txt`` builds it ahead of time, with a progress bar).
Batch b (images, crops, flips) is a pure function of (seed, b, rank): see
:mod:`python_layers.data`. The number of batches read is the layer's one parameter blob, so
that Caffe saves it in snapshots and restores it on ``--snapshot``: a resumed run reads the
batches the uninterrupted run would have read.
"""

from __future__ import annotations

import hashlib
import sys

import caffe
import numpy as np

from .data import batches, index, input_spec, sampler, sources, transforms
from .errors import reports_errors
from .params import multilabel_data_params

LAYER = "MultiLabelImageDataLayer"
_SPLIT = float(2**20)  # the batch count is stored as two float32s: exact below 2^44 batches


@reports_errors
class MultiLabelImageDataLayer(caffe.Layer):
    """Images and their label lists (or dense targets), batch by batch.

    Tops:
      0. data: (B, C, H, W) float32, BGR, ``(pixel - mean) * scale``; B = batch_size per
         process (each rank of a multi-GPU run takes its share of a global batch of
         batch_size x ranks).
      1. labels: (B, max_labels) class indices padded with -1 (``"targets": "labels"``), or
         targets: (B, classes) dense (``"targets": "dense"``; weights included, 1 otherwise).
      2. label_weights: (B, max_labels), only with label lists from a weighted list file.
    Parameter blob: (3,) = the batches read (two parts) and a fingerprint of the
    configuration; set ``param { lr_mult: 0 decay_mult: 0 }`` so that the solver leaves it.
    """

    def setup(self, bottom, top) -> None:
        # 1. Parameters, the list file, the transform.
        p = multilabel_data_params(self.param_str)
        if len(bottom) != 0:
            raise ValueError(f"{LAYER}: takes no bottoms, got {len(bottom)}")
        try:  # the list's memory-mapped index: built on first use, shared through the cache
            images = index.open_index(p["source"], progress=None)
            images.check(p["classes"], p["max_labels"])
        except index.ListFileError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        weighted = p["targets"] == "labels" and images.weights is not None
        wanted = 3 if weighted else 2
        if len(top) != wanted:
            names = "data, labels, label_weights" if weighted else "data, " + p["targets"]
            raise ValueError(
                f"{LAYER}: needs {wanted} tops ({names}) for this list file and "
                f'"targets": "{p["targets"]}"; got {len(top)}'
            )
        transform = self._transform(p)
        # 2. The plan: this process's share of every global batch.
        self.training = self.phase == caffe.TRAIN
        plan = batches.Plan(
            batch_size=p["batch_size"],
            ranks=max(1, caffe.solver_count()),
            rank=caffe.solver_rank(),
            seed=p["seed"],
            sampling=p["sampling"],
            shuffle=p["shuffle"],
            train=self.training,
            classes=p["classes"],
            max_labels=p["max_labels"],
            targets=p["targets"],
            skip_bad_images=p["on_bad_image"] == "skip",
        )
        try:
            source = sources.open_source(p, images, _datum)  # files, or what a key selects
            self.maker = batches.BatchMaker(images, source, transform, plan)
        except (transforms.BadImageError, ValueError) as why:
            raise ValueError(f"{LAYER}: {why}") from None
        self.depth, self.workers = p["prefetch"], p["workers"]
        self.prefetcher: batches.Prefetcher | None = None  # started by the first forward
        self.fingerprint = _fingerprint(p, plan, images.digest)
        self.written: np.ndarray | None = None
        self.skipped = 0
        # 3. The state blob (in TEST nets too: snapshots load into them by layer name).
        self.blobs.add_blob(3)
        self.blobs[0].data[...] = 0
        # 4. Top shapes: fixed for the whole run.
        width = p["max_labels"] if p["targets"] == "labels" else p["classes"]
        top[0].reshape(plan.batch_size, *self.maker.shape)
        top[1].reshape(plan.batch_size, width)
        if weighted:
            top[2].reshape(plan.batch_size, width)

    def _transform(self, p) -> transforms.Transform:
        try:
            spec = input_spec.InputSpec.from_params(p)
        except ValueError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        return spec.transform_with(_mean(spec.mean_file) if spec.mean_file else None)

    def reshape(self, bottom, top) -> None:
        pass  # shapes were set at setup and never change

    def _batches_read(self) -> int:
        """Batches read so far, from the state blob (0 for a fresh run); checks it is ours."""
        state = self.blobs[0].data
        if not state.any():
            return 0
        if state[2] != np.float32(self.fingerprint):
            raise ValueError(
                f"{LAYER}: the restored snapshot's data state was written by another "
                "configuration (list file, seed, batch size, ranks, sampling or shuffle "
                "changed) or by an older version of this layer (another batch order); "
                "resuming would read other batches than the interrupted run. "
                "Resume with the same configuration, or start from its weights with "
                "--weights (a fresh data order)"
            )
        return int(state[0]) * int(_SPLIT) + int(state[1])

    def _write_state(self, read: int) -> None:
        self.written = np.array(
            [read // int(_SPLIT), read % int(_SPLIT), self.fingerprint], np.float32
        )
        self.blobs[0].data[...] = self.written

    def forward(self, bottom, top) -> None:
        # 1. Where the run stands: the first TRAIN forward reads the state (0, or a snapshot's);
        #    later ones check that nothing but this layer changed it.
        if self.prefetcher is None:
            start = self._batches_read() if self.training else 0
            self.prefetcher = batches.Prefetcher(self.maker, start, self.depth, self.workers)
        elif self.training and not np.array_equal(self.blobs[0].data, self.written):
            raise ValueError(
                f"{LAYER}: the solver changed this layer's state blob (the batches read): "
                "add `param { lr_mult: 0 decay_mult: 0 }` to the layer in the prototxt"
            )
        # 2. The next batch, made ahead by the workers.
        try:
            batch = self.prefetcher.next()
        except transforms.BadImageError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        top[0].data[...] = batch.data
        top[1].data[...] = batch.targets
        if len(top) == 3:
            top[2].data[...] = batch.weights
        # 3. The new state, and what was skipped (into Caffe's log, on stderr).
        if self.training:
            self._write_state(self.prefetcher.next_index)
        if batch.skipped:
            self.skipped += len(batch.skipped)
            for line in batch.skipped:
                print(f"{LAYER}: skipped a bad image: {line}", file=sys.stderr, flush=True)
            print(
                f"{LAYER}: {self.skipped} bad image(s) skipped so far", file=sys.stderr, flush=True
            )

    def backward(self, top, propagate_down, bottom) -> None:
        pass  # data has no gradient

    def __del__(self) -> None:
        if getattr(self, "prefetcher", None) is not None:
            self.prefetcher.close()


def _mean(path: str) -> np.ndarray:
    """A mean_file's (C, H, W) float32 array: a Caffe ``BlobProto`` (read here, with Caffe)."""
    blob = caffe.proto.caffe_pb2.BlobProto()
    try:
        with open(path, "rb") as handle:
            blob.ParseFromString(handle.read())
        return caffe.io.blobproto_to_array(blob)[0].astype(np.float32)
    except Exception as why:  # unreadable, or not a BlobProto
        raise ValueError(f"{LAYER}: mean_file {path}: {why}") from None


def _datum(value: bytes):
    """A convert_imageset value: the encoded file, or raw (H, W, C) BGR pixels."""
    datum = caffe.proto.caffe_pb2.Datum()
    datum.ParseFromString(value)
    if datum.encoded:
        return datum.data
    raw = np.frombuffer(datum.data, np.uint8).reshape(datum.channels, datum.height, datum.width)
    return raw.transpose(1, 2, 0)


def _fingerprint(p: dict, plan: batches.Plan, listing: str) -> int:
    """A number below 2^24 (exact in float32) naming what decides the batch order: the list
    file's bytes (their SHA-256, from the index), the settings, and the order's version."""
    settings = (p["seed"], plan.global_batch, plan.ranks, p["sampling"], p["shuffle"])
    named = (listing, settings, sampler.ORDER_VERSION, index.FORMAT)
    digest = hashlib.sha256(repr(named).encode()).digest()
    return 1 + int.from_bytes(digest[:3], "little") % (2**24 - 1)
