"""Softmax cross-entropy with real-valued, multi-label targets: the math, in plain numpy.

No Caffe here: the functions take and return numpy arrays, so they can be used and tested
anywhere. The Caffe layer in :mod:`python_layers.softmax_loss` is a thin adapter around them.

Notation (see the README): scores ``s`` with a class axis of size ``C``; the dims before it
multiply to ``outer`` and those after it to ``inner``, so every array is handled as a view of
shape ``(outer, C, inner)`` and a *position* is one ``(outer, inner)`` pair. With
``p = softmax(s)`` over the class axis, targets ``t >= 0`` (after normalisation and
smoothing) and class weights ``w``::

    loss       = (1/Z) * sum_positions sum_c  w_c t_c (-log p_c)
    dloss/ds_j = (1/Z) * ((sum_c w_c t_c) p_j - w_j t_j)

``log p`` is ``s - max - log(sum exp(s - max))``, with the sum accumulated in float64; it is
never ``log(softmax)`` and nothing is clamped. Writing ``a_c = w_c t_c``, the loss at a
position is ``(sum_c a_c) * log_sum - sum_c a_c (s_c - max)``, so ``log p`` is never stored.

Speed: :class:`SoftmaxCrossEntropy` works through the positions in cache-sized blocks
(exp, sums and the gradient of a block stay in L2), writes the gradient straight into the
caller's array, spreads blocks over threads (numpy releases the GIL), and reuses its buffers
across calls, reallocating only when shapes change.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import numpy as np

try:  # the fused per-row kernels; without numba the numpy blocks compute the same thing
    from . import _fused
except ImportError:  # pragma: no cover - numba is a pinned dependency
    _fused = None

NORMALIZATIONS = ("full", "valid", "batch_size", "none")
TargetKind = Literal["dense", "index"]
BLOCK_ELEMENTS = 262144  # floats per block buffer (1 MiB): few numpy calls per element, L3-resident
PARALLEL_ELEMENTS = 1 << 20  # below this, threads cost more than they save


class TargetError(ValueError):
    """Targets with a bad shape or bad values (names the blob, the position and the value)."""


class _BadScoresError(Exception):
    """Internal: non-finite scores found; the caller words the error."""


class _BadTargetsError(Exception):
    """Internal: bad target values found; the caller words the error."""


# --- Shapes --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """How the scores split around the class axis, and what kind the targets are."""

    outer: int  # product of the dims before the class axis
    classes: int  # C
    inner: int  # product of the dims after the class axis
    target_kind: TargetKind

    @property
    def positions(self) -> int:
        return self.outer * self.inner


def _drop_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(d for d in shape if d != 1)


def _drop_trailing_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(shape)
    while shape and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def class_axis(ndim: int, axis: int) -> int:
    """Normalise a possibly negative class axis; raise if it does not exist."""
    if not -ndim <= axis < ndim:
        raise TargetError(f"axis {axis} is out of range for scores with {ndim} dims")
    return axis % ndim


def layout_for(
    scores_shape: tuple[int, ...], targets_shape: tuple[int, ...], axis: int = 1
) -> Layout:
    """Split the scores around ``axis`` and tell dense from index targets by their shape.

    Dense targets have the scores' shape (trailing singleton dims ignored); index targets
    have one value per position (all singleton dims ignored).
    """
    scores_shape, targets_shape = tuple(scores_shape), tuple(targets_shape)
    axis = class_axis(len(scores_shape), axis)
    outer = int(np.prod(scores_shape[:axis], dtype=np.int64))
    classes = scores_shape[axis]
    inner = int(np.prod(scores_shape[axis + 1 :], dtype=np.int64))
    if _drop_trailing_ones(scores_shape) == _drop_trailing_ones(targets_shape):
        return Layout(outer, classes, inner, "dense")
    positions_shape = scores_shape[:axis] + scores_shape[axis + 1 :]
    if _drop_ones(positions_shape) == _drop_ones(targets_shape):
        return Layout(outer, classes, inner, "index")
    raise TargetError(
        f"bottom[1] (targets) has shape {targets_shape}, which fits scores of shape "
        f"{scores_shape} (class axis {axis}) in neither accepted form: dense targets of the "
        f"scores' shape {scores_shape}, or index targets with one label per position, shape "
        f"{positions_shape} (singleton dims may be added or dropped)"
    )


def class_view(array: np.ndarray, layout: Layout) -> np.ndarray:
    """View scores or dense targets as (outer, C, inner)."""
    return array.reshape(layout.outer, layout.classes, layout.inner)


def label_view(labels: np.ndarray, layout: Layout) -> np.ndarray:
    """View index targets as (outer, 1, inner)."""
    return labels.reshape(layout.outer, 1, layout.inner)


def _unravel(flat_index: int, shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(i) for i in np.unravel_index(flat_index, shape))


# --- Input validation (raises before anything is written) --------------------------------------


def _first_bad_dense(targets: np.ndarray) -> TargetError:
    bad = np.flatnonzero(~(np.isfinite(targets) & (targets >= 0)))[0]
    return TargetError(
        f"bottom[1] (targets) holds {float(targets.flat[bad])} at position "
        f"{_unravel(bad, targets.shape)}; dense targets must be finite and >= 0"
    )


def check_index_targets(labels: np.ndarray, classes: int, ignore_label: int | None) -> None:
    """Raise :class:`TargetError` unless every label is an integer in [0, C) or ignore_label."""
    good = (labels >= 0) & (labels < classes) & (labels == np.floor(labels))
    if ignore_label is not None:
        good |= labels == ignore_label
    if good.all():
        return
    bad = np.flatnonzero(~good)[0]
    allowed = f"an integer in [0, {classes})"
    if ignore_label is not None:
        allowed += f" or ignore_label {ignore_label}"
    raise TargetError(
        f"bottom[1] (targets) holds label {float(labels.flat[bad])} at position "
        f"{_unravel(bad, labels.shape)}; index targets must be {allowed}"
    )


def non_finite_scores_message(scores: np.ndarray) -> str:
    bad = np.flatnonzero(~np.isfinite(scores))
    return (
        f"bottom[0] (scores) holds {bad.size} non-finite value(s), the first "
        f"{float(scores.flat[bad[0]])} at {_unravel(bad[0], scores.shape)}"
    )


# --- Simple building blocks ----------------------------------------------------------------


def log_softmax(scores: np.ndarray, axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(shifted, log_sum)``: ``log p = shifted - log_sum`` along ``axis``.

    ``shifted = s - max`` (dtype of the scores), ``log_sum = log(sum(exp(shifted)))`` in
    float64 with the axis kept, so that callers never need ``log(softmax)``.
    """
    shifted = scores - scores.max(axis=axis, keepdims=True)
    log_sum = np.log(np.exp(shifted).sum(axis=axis, keepdims=True, dtype=np.float64))
    return shifted, log_sum


