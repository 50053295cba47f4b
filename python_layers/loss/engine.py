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
except ImportError:  # pragma: no cover - numba is a pinned dependency
    _fused = _fused_positions = None

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

    def _fused_rows(
        self, scores, targets, weights, layout, grad, grad_scale, probs, target_grad, target_scale
    ) -> float:
        """The (N, C) case in one numba pass per row; (N, C, 1) views flattened to (N, C).

        Scores (and dense targets) are checked inside the kernel as each row is read; when
        the probabilities (a top) are wanted, the inputs are checked first, so that bad input
        writes nothing there.
        """
        rows, classes = layout.outer, layout.classes
        # raises on bad input; index targets' preparation is reused below
        checked = None if probs is None else self._per_position(scores, targets, weights, layout)
        unused = self._buffer("unused", (1, 1))  # stands in for arrays a call does not use
        flat = lambda array: unused if array is None else array[:, :, 0]  # noqa: E731
        class_weights = self._class_weights(classes)
        parallel = rows * classes >= FUSED_PARALLEL_ELEMENTS
        chunks = _fused.threads() if parallel else 1
        scratch = (
            self._buffer("row_work", (chunks, classes)),  # per-thread scratch, reused
            self._buffer("row_bits", (chunks, classes), np.int32),
            self._buffer("row_stats", (rows, 3), np.float64),
        )
        scratch[2].fill(0.0)
        o = self.options
        if layout.target_kind == "dense":
            # Z for "valid" needs the valid rows, known only after the pass: assume all are
            # valid (the usual case) and rescale afterwards if some were not.
            assumed = loss_divisor(o.normalization, layout, layout.positions)
            args = (
                scores[:, :, 0],
                targets[:, :, 0],
                class_weights,
                self._weight_sum(classes),
                o.label_smoothing,
                o.normalize_targets,
                grad_scale / assumed,
                flat(grad),
                flat(probs),
                target_scale / assumed,
                flat(target_grad),
                grad is not None,
                probs is not None,
                target_grad is not None,
            )
            (_fused.dense_parallel if parallel else _fused.dense_serial)(args, *scratch)
            loss, valid, bad_row, code = _fused.summarise(scratch[2])
            self._raise_if_bad(bad_row, code)
            divisor = loss_divisor(o.normalization, layout, valid)
            if divisor != assumed:
                for out in (grad, target_grad):
                    if out is not None:
                        out *= np.float32(assumed / divisor)
            return loss / divisor
        if layout.target_kind == "labels":  # one numba pass instead of numpy's many calls
            labels, coefficients, offset, mass, divisor = self._fused_lists(
                targets, weights, layout, class_weights
            )
        else:
            per = checked or self._per_position(None, targets, weights, layout)
            labels, coefficients = per.labels[:, :, 0], per.label_weight[:, :, 0]
            offset, mass, divisor = per.offset[:, 0, 0], per.mass[:, 0, 0], per.divisor
        args = (
            scores[:, :, 0],
            labels,
            coefficients,
            offset,
            mass,
            class_weights,
            grad_scale / divisor,
            flat(grad),
            flat(probs),
            grad is not None,
            probs is not None,
        )
        (_fused.sparse_parallel if parallel else _fused.sparse_serial)(args, *scratch)
        loss, _, bad_row, code = _fused.summarise(scratch[2])
        self._raise_if_bad(bad_row, code)
        return loss / divisor

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

    def _fused_positions(
        self, scores, targets, weights, layout, grad, grad_scale, probs, target_grad_out, t_scale
    ) -> float:
        """Layouts with dims after the class axis: blocks of positions in one numba pass each;
        per-position target quantities from the numpy preparation (which checks targets)."""
        # when p (a top) is wanted, the scores are checked too, before anything is written
        per = self._per_position(scores if probs is not None else None, targets, weights, layout)
        outer, classes, inner = scores.shape
        width = _fused_positions.BLOCK
        tasks = outer * -(-inner // width)
        parallel = scores.size >= FUSED_PARALLEL_ELEMENTS
        chunks = _fused.threads() if parallel else 1
        scratch = (
            self._buffer("block_work", (chunks, classes, width)),
            self._buffer("block_bits", (chunks, width), np.int32),
            self._buffer("block_shift", (chunks, width)),
            self._buffer("block_total", (chunks, width), np.float64),
            self._buffer("block_stats", (tasks, 3), np.float64),
        )
        scratch[-1].fill(0.0)
        unused = self._buffer("unused3", (1, 1, 1))
        dense = layout.target_kind == "dense"
        args = (
            scores,
            dense,
            targets if dense else unused,
            self._buffer("no_labels3", (1, 1, 1), np.int64) if dense else per.labels,
            unused if dense else per.label_weight,
            per.scale if dense else unused,
            per.offset,
            per.mass,
            self._class_weights(classes),
            grad_scale / per.divisor,
            unused if grad is None else grad,
            unused if probs is None else probs,
            grad is not None,
            probs is not None,
        )
        kernel = (
            _fused_positions.positions_parallel if parallel else _fused_positions.positions_serial
        )
        kernel(args, *scratch)
        loss, _, bad_task, code = _fused.summarise(scratch[-1])
        self._raise_if_bad(bad_task, code)
        if target_grad_out is not None:  # float64 numpy (the fused target gradient is rows')
            exact = target_grad(scores, targets, layout, self.options)
            np.multiply(exact, np.float32(t_scale), out=target_grad_out)
        return loss / per.divisor

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
        if code == _fused.BAD_SCORES:
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
        """The loss; also ``grad_scale * dloss/ds`` into ``grad_out``, p into ``probs_out`` and
        (dense targets) ``target_grad_scale * dloss/dt`` into ``target_grad_out``.

        ``scores``, ``targets`` (and ``label_weights`` for label lists) and the outputs may
        have any shape that fits ``layout``. Raises :class:`TargetError` (bad targets) or
        ``FloatingPointError`` (non-finite scores) before writing to ``probs_out``; the
        gradient arrays may hold part of a result then.
        """
        outs = {"grad_out": grad_out, "probs_out": probs_out, "target_grad_out": target_grad_out}
        for name, out in outs.items():
            if out is not None and not out.flags.c_contiguous:  # a reshape would write a copy
                raise ValueError(f"{name} must be C-contiguous (np.empty(shape, np.float32))")
        scores = np.ascontiguousarray(scores)  # no copy when already C-ordered (blobs are)
        targets = np.ascontiguousarray(targets)
        if label_weights is not None:
            label_weights = np.ascontiguousarray(label_weights)
        scores3 = class_view(scores, layout)
        targets3 = label_view(targets, layout) if layout.sparse else class_view(targets, layout)
        weights3 = None if label_weights is None else label_view(label_weights, layout)
        outputs = (
            None if grad_out is None else class_view(grad_out, layout),
            grad_scale,
            None if probs_out is None else class_view(probs_out, layout),
            None if target_grad_out is None else class_view(target_grad_out, layout),
            target_grad_scale,
        )
        if target_grad_out is not None and layout.target_kind != "dense":
            raise ValueError("target_grad_out is for dense targets")
        try:
            if self.fused and _fused is not None and layout.inner == 1:
                return self._fused_rows(scores3, targets3, weights3, layout, *outputs)
            if self.fused and _fused is not None:
                return self._fused_positions(scores3, targets3, weights3, layout, *outputs)
            return self._blocked(scores3, targets3, weights3, layout, *outputs)
        except _BadScoresError:
            raise FloatingPointError(non_finite_scores_message(scores)) from None
        except _BadTargetsError:
            if layout.target_kind == "index":
                check_index_targets(targets, layout.classes, self.options.ignore_label)
            if layout.target_kind == "labels":
                check_label_lists(targets, label_weights, layout.classes)
            raise first_bad_dense(targets) from None

    def _blocked(
        self, scores, targets, weights, layout, grad, grad_scale, probs, target_grad_out, t_scale
    ) -> float:
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
        if target_grad_out is not None:  # float64 numpy, in full (no fused kernel here)
            exact = target_grad(scores, targets, layout, self.options)
            np.multiply(exact, np.float32(t_scale), out=target_grad_out)
        return total / per.divisor
