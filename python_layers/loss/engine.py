"""The engine: loss, gradient and probabilities for one layout, in one blocked pass.

Notation (see the README): scores ``s`` viewed as ``(outer, C, inner)``; with
``p = softmax(s)`` over the class axis, targets ``t >= 0`` (after normalisation and
smoothing) and class weights ``w``::

    loss       = (1/Z) * sum_positions sum_c  w_c t_c (-log p_c)
    dloss/ds_j = (1/Z) * ((sum_c w_c t_c) p_j - w_j t_j)

``log p`` is ``s - max - log(sum exp(s - max))``, with the sum accumulated in float64; it is
never ``log(softmax)`` and nothing is clamped. Writing ``a_c = w_c t_c``, the loss at a
position is ``(sum_c a_c) * log_sum - sum_c a_c (s_c - max)``, so ``log p`` is never stored.

Targets reach the pass in one of two encodings: dense (``a_c = w_c (scale t_c + offset)``)
or sparse, a list of (class, coefficient) pairs per position (``a_c = w_c offset + sum_j
coefficient_j [c == label_j]``); index targets are a sparse list of one.

Speed: (N, C) scores go to the numba kernel in :mod:`.fused_rows` (one pass per row). Other
layouts, and installs without numba, use cache-sized blocks of positions (exp, sums and the
gradient of a block stay in cache), blocks spread over threads (numpy releases the GIL).
Either way the gradient is written straight into the caller's array and the buffers are
reused across calls, reallocated only when shapes change.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .layout import Layout, class_view, label_view
from .options import DEFAULT_OPTIONS, Options, loss_divisor
from .target_grad import target_grad
from .targets import (
    check_index_targets,
    check_label_lists,
    first_bad_dense,
    non_finite_scores_message,
)

try:  # the fused kernels; without numba the numpy blocks compute the same thing
    from . import fused_positions as _fused_positions
    from . import fused_rows as _fused
    from . import numba_parts as _numba
except ImportError:  # pragma: no cover - numba is a pinned dependency
    _fused = _fused_positions = _numba = None

BLOCK_ELEMENTS = 262144  # floats per block buffer (1 MiB): few numpy calls per element, L3-resident
PARALLEL_ELEMENTS = 1 << 20  # numpy blocks: below this, threads cost more than they save
FUSED_PARALLEL_ELEMENTS = 1 << 17  # fused rows: the same break-even, measured (2 cores)


class _BadScoresError(Exception):
    """Internal: non-finite scores found; the caller words the error."""


class _BadTargetsError(Exception):
    """Internal: bad target values found; the caller words the error."""


# --- The engine -----------------------------------------------------------------------------


def _leading(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Index that cuts a block buffer down to ``shape``."""
    return tuple(slice(0, n) for n in shape)


def _class_shape(block: np.ndarray) -> tuple[int, ...]:
    """Shape that broadcasts a per-class vector over a (b, C) or (1, C, k) block."""
    return (1, block.shape[1]) + (1,) * (block.ndim - 2)


@dataclass
class _PerPosition:
    """What the block pass needs per position, (outer, 1, inner) unless said, computed up front.

    Dense: ``a_c = w_c (scale t_c + offset)``; sparse: ``a_c = w_c offset + sum_j
    label_weight_j [c == label_j]``. ``mass = sum_c a_c``; 0 at ignored positions.
    """

    row_max: np.ndarray  # float32
    scale: np.ndarray | None  # float32, dense only
    offset: np.ndarray  # float32
    mass: np.ndarray  # float64
    labels: np.ndarray | None  # sparse only: int64 (outer, K, inner), 0 where padded/ignored
    label_weight: np.ndarray | None  # sparse only: float32 (outer, K, inner), 0 likewise
    divisor: float


@dataclass(frozen=True)
class Saved:
    """What forward keeps for backward: the layout, Z, which pass ran and its arrays (in the
    engine's buffers, so valid until the next forward)."""

    layout: Layout
    divisor: float
    path: str  # "rows", "positions" (numba) or "blocks" (numpy: backward recomputes)
    arrays: tuple


