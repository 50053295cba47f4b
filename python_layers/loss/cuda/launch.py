"""The loss on device memory: :file:`kernels.cu` launched through a backend.

The engine takes device addresses (Caffe's ``_gpu_data_ptr`` / ``_gpu_diff_ptr``), so the
scores never leave the GPU: forward is two kernel launches (three with the probabilities) and
one read of four doubles (the loss and a bad-input code), which is also where it waits for the
GPU; backward is one launch, from the inputs and the per-position statistics forward kept.
The math is :mod:`python_layers.loss.engine`'s (the kernels take Z's rule from
:mod:`..normalize`; their ``target_coefficients`` and ``z_divisor`` are the C++ twins of
:func:`..coefficients.coefficients` and :func:`..normalize.divisor`, held to them by
tests/test_coefficients.py: docs/loss.md); on bad input
nothing is written and :class:`DeviceInputError` is raised, so that the caller can word the
error with the CPU engine's checks (the same message as on the CPU).

A backend launches the kernels and owns the small buffers: :mod:`.cupy_backend` on a GPU;
the tests drive the same kernels, compiled for the host, through their own backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..layout import Layout
from ..normalize import divisor_rule, weight_sum
from ..options import DEFAULT_OPTIONS, Options

KERNELS = Path(__file__).with_name("kernels.cu")
N_STATS, N_PARTS, N_STATUS = 8, 3, 4  # doubles per position / per position / in the status
R_LOSS, R_BAD, R_BAD_AT = 0, 2, 3  # status entries read by the host
BAD_SCORES, BAD_TARGETS = 1, 2
DENSE, SPARSE = 0, 1
BLOCK_CLASSES = 32  # (N, C) with at least this many classes: a thread block per row


class DeviceInputError(Exception):
    """The kernels found non-finite scores (``code`` 1) or bad targets (2) at ``position``."""

    def __init__(self, code: int, position: int):
        super().__init__(f"bad input on the device (code {code}) at position {position}")
        self.code, self.position = code, position


class Backend(Protocol):
    """What the engine needs from a device: buffers, kernel launches, and reading back."""

    block_threads: int  # the most threads per block (a power of two, at most 1024)
    position_threads: int  # threads per block when a thread handles one position

    def buffer(self, count: int, dtype: Any) -> tuple[Any, int]: ...  # (array, address)
    def upload(self, array: np.ndarray) -> tuple[Any, int]: ...
    def launch(self, kernel: str, blocks: int, threads: int, args: tuple) -> None: ...
    def read(self, array: Any) -> np.ndarray: ...


def _u64(address: int | None) -> np.uint64:
    return np.uint64(address or 0)


class DeviceSoftmaxCrossEntropy:
    """Loss, gradients and probabilities on device memory, for any layout (the math of ..engine).

    ``block``: force a thread block per position (True) or a thread per position (False);
    by default a block per row for (N, C) with C >= 32, a thread per position otherwise.
    """

    def __init__(self, backend: Backend, options: Options = DEFAULT_OPTIONS, block=None):
        self.backend, self.options, self.block = backend, options, block
        weights = options.class_weights
        self._weights = None if weights is None else backend.upload(np.float32(weights))
        self._buffers: dict[str, tuple[Any, int]] = {}
        # Launch plans by call signature: a net calls with the same blobs every iteration,
        # so the argument lists are built once (Caffe reallocates a blob only to grow it).
        self._plans: dict[tuple, list[tuple[str, int, int, tuple]]] = {}

    def _buffer(self, name: str, count: int, dtype) -> int:
        """The address of a reused device buffer, reallocated only when it must grow (which
        drops the plans that hold the old address)."""
        array, address = self._buffers.get(name, (None, 0))
        if array is None or array.size < count:
            array, address = self._buffers[name] = self.backend.buffer(max(count, 1), dtype)
            self._plans.clear()
        return address

    def _shape(self, layout: Layout) -> tuple[str, int, int]:
        """Kernel suffix, blocks and threads for the per-position kernels."""
        block = self.block
        if block is None:
            block = layout.inner == 1 and layout.classes >= BLOCK_CLASSES
        if block:  # a power of two from 128, about 4 or more classes per thread
            threads = 128
            while threads * 2 <= layout.classes // 4:
                threads *= 2
            return "block", layout.positions, min(threads, self.backend.block_threads)
        threads = self.backend.position_threads
        return "thread", -(-layout.positions // threads), threads

    def forward(
        self,
        scores: int,
        targets: int,
        layout: Layout,
        *,
        label_weights: int = 0,
        probs_out: int = 0,
        loss_out: int = 0,
    ) -> tuple[float, tuple]:
        """The loss, and p into ``probs_out``; ``loss_out`` receives the loss as a float32
        (Caffe's top blob). Returns what :meth:`backward` needs (the per-position statistics
        stay in this engine's buffers until the next forward). Raises
        :class:`DeviceInputError` before writing."""
        inputs = (scores, targets, layout, label_weights)
        key = ("forward", *inputs, probs_out, loss_out)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._forward_plan(*inputs, probs_out, loss_out)
        for kernel, blocks, threads, args in plan:
            self.backend.launch(kernel, blocks, threads, args)
        result = self.backend.read(self._buffers["status"][0][:N_STATUS])  # waits for the GPU
        if result[R_BAD]:
            raise DeviceInputError(int(result[R_BAD]), int(result[R_BAD_AT]))
        return float(result[R_LOSS]), inputs

    def backward(
        self,
        saved: tuple,
        *,
        grad_out: int = 0,
        grad_scale: float = 1.0,
        target_grad_out: int = 0,
        label_weight_grad_out: int = 0,
        target_grad_scale: float = 1.0,
    ) -> None:
        """Gradients from the inputs :meth:`forward` had and its statistics (device addresses,
        0: not wanted): ``target_grad_out`` for dense targets, ``label_weight_grad_out`` for
        label lists with weights, both scaled by ``target_grad_scale``."""
        outputs = (grad_out, grad_scale, target_grad_out, label_weight_grad_out)
        key = ("backward", *saved, *outputs, target_grad_scale)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = self._backward_plan(*saved, *outputs, target_grad_scale)
        for kernel, blocks, threads, args in plan:
            self.backend.launch(kernel, blocks, threads, args)

    def __call__(
        self,
        scores: int,
        targets: int,
        layout: Layout,
        *,
        label_weights: int = 0,
        grad_out: int = 0,
        grad_scale: float = 1.0,
        probs_out: int = 0,
        target_grad_out: int = 0,
        label_weight_grad_out: int = 0,
        target_grad_scale: float = 1.0,
        loss_out: int = 0,
    ) -> float:
        """:meth:`forward`, then :meth:`backward` when a gradient is asked for."""
        loss, saved = self.forward(
            scores,
            targets,
            layout,
            label_weights=label_weights,
            probs_out=probs_out,
            loss_out=loss_out,
        )
        if grad_out or target_grad_out or label_weight_grad_out:
            self.backward(
                saved,
                grad_out=grad_out,
                grad_scale=grad_scale,
                target_grad_out=target_grad_out,
                label_weight_grad_out=label_weight_grad_out,
                target_grad_scale=target_grad_scale,
            )
        return loss

    def _common(self, scores, targets, layout, label_weights) -> tuple:
        """The arguments both per-position kernels take first."""
        kind = DENSE if layout.form.view_as_classes else SPARSE
        weights = _u64(self._weights[1] if self._weights else 0)
        return (
            *(_u64(scores), _u64(targets), _u64(label_weights), weights),
            *(np.int64(layout.positions), np.int64(layout.classes), np.int64(layout.inner)),
            *(np.int64(layout.labels_per_row), np.int64(kind)),
        )

    def _outputs(self, common, layout, grad_scale, target_scale, outputs) -> tuple:
        """The outputs kernel's launch; ``outputs``: grad, probs, target_grad, weight_grad."""
        suffix, blocks, threads = self._shape(layout)
        o, buffers = self.options, self._buffers
        args = (
            *(*common, np.int64(o.normalize_targets), np.float64(o.label_smoothing)),
            *(_u64(buffers[name][1]) for name in ("stats", "codes", "coefs", "status")),
            *(np.float64(grad_scale), np.float64(target_scale), *map(_u64, outputs)),
        )
        return (f"outputs_{suffix}", blocks, threads, args)

    def _forward_plan(self, scores, targets, layout, label_weights, probs_out, loss_out) -> list:
        """The launches (kernel, blocks, threads, arguments) of one forward."""
        o, positions, width = self.options, layout.positions, layout.labels_per_row
        form = layout.form
        pad = form.padding(o)
        sparse_count = 1 if form.view_as_classes else positions * width
        stats = self._buffer("stats", positions * N_STATS, np.float64)
        codes = self._buffer("codes", sparse_count, np.int32)
        coefs = self._buffer("coefs", sparse_count, np.float32)
        parts = self._buffer("parts", positions * N_PARTS, np.float64)
        status = self._buffer("status", N_STATUS, np.float64)
        eps, normalize = np.float64(o.label_smoothing), np.int64(o.normalize_targets)
        common = self._common(scores, targets, layout, label_weights)
        suffix, blocks, threads = self._shape(layout)
        rule = divisor_rule(o, layout, weighs_labels=form.counts_label_weights)
        plan = [  # 1. per-position statistics; 2. the loss and Z, in one block
            (
                f"stats_{suffix}",
                blocks,
                threads,
                (
                    *(*common, np.int64(bool(label_weights)), normalize, np.int64(pad is not None)),
                    *(np.float64(pad or 0), np.int64(rule.counts), eps),
                    *(np.float64(weight_sum(o, layout.classes)), _u64(stats), _u64(codes)),
                    *(_u64(coefs), _u64(parts)),
                ),
            ),
            (
                "finish",
                1,
                self.backend.block_threads,
                (
                    *(_u64(parts), np.int64(positions), np.int64(rule.counts)),
                    *(np.float64(rule.fixed), np.int64(rule.clamp), _u64(status), _u64(loss_out)),
                ),
            ),
        ]
        if probs_out:  # 3. p (skipped on the device when the input was bad)
            plan.append(self._outputs(common, layout, 0.0, 0.0, (0, probs_out, 0, 0)))
        return plan

    def _backward_plan(
        self, scores, targets, layout, label_weights, grad_out, grad_scale, target_grad_out,
        label_weight_grad_out, target_grad_scale,
    ) -> list:  # fmt: skip
        gradient_bottom = layout.form.gradient_bottom
        if target_grad_out and gradient_bottom != 1:
            raise ValueError("target_grad_out is for dense targets")
        if label_weight_grad_out and not (gradient_bottom == 2 and label_weights):
            raise ValueError("label_weight_grad_out is for label lists with label weights")
        common = self._common(scores, targets, layout, label_weights)
        outputs = (grad_out, 0, target_grad_out, label_weight_grad_out)
        return [self._outputs(common, layout, grad_scale, target_grad_scale, outputs)]

    def fill(self, address: int, count: int, value: float) -> None:
        """``data[:count] = value`` on the device (zero gradients)."""
        self._elementwise("fill_floats", address, count, value)

    def _elementwise(self, kernel: str, address: int, count: int, value: float) -> None:
        threads = self.backend.position_threads
        args = (_u64(address), np.int64(count), np.float64(value))
        self.backend.launch(kernel, -(-count // threads), threads, args)
