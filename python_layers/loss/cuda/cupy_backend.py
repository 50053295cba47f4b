"""The engine's backend on an NVIDIA GPU: CuPy compiles kernels.cu (NVRTC, cached on disk by
CuPy) and launches it on the current device's legacy default stream, the stream Caffe's own
kernels and cuBLAS calls use, so the launches are ordered with the net's."""

from __future__ import annotations

from typing import Any

import numpy as np

from .launch import KERNELS

KERNEL_NAMES = (
    "stats_block",
    "stats_thread",
    "finish",
    "outputs_block",
    "outputs_thread",
    "fill_floats",
)


class CupyBackend:
    block_threads = 1024  # MAX_THREADS in kernels.cu
    position_threads = 128

    def __init__(self) -> None:
        import cupy  # an optional dependency: imported only for GPU nets

        self.cupy = cupy
        module = cupy.RawModule(code=KERNELS.read_text(), options=("-std=c++17",))
        self.kernels = {name: module.get_function(name) for name in KERNEL_NAMES}

    def buffer(self, count: int, dtype: Any) -> tuple[Any, int]:
        array = self.cupy.empty(count, dtype=dtype)
        return array, array.data.ptr

    def upload(self, array: np.ndarray) -> tuple[Any, int]:
        device = self.cupy.asarray(array)
        return device, device.data.ptr

    def launch(self, kernel: str, blocks: int, threads: int, args: tuple) -> None:
        self.kernels[kernel]((blocks,), (threads,), args)

    def read(self, array: Any) -> np.ndarray:
        return array.get()