def _divisor(normalization: str, layout: Layout, valid_count: float) -> float:
    counts = {
        "full": layout.positions,
        "valid": valid_count,
        "batch_size": layout.outer,
        "none": 1,
    }
    return float(max(1.0, counts[normalization]))


# --- The engine ------------------------------------------------------------------------------


def _leading(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Index that cuts a block buffer down to ``shape``."""
    return tuple(slice(0, n) for n in shape)


def _class_shape(block: np.ndarray) -> tuple[int, ...]:
    """Shape that broadcasts a per-class vector over a (b, C) or (1, C, k) block."""
    return (1, block.shape[1]) + (1,) * (block.ndim - 2)


@dataclass(frozen=True)
class Options:
    """The loss's parameters (see the README's table)."""

    normalization: str = "valid"
    normalize_targets: bool = True
    ignore_label: int | None = None
    label_smoothing: float = 0.0
    class_weights: tuple[float, ...] | None = None


@dataclass
class _PerPosition:
    """What the block pass needs per position, all (outer, 1, inner), computed up front.

    Dense: ``a_c = w_c (scale t_c + offset)``; index: ``a_c = w_c ((1-eps) [c == label] +
    offset)``. ``mass = sum_c a_c``; 0 at ignored positions.
    """

    row_max: np.ndarray  # float32
    scale: np.ndarray  # float32, dense only
    offset: np.ndarray  # float32
    mass: np.ndarray  # float64
    labels: np.ndarray | None  # int64 labels (index targets), 0 where ignored
    label_weight: np.ndarray | None  # float32 (1-eps) w_label, 0 where ignored
    divisor: float


class SoftmaxCrossEntropy:
    """Loss, gradient and probabilities for one layout, with buffers reused across calls.

    ``__call__`` validates the inputs (raising before writing anything), then makes one
    blocked pass that accumulates the loss and, when asked, writes ``grad_scale * dloss/ds``
    into ``grad_out`` and the softmax into ``probs_out`` (both the scores' shape).
    """

    def __init__(
        self, options: Options = Options(), threads: int | None = None, fused: bool | None = None
    ):
        """``fused``: use the numba kernels for (N, C) layouts (default: when available)."""
        self.options = options
        self.fused = (_fused is not None) if fused is None else fused
        if self.fused and _fused is None:
            raise ImportError("fused=True needs numba, which is not importable")
        weights = options.class_weights
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)
        self.threads = threads or min(os.cpu_count() or 1, 8)
        self._pool: ThreadPoolExecutor | None = None
        self._buffers: dict[str, np.ndarray] = {}

    # Buffers are kept by name and reallocated only when the wanted shape changes.
    def _buffer(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        buffer = self._buffers.get(name)
        if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
            buffer = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buffer

    def retained_bytes(self) -> int:
        return sum(buffer.nbytes for buffer in self._buffers.values())

    # 1. Per-position quantities, validating targets and scores on the way.
    def _per_position(
        self, scores: np.ndarray, targets: np.ndarray, layout: Layout
    ) -> _PerPosition:
        """Row maxima, target scaling, masses and Z; checks the inputs on the way.

        Raises the bare ``_BadScoresError`` / ``_BadTargetsError``; ``__call__`` words the error.
        All arrays here live in reused buffers (no allocation after the first call).
        """
        shape = (layout.outer, 1, layout.inner)
        row_max = np.max(scores, axis=1, keepdims=True, out=self._buffer("row_max", shape))
        if not (np.isfinite(row_max).all() and np.isfinite(scores.min())):
            raise _BadScoresError
        if layout.target_kind == "dense":
            return self._dense_positions(targets, layout, shape, row_max)
        return self._index_positions(targets, layout, shape, row_max)

    def _common(self, layout: Layout, shape: tuple[int, ...]):
        """Buffers and constants both target kinds fill: valid, offset, mass, eps, C, sum(w)."""
        eps, classes = self.options.label_smoothing, layout.classes
        weight_sum = float(classes if self.weights is None else self.weights.sum(dtype=np.float64))
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
        divisor = _divisor(o.normalization, layout, float(np.count_nonzero(valid)))
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
            divisor = _divisor(o.normalization, layout, float(np.count_nonzero(valid)))
        np.multiply(label_weight, np.float32(1.0 - eps), out=label_weight)
        np.multiply(valid, eps / classes, out=offset, casting="unsafe")
        np.multiply(valid, eps * weight_sum / classes, out=mass, casting="unsafe")
        np.add(mass, label_weight, out=mass)
        return _PerPosition(row_max, None, offset, mass, labels, label_weight, divisor)

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
        else:
            labels = per.labels[ix]
            dot = (np.take_along_axis(work, labels, axis=1) * per.label_weight[ix])[:, 0]
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
                picked = np.take_along_axis(grad, labels, axis=1)
                picked -= np.float32(grad_scale) * per.label_weight[ix]
                np.put_along_axis(grad, labels, picked, axis=1)
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

    def _fused_rows(self, scores, targets, per, grad, grad_scale, probs) -> float:
        """The (N, C) case in one numba pass; (N, 1, 1)-shaped per-position arrays flattened."""
        classes = scores.shape[1]
        dense = per.labels is None
        unused = self._buffer("unused", (1, 1))  # stands in for arrays a call does not use
        weights = self.weights
        if weights is None:
            weights = self._buffer("ones", (classes,))
            weights.fill(1.0)
        kernel = _fused.rows_parallel if scores.size >= PARALLEL_ELEMENTS else _fused.rows_serial
        return kernel(
            scores[:, :, 0],
            per.row_max[:, 0, 0],
            targets[:, :, 0] if dense else unused,
            self._buffer("no_labels", (1,), np.int64) if dense else per.labels[:, 0, 0],
            per.scale[:, 0, 0] if dense else self._buffer("no_scale", (1,)),
            per.offset[:, 0, 0],
            self._buffer("no_weight", (1,)) if dense else per.label_weight[:, 0, 0],
            per.mass[:, 0, 0],
            weights,
            grad_scale,
            unused if grad is None else grad[:, :, 0],
            unused if probs is None else probs[:, :, 0],
            dense,
            grad is not None,
            probs is not None,
        )

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
        grad_out: np.ndarray | None = None,
        grad_scale: float = 1.0,
        probs_out: np.ndarray | None = None,
    ) -> float:
        """The loss; also ``grad_scale * dloss/ds`` into ``grad_out`` and p into ``probs_out``.

        ``scores``, ``targets`` and the outputs may have any shape that fits ``layout``.
        Raises :class:`TargetError` (bad targets) or ``FloatingPointError`` (non-finite
        scores) before writing anything.
        """
        index = layout.target_kind == "index"
        targets3 = label_view(targets, layout) if index else class_view(targets, layout)
        scores3 = class_view(scores, layout)
        try:
            per = self._per_position(scores3, targets3, layout)
        except _BadScoresError:
            raise FloatingPointError(non_finite_scores_message(scores)) from None
        except _BadTargetsError:
            if index:
                check_index_targets(targets, layout.classes, self.options.ignore_label)
            raise _first_bad_dense(targets) from None
        grad3 = None if grad_out is None else class_view(grad_out, layout)
        probs3 = None if probs_out is None else class_view(probs_out, layout)
        scale = grad_scale / per.divisor
        if self.fused and layout.inner == 1:
            return self._fused_rows(scores3, targets3, per, grad3, scale, probs3) / per.divisor
        blocks = self._blocks(layout)

        def run(worker: int, chunk: list) -> float:
            return sum(
                self._block(ix, scores3, targets3, per, grad3, scale, probs3, worker)
                for ix in chunk
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


# --- Gradient with respect to dense targets (distillation) -----------------------------------


def target_grad(
    scores: np.ndarray,
    targets: np.ndarray,
    layout: Layout,
    options: Options = Options(),
) -> np.ndarray:
    """d loss / d raw dense targets (targets' shape), unit loss weight.

    Chain rule through weighting, smoothing and (optionally) normalisation by the sum;
    ignored (zero-sum) positions get 0.
    """
    scores3 = class_view(np.asarray(scores, dtype=np.float32), layout)
    targets3 = class_view(np.asarray(targets, dtype=np.float64), layout)
    shifted, log_sum = log_softmax(scores3, axis=1)
    sums = targets3.sum(axis=1, keepdims=True)
    valid = sums > 0
    divisor = _divisor(options.normalization, layout, float(np.count_nonzero(valid)))
    grad = (log_sum - shifted) / divisor  # d loss / d (w t_smoothed), float64
    if options.class_weights is not None:
        grad *= np.asarray(options.class_weights).reshape(1, -1, 1)
    grad *= 1.0 - options.label_smoothing  # through t <- (1-eps) t + eps/C
    if options.normalize_targets:  # through t <- t / sum(t)
        normalized = np.divide(targets3, sums, out=np.zeros_like(targets3), where=valid)
        projection = (grad * normalized).sum(axis=1, keepdims=True)
        grad = np.divide(grad - projection, sums, out=np.zeros_like(grad), where=valid)
    else:
        grad *= valid
    return grad.astype(np.float32).reshape(targets.shape)


# --- One call for everything ----------------------------------------------------------------


@dataclass(frozen=True)
class CrossEntropy:
    """Result of :func:`softmax_cross_entropy`; arrays have the shapes of the inputs."""

    loss: float
    score_grad: np.ndarray  # d loss / d scores, for loss weight 1
    probs: np.ndarray
    target_grad: np.ndarray | None  # d loss / d dense targets, when asked for


def softmax_cross_entropy(
    scores: np.ndarray,
    targets: np.ndarray,
    *,
    axis: int = 1,
    normalization: str = "valid",
    normalize_targets: bool = True,
    ignore_label: int | None = None,
    label_smoothing: float = 0.0,
    class_weights=None,
    with_target_grad: bool = False,
) -> CrossEntropy:
    """Softmax cross-entropy of ``scores`` against dense or index ``targets``.

    Dense targets have the scores' shape; index targets one label per position. See the
    module docstring for the formula and the README for every option.
    """
    layout = layout_for(scores.shape, targets.shape, axis)
    options = Options(
        normalization,
        normalize_targets,
        ignore_label,
        label_smoothing,
        None if class_weights is None else tuple(np.asarray(class_weights, float)),
    )
    scores = np.asarray(scores, dtype=np.float32)
    targets = np.asarray(targets, dtype=np.float32)
    grad, probs = np.empty_like(scores), np.empty_like(scores)
    loss = SoftmaxCrossEntropy(options)(scores, targets, layout, grad_out=grad, probs_out=probs)
    grad_targets = None
    if with_target_grad and layout.target_kind == "dense":
        grad_targets = target_grad(scores, targets, layout, options)
    return CrossEntropy(loss=loss, score_grad=grad, probs=probs, target_grad=grad_targets)