class SoftmaxCrossEntropy:
    """Loss, gradient and probabilities for one layout, with buffers reused across calls.

    ``__call__`` validates the inputs (raising before writing anything), then makes one
    blocked pass that accumulates the loss and, when asked, writes ``grad_scale * dloss/ds``
    into ``grad_out`` and the softmax into ``probs_out`` (both the scores' shape).
    """

    def __init__(
        self,
        options: Options = DEFAULT_OPTIONS,
        threads: int | None = None,
        fused: bool | None = None,
    ):
        """``fused``: use the numba kernels for (N, C) layouts (default: when available)."""
        self.options = options
        self.fused = (_fused is not None) if fused is None else fused
        if self.fused and _fused is None:
            raise ImportError("fused=True needs numba, which is not importable")
        weights = options.class_weights
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self._weights_total = None if weights is None else float(np.sum(weights))
        self.threads = threads or min(os.cpu_count() or 1, 8)
        self._pool: ThreadPoolExecutor | None = None
        self._buffers: dict[str, np.ndarray] = {}

    # Buffers are kept by name and reallocated only when the wanted shape changes.
    def _buffer(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buffer

    def _weight_sum(self, classes: int) -> float:
        """sum_c w_c (C without class weights), once: numpy's float64 sum of float32 would
        allocate a cast buffer on every call."""
        if self.weights is None:
            return float(classes)
        return self._weights_total

    def retained_bytes(self) -> int:
        return sum(buffer.nbytes for buffer in self._buffers.values())

    # 1. Per-position quantities, validating targets and scores on the way.
    def _per_position(
        self,
        scores: np.ndarray | None,
        targets: np.ndarray,
        label_weights: np.ndarray | None,
        layout: Layout,
    ) -> _PerPosition:
        """Row maxima, target scaling, masses and Z; checks the inputs on the way.

        Raises the bare ``_BadScoresError`` / ``_BadTargetsError``; ``__call__`` words the error.
        All arrays here live in reused buffers (no allocation after the first call).
        """
        shape = (layout.outer, 1, layout.inner)
        row_max = None  # scores None: the fused kernels find the maxima (and check) themselves
        if scores is not None:
            row_max = np.max(scores, axis=1, keepdims=True, out=self._buffer("row_max", shape))
            if not (np.isfinite(row_max).all() and np.isfinite(scores.min())):
                raise _BadScoresError
        if layout.target_kind == "dense":
            return self._dense_positions(targets, layout, shape, row_max)
        if layout.target_kind == "index":
            return self._index_positions(targets, layout, shape, row_max)
        return self._label_list_positions(targets, label_weights, layout, shape, row_max)

    def _common(self, layout: Layout, shape: tuple[int, ...]):
        """Buffers and constants both target kinds fill: valid, offset, mass, eps, C, sum(w)."""
        eps, classes = self.options.label_smoothing, layout.classes
        weight_sum = self._weight_sum(classes)
        valid = self._buffer("valid", shape, bool)
        offset = self._buffer("offset", shape)  # eps / C at valid positions
        mass = self._buffer("mass", shape, np.float64)  # sum_c a_c
        return valid, offset, mass, eps, classes, weight_sum

    def _dense_positions(self, targets, layout, shape, row_max) -> _PerPosition:
        """Dense targets: a_c = w_c (scale t_c + offset), scale = (1 - eps) / sum(t)."""
        o = self.options
        valid, offset, mass, eps, classes, weight_sum = self._common(layout, shape)
        sums = self._buffer("target_sums", shape, np.float64)
        # float32 pairwise sums (error ~log2(C) ulp; exact for k-hot), kept as float64
        np.copyto(sums, np.sum(targets, axis=1, keepdims=True, out=self._buffer("sums32", shape)))
        if not (targets.min() >= 0 and np.isfinite(sums).all()):
            raise _BadTargetsError
        np.greater(sums, 0, out=valid)
        scale = self._buffer("scale", shape)  # (1 - eps) / sum(t), 0 where ignored
        if o.normalize_targets:
            scale.fill(0.0)  # where=valid leaves the ignored positions as they were
            np.divide(1.0 - eps, sums, out=scale, where=valid, casting="unsafe")
        else:
            np.multiply(valid, 1.0 - eps, out=scale, casting="unsafe")
        np.multiply(valid, eps / classes, out=offset, casting="unsafe")
        if self.weights is None:  # mass = scale * sum_c t_c + offset * C
            np.multiply(sums, scale, out=mass)
        else:  # mass = scale * sum_c w_c t_c + offset * sum_c w_c
            np.einsum("ocs,c->os", targets, self.weights, dtype=np.float64, out=mass[:, 0, :])
            np.multiply(mass, scale, out=mass)
        np.add(mass, eps * weight_sum / classes, out=mass, where=valid)
        divisor = loss_divisor(o.normalization, layout, float(np.count_nonzero(valid)))
        return _PerPosition(row_max, scale, offset, mass, None, None, divisor)

    def _index_positions(self, targets, layout, shape, row_max) -> _PerPosition:
        """Index targets: a_c = w_c ((1 - eps) [c == label] + offset)."""
        o = self.options
        valid, offset, mass, eps, classes, weight_sum = self._common(layout, shape)
        # integral labels in [0, C) except where ignored
        labels = self._buffer("labels", shape, np.int64)
        np.copyto(labels, targets, casting="unsafe")  # truncates; checked just below
        if o.ignore_label is None:
            valid.fill(True)
        else:
            np.not_equal(targets, o.ignore_label, out=valid)
            np.multiply(labels, valid, out=labels)  # ignored positions read label 0
        integral = self._buffer("integral", shape, bool)
        np.equal(labels, targets, out=integral)
        np.logical_or(integral, ~valid if o.ignore_label is not None else integral, out=integral)
        if not (integral.all() and labels.min() >= 0 and labels.max() < classes):
            raise _BadTargetsError
        label_weight = self._buffer("label_weight", shape)  # (1 - eps) w_label, 0 where ignored
        if self.weights is None:
            np.copyto(label_weight, valid, casting="unsafe")
        else:
            np.take(self.weights, labels, out=label_weight)
            np.multiply(label_weight, valid, out=label_weight)
        if self.weights is not None and o.normalization == "valid":
            total = float(label_weight.sum(dtype=np.float64))
            divisor = total if total > 0 else 1.0  # PyTorch's weighted mean
        else:
            divisor = loss_divisor(o.normalization, layout, float(np.count_nonzero(valid)))
        np.multiply(label_weight, np.float32(1.0 - eps), out=label_weight)
        np.multiply(valid, eps / classes, out=offset, casting="unsafe")
        np.multiply(valid, eps * weight_sum / classes, out=mass, casting="unsafe")
        np.add(mass, label_weight, out=mass)
        return _PerPosition(row_max, None, offset, mass, labels, label_weight, divisor)

    def _label_list_positions(self, labels, weights, layout, shape, row_max) -> _PerPosition:
        """Label lists: t_c = sum_j w_j [label_j == c], then as dense targets.

        ``label_weight_j = w_c (scale w_j)`` with ``c = label_j`` and, as for dense targets,
        ``scale = (1 - eps) / sum_j w_j`` (or ``1 - eps`` without normalisation).
        """
        o = self.options
        valid, offset, mass, eps, classes, weight_sum = self._common(layout, shape)
        lists = (layout.outer, layout.labels_per_row, 1)
        codes = self._buffer("labels", lists, np.int64)
        np.copyto(codes, labels, casting="unsafe")  # truncates; checked just below
        integral = self._buffer("integral", lists, bool)
        np.equal(codes, labels, out=integral)
        if not (integral.all() and codes.min() >= -1 and codes.max() < classes):
            raise _BadTargetsError
        if weights is not None and not (weights.min() >= 0 and np.isfinite(weights.max())):
            raise _BadTargetsError  # a nan fails the first test, an inf the second
        listed = self._buffer("listed", lists, bool)
        np.greater_equal(codes, 0, out=listed)
        label_weight = self._buffer("label_weight", lists)
        if weights is None:
            np.copyto(label_weight, listed, casting="unsafe")
        else:
            np.multiply(weights, listed, out=label_weight)
        np.maximum(codes, 0, out=codes)  # padding reads class 0 with weight 0
        sums = self._buffer("target_sums", shape, np.float64)
        np.sum(label_weight, axis=1, keepdims=True, dtype=np.float64, out=sums)
        np.greater(sums, 0, out=valid)
        scale = self._buffer("scale64", shape, np.float64)  # (1 - eps) / sum(w), 0 if ignored
        if o.normalize_targets:
            scale.fill(0.0)
            np.divide(1.0 - eps, sums, out=scale, where=valid)
        else:
            np.multiply(valid, 1.0 - eps, out=scale)
        np.multiply(label_weight, scale, out=label_weight, casting="unsafe")
        if self.weights is not None:
            class_weight = self._buffer("class_weight", lists)
            np.take(self.weights, codes, out=class_weight)
            np.multiply(label_weight, class_weight, out=label_weight)
        np.multiply(valid, eps / classes, out=offset, casting="unsafe")
        np.sum(label_weight, axis=1, keepdims=True, dtype=np.float64, out=mass)
        np.add(mass, eps * weight_sum / classes, out=mass, where=valid)
        divisor = loss_divisor(o.normalization, layout, float(np.count_nonzero(valid)))
        return _PerPosition(row_max, None, offset, mass, codes, label_weight, divisor)

    # 2. One block of positions: everything stays in the block buffers. A block is an index
    #    into the (outer, C, inner) views: rows (b, C) when inner == 1, else (1, C, k).
    def _block(self, ix, scores, targets, per, grad_out, grad_scale, probs_out, worker):
        s = scores[ix]  # (b, C) or (1, C, k)
        # The gradient's own block (when there is one) serves as the work space: no copy.
        grad = None if grad_out is None else grad_out[ix]
        work = (
            grad
            if grad is not None
            else self._buffer(f"work{worker}", self._block_shape)[_leading(s.shape)]
        )
        np.subtract(s, per.row_max[ix], out=work)  # shifted = s - max
        weights = None if self.weights is None else self.weights.reshape(_class_shape(s))
        # a = w (scale t + offset), and dot = sum_c a_c shifted_c
        if per.labels is None:
            a = self._buffer(f"targets{worker}", self._block_shape)[_leading(s.shape)]
            np.multiply(targets[ix], per.scale[ix], out=a)
            if self.options.label_smoothing:
                a += per.offset[ix]
            if weights is not None:
                a *= weights
            dot = self._dot(a, work, targets[ix], worker)
        else:  # (b, K) or (1, 1, k) labels and their coefficients
            labels, label_weight = per.labels[ix], per.label_weight[ix]
            picked = np.take_along_axis(work, labels, axis=1) * label_weight
            dot = np.sum(picked, axis=1, dtype=np.float64)
            if self.options.label_smoothing:
                summed = work.sum(axis=1) if weights is None else (work * weights).sum(axis=1)
                dot += summed * per.offset[ix][:, 0]
        np.exp(work, out=work)  # work = exp(shifted)
        sums = np.sum(work, axis=1, dtype=np.float64)  # (b,) or (1, k)
        mass = per.mass[ix][:, 0]
        loss = float(np.sum(mass * np.log(sums)) - np.sum(dot, dtype=np.float64))
        if probs_out is not None:
            inverse = (1.0 / sums).astype(np.float32)  # float32, so the multiply stays float32
            np.multiply(work, np.expand_dims(inverse, 1), out=probs_out[ix])
        if grad is not None:  # grad = grad_scale * (mass * p - a), in place over exp(shifted)
            coefficient = (grad_scale * mass / sums).astype(np.float32)
            np.multiply(work, np.expand_dims(coefficient, 1), out=grad)
            if per.labels is None:
                a *= np.float32(grad_scale)
                grad -= a
            else:
                if self.options.label_smoothing:
                    smooth = grad_scale * per.offset[ix]  # (b, 1) or (1, 1, k)
                    grad -= smooth if weights is None else smooth * weights
                for j in range(labels.shape[1]):  # one label per position at a time, so a
                    label = labels[:, j : j + 1]  # class listed twice is subtracted twice
                    picked = np.take_along_axis(grad, label, axis=1)
                    picked -= np.float32(grad_scale) * label_weight[:, j : j + 1]
                    np.put_along_axis(grad, label, picked, axis=1)
        return loss

    def _dot(self, a: np.ndarray, shifted: np.ndarray, raw: np.ndarray, worker: int) -> np.ndarray:
        """sum_c a_c shifted_c per position, accumulated in float64.

        Sparse targets (k-hot: a few non-zeros per position, no smoothing) only touch their
        non-zeros; otherwise a float32 product and a float64 sum over the classes.
        """
        if not self.options.label_smoothing:
            mask = self._buffer(f"mask{worker}", self._block_shape, bool)[_leading(raw.shape)]
            np.not_equal(raw, 0, out=mask)
            flat = np.flatnonzero(mask)  # fast on bools (on floats it is ~50x slower)
            if flat.size * 16 < raw.size:
                products = a[mask].astype(np.float64) * shifted[mask]
                if shifted.ndim == 2:  # (b, C): position = row
                    return np.bincount(flat // raw.shape[1], products, minlength=raw.shape[0])
                # (1, C, k): position = column
                return np.bincount(flat % raw.shape[2], products, minlength=raw.shape[2])[None, :]
        products = self._buffer(f"products{worker}", self._block_shape)[_leading(shifted.shape)]
        np.multiply(a, shifted, out=products)
        return np.sum(products, axis=1, dtype=np.float64)

    def _scratch(self, rows: int, classes: int, size: int):
        """Per-thread scratch of the row kernels: (work, bits); parallel above a size."""
        chunks = _numba.threads() if size >= FUSED_PARALLEL_ELEMENTS else 1
        work = self._buffer("row_work", (chunks, classes))
        return work, self._buffer("row_bits", (chunks, classes), np.int32)

    def _unused(self, ndim: int, dtype=np.float32) -> np.ndarray:
        """A stand-in for an array a kernel call does not use (numba needs its type)."""
        return self._buffer(f"unused{ndim}{np.dtype(dtype).char}", (1,) * ndim, dtype)

    def _rows_forward(self, scores, targets, weights, layout, probs) -> tuple[float, Saved]:
        """The (N, C) case, one numba pass per row; (N, C, 1) views flattened to (N, C).

        Scores (and dense targets) are checked inside the kernel as each row is read; when
        the probabilities (a top) are wanted, the inputs are checked first, so that bad input
        writes nothing there.
        """
        rows, classes = layout.outer, layout.classes
        # raises on bad input; index targets' preparation is reused below
        checked = None if probs is None else self._per_position(scores, targets, weights, layout)
        stats = self._buffer("row_stats", (rows, _fused.N_STATS), np.float64)
        stats.fill(0.0)
        o, dense = self.options, layout.target_kind == "dense"
        if dense:
            labels, coefficients = self._unused(2, np.int64), self._unused(2)
            offsets, masses, divisor = self._unused(1), self._unused(1, np.float64), None
        elif layout.target_kind == "labels":  # one numba pass instead of numpy's many calls
            labels, coefficients, offsets, masses, divisor = self._fused_lists(
                targets, weights, layout, self._class_weights(classes)
            )
        else:
            per = checked or self._per_position(None, targets, weights, layout)
            labels, coefficients = per.labels[:, :, 0], per.label_weight[:, :, 0]
            offsets, masses, divisor = per.offset[:, 0, 0], per.mass[:, 0, 0], per.divisor
        args = (
            *(scores[:, :, 0], dense, targets[:, :, 0] if dense else self._unused(2), labels),
            *(coefficients, offsets, masses, self._class_weights(classes)),
            *(self._weight_sum(classes), o.label_smoothing, o.normalize_targets),
            *(self._unused(2) if probs is None else probs[:, :, 0], probs is not None),
        )
        parallel = rows * classes >= FUSED_PARALLEL_ELEMENTS
        (_fused.forward_parallel if parallel else _fused.forward_serial)(
            args, *self._scratch(rows, classes, rows * classes), stats
        )
        loss, valid, bad_row, code = _numba.summarise(stats)
        self._raise_if_bad(bad_row, code)
        if dense:  # Z for "valid" needs the valid rows, counted by the pass
            divisor = loss_divisor(o.normalization, layout, valid)
        return loss / divisor, Saved(layout, divisor, "rows", (stats, labels, coefficients))

    def _rows_backward(self, saved, scores, targets, grad, grad_scale, target_grad, t_scale):
        """One numba pass per row from the scores, the targets and forward's row statistics."""
        layout, (stats, labels, coefficients) = saved.layout, saved.arrays
        rows, classes = layout.outer, layout.classes
        o, dense = self.options, layout.target_kind == "dense"
        args = (
            *(scores[:, :, 0], dense, targets[:, :, 0] if dense else self._unused(2), labels),
            *(coefficients, self._class_weights(classes), o.label_smoothing, o.normalize_targets),
            *(grad_scale / saved.divisor, self._unused(2) if grad is None else grad[:, :, 0]),
            t_scale / saved.divisor,
            *(self._unused(2) if target_grad is None else target_grad[:, :, 0],),
            *(grad is not None, target_grad is not None),
        )
        parallel = rows * classes >= FUSED_PARALLEL_ELEMENTS
        (_fused.backward_parallel if parallel else _fused.backward_serial)(
            args, *self._scratch(rows, classes, rows * classes), stats
        )

    def _fused_lists(self, targets, weights, layout, class_weights):
        """Label lists prepared by numba: (codes, coefficients, offset, mass, Z)."""
        rows, width = layout.outer, layout.labels_per_row
        codes = self._buffer("list_codes", (rows, width), np.int64)
        coefficients = self._buffer("list_coefficients", (rows, width))
        offset = self._buffer("list_offset", (rows,))
        mass = self._buffer("list_mass", (rows,), np.float64)
        unused = self._buffer("unused", (1, 1))
        o = self.options
        valid, bad = _fused.prepare_lists(
            targets[:, :, 0],
            unused if weights is None else weights[:, :, 0],
            weights is not None,
            class_weights,
            o.label_smoothing,
            o.normalize_targets,
            codes,
            coefficients,
            offset,
            mass,
        )
        if bad:
            raise _BadTargetsError
        return codes, coefficients, offset, mass, loss_divisor(o.normalization, layout, valid)

    def _position_scratch(self, scores, tasks: int):
        chunks = _numba.threads() if scores.size >= FUSED_PARALLEL_ELEMENTS else 1
        width, classes = _fused_positions.BLOCK, scores.shape[1]
        return (
            self._buffer("block_work", (chunks, classes, width)),
            self._buffer("block_bits", (chunks, width), np.int32),
            self._buffer("block_shift", (chunks, width)),
            self._buffer("block_total", (chunks, width), np.float64),
            self._buffer("block_stats", (tasks, 3), np.float64),
        )

    def _position_targets(self, per: _PerPosition, targets, dense: bool) -> tuple:
        """The positions kernels' target arguments: dense targets, or labels."""
        unused = self._unused(3)
        return (
            dense,
            targets if dense else unused,
            self._unused(3, np.int64) if dense else per.labels,
            unused if dense else per.label_weight,
            per.scale if dense else unused,
            per.offset,
            per.mass,
        )

    def _positions_forward(self, scores, targets, weights, layout, probs) -> tuple[float, Saved]:
        """Layouts with dims after the class axis: blocks of positions in one numba pass each;
        per-position target quantities from the numpy preparation (which checks targets)."""
        # when p (a top) is wanted, the scores are checked too, before anything is written
        per = self._per_position(scores if probs is not None else None, targets, weights, layout)
        outer, classes, inner = scores.shape
        tasks = outer * -(-inner // _fused_positions.BLOCK)
        scratch = self._position_scratch(scores, tasks)
        scratch[-1].fill(0.0)
        saved_max = self._buffer("saved_max", (outer, inner))
        saved_total = self._buffer("saved_total", (outer, inner), np.float64)
        dense = layout.target_kind == "dense"
        args = (
            scores,
            *self._position_targets(per, targets, dense),
            self._class_weights(classes),
            *(self._unused(3) if probs is None else probs, probs is not None),
            *(saved_max, saved_total),
        )
        parallel = scores.size >= FUSED_PARALLEL_ELEMENTS
        forward = _fused_positions.forward_parallel if parallel else _fused_positions.forward_serial
        forward(args, *scratch)
        loss, _, bad_task, code = _numba.summarise(scratch[-1])
        self._raise_if_bad(bad_task, code)
        arrays = (per, saved_max, saved_total)
        return loss / per.divisor, Saved(layout, per.divisor, "positions", arrays)

    def _positions_backward(self, saved, scores, targets, grad, grad_scale) -> None:
        per, saved_max, saved_total = saved.arrays
        outer, classes, inner = scores.shape
        dense = saved.layout.target_kind == "dense"
        args = (
            scores,
            *self._position_targets(per, targets, dense),
            self._class_weights(classes),
            *(grad_scale / saved.divisor, grad, saved_max, saved_total),
        )
        scratch = self._position_scratch(scores, outer * -(-inner // _fused_positions.BLOCK))
        parallel = scores.size >= FUSED_PARALLEL_ELEMENTS
        backward = (
            _fused_positions.backward_parallel if parallel else _fused_positions.backward_serial
        )
        backward(args, *scratch)

    def _class_weights(self, classes: int) -> np.ndarray:
        """The class weights as float32 (C,), ones when there are none (a reused buffer)."""
        if self.weights is not None:
            return self.weights
        ones = self._buffer("ones", (classes,))
        ones.fill(1.0)
        return ones

    @staticmethod
    def _raise_if_bad(bad_row: int, code: float) -> None:
        if bad_row < 0:
            return
        if code == _numba.BAD_SCORES:
            raise _BadScoresError
        raise _BadTargetsError

    def _blocks(self, layout: Layout) -> list[tuple]:
        if layout.inner == 1:  # rows: (b, C) views, so that reductions run along rows
            rows = max(1, BLOCK_ELEMENTS // layout.classes)
            self._block_shape = (min(rows, layout.outer), layout.classes)
            return [(slice(r, r + rows), slice(None), 0) for r in range(0, layout.outer, rows)]
        width = min(layout.inner, max(1, BLOCK_ELEMENTS // layout.classes))  # (1, C, k) views
        self._block_shape = (1, layout.classes, width)
        return [
            (slice(r, r + 1), slice(None), slice(i, i + width))
            for r in range(layout.outer)
            for i in range(0, layout.inner, width)
        ]

    def _views(self, layout, scores, targets, label_weights, outputs: dict) -> tuple:
        """(outer, C, inner) views of C-ordered inputs; outputs must be C-ordered already."""
        for name, out in outputs.items():
            if out is not None and not out.flags.c_contiguous:  # a reshape would write a copy
                raise ValueError(f"{name} must be C-contiguous (np.empty(shape, np.float32))")
        view = label_view if layout.sparse else class_view
        return (
            class_view(np.ascontiguousarray(scores), layout),  # no copy for blobs (C order)
            view(np.ascontiguousarray(targets), layout),
            None if label_weights is None else label_view(label_weights, layout),
            *(None if out is None else class_view(out, layout) for out in outputs.values()),
        )

    def forward(
        self,
        scores: np.ndarray,
        targets: np.ndarray,
        layout: Layout,
        *,
        label_weights: np.ndarray | None = None,
        probs_out: np.ndarray | None = None,
    ) -> tuple[float, Saved]:
        """The loss, p into ``probs_out``, and what :meth:`backward` needs (valid until the
        next forward). Raises :class:`TargetError` (bad targets) or ``FloatingPointError``
        (non-finite scores) before writing to ``probs_out``."""
        if label_weights is not None:
            label_weights = np.ascontiguousarray(label_weights)
        views = self._views(layout, scores, targets, label_weights, {"probs_out": probs_out})
        try:
            if self.fused and _fused is not None and layout.inner == 1:
                return self._rows_forward(*views[:3], layout, views[3])
            if self.fused and _fused is not None:
                return self._positions_forward(*views[:3], layout, views[3])
            loss = self._blocked(*views[:3], layout, None, 0.0, views[3])
            return loss, Saved(layout, 1.0, "blocks", ())
        except _BadScoresError:
            raise FloatingPointError(non_finite_scores_message(scores)) from None
        except _BadTargetsError:
            if layout.target_kind == "index":
                check_index_targets(targets, layout.classes, self.options.ignore_label)
            if layout.target_kind == "labels":
                check_label_lists(targets, label_weights, layout.classes)
            raise first_bad_dense(targets) from None

    def backward(
        self,
        saved: Saved,
        scores: np.ndarray,
        targets: np.ndarray,
        *,
        label_weights: np.ndarray | None = None,
        grad_out: np.ndarray | None = None,
        grad_scale: float = 1.0,
        target_grad_out: np.ndarray | None = None,
        target_grad_scale: float = 1.0,
    ) -> None:
        """``grad_scale * dloss/ds`` into ``grad_out`` and (dense targets) ``target_grad_scale
        * dloss/dt`` into ``target_grad_out``, from the inputs :meth:`forward` was given and
        what it kept; nothing the output arrays held is read."""
        layout = saved.layout
        if target_grad_out is not None and layout.target_kind != "dense":
            raise ValueError("target_grad_out is for dense targets")
        outputs = {"grad_out": grad_out, "target_grad_out": target_grad_out}
        scores3, targets3, weights3, grad, t_grad = self._views(
            layout, scores, targets, label_weights, outputs
        )
        if saved.path == "rows":
            t_scale = target_grad_scale
            self._rows_backward(saved, scores3, targets3, grad, grad_scale, t_grad, t_scale)
            return
        if saved.path == "positions" and grad is not None:
            self._positions_backward(saved, scores3, targets3, grad, grad_scale)
        elif saved.path == "blocks" and grad is not None:  # numpy: the pass again, from inputs
            self._blocked(scores3, targets3, weights3, layout, grad, grad_scale, None)
        if t_grad is not None:  # float64 numpy (the fused target gradient is rows')
            exact = target_grad(scores3, targets3, layout, self.options)
            np.multiply(exact, np.float32(target_grad_scale), out=t_grad)

    def __call__(
        self,
        scores: np.ndarray,
        targets: np.ndarray,
        layout: Layout,
        *,
        label_weights: np.ndarray | None = None,
        grad_out: np.ndarray | None = None,
        grad_scale: float = 1.0,
        probs_out: np.ndarray | None = None,
        target_grad_out: np.ndarray | None = None,
        target_grad_scale: float = 1.0,
    ) -> float:
        """:meth:`forward`, then :meth:`backward` when a gradient is asked for."""
        loss, saved = self.forward(
            scores, targets, layout, label_weights=label_weights, probs_out=probs_out
        )
        if grad_out is not None or target_grad_out is not None:
            self.backward(
                saved,
                scores,
                targets,
                label_weights=label_weights,
                grad_out=grad_out,
                grad_scale=grad_scale,
                target_grad_out=target_grad_out,
                target_grad_scale=target_grad_scale,
            )
        return loss

    def _blocked(self, scores, targets, weights, layout, grad, grad_scale, probs) -> float:
        """Any layout with numpy: cache-sized blocks of positions, blocks over threads."""
        per = self._per_position(scores, targets, weights, layout)
        scale = grad_scale / per.divisor
        blocks = self._blocks(layout)

        def run(worker: int, chunk: list) -> float:
            return sum(
                self._block(ix, scores, targets, per, grad, scale, probs, worker) for ix in chunk
            )

        if self.threads > 1 and scores.size >= PARALLEL_ELEMENTS and len(blocks) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads)
            step = -(-len(blocks) // self.threads)
            chunks = [blocks[i : i + step] for i in range(0, len(blocks), step)]
            total = sum(self._pool.map(run, range(len(chunks)), chunks))
        else:
            total = run(0, blocks)
        return total / per.divisor
