"""Arrays kept by name and reallocated only when the wanted shape or dtype changes, so that a
net's iterations allocate nothing of the scores' size."""

from __future__ import annotations

import numpy as np


class Buffers:
    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __call__(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._arrays[name] = np.empty(shape, dtype=dtype)
        return array

    def unused(self, ndim: int, dtype=np.float32) -> np.ndarray:
        """A stand-in for an array a kernel call does not use (numba needs its type)."""
        return self(f"unused{ndim}{np.dtype(dtype).char}", (1,) * ndim, dtype)

    def ones(self, classes: int) -> np.ndarray:
        ones = self("ones", (classes,))
        ones.fill(1.0)
        return ones

    def nbytes(self) -> int:
        return sum(array.nbytes for array in self._arrays.values())

    def names(self) -> dict[str, np.ndarray]:
        return dict(self._arrays)
