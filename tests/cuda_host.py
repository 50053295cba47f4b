"""A host backend for the device engine: kernels.cu compiled by g++ (see cuda_host.h) and
launched block by block, a block's threads as OS threads, on numpy buffers."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from python_layers.loss.cuda.launch import KERNELS

HEADER = Path(__file__).with_name("cuda_host.h")
C_TYPES = {np.uint64: ctypes.c_ulonglong, np.int64: ctypes.c_longlong, np.float64: ctypes.c_double}


def compile_kernels(directory: Path) -> ctypes.CDLL:
    compiler = shutil.which("g++")
    if compiler is None:
        raise RuntimeError("g++ is needed to compile kernels.cu for the host")
    library = directory / "kernels_host.so"
    flags = ["-O1", "-std=c++20", "-shared", "-fPIC", "-include", str(HEADER), "-x", "c++"]
    subprocess.run([compiler, *flags, str(KERNELS), "-o", str(library)], check=True)
    return ctypes.CDLL(str(library))


# Host entry points to kernels.cu's device functions that twin the package's numba and Python
# rules (tests/test_coefficients.py): compiled with the kernels, called through ctypes.
CHECKS = """
#include "{kernels}"
extern "C" void check_coefficients(double total, double weighted, double eps, i64 normalize,
                                   i64 classes, double weight_sum, double* out) {{
  const Coefficients a = target_coefficients(total, weighted, eps, normalize, classes, weight_sum);
  out[0] = a.scale;
  out[1] = a.offset;
  out[2] = a.mass;
}}
extern "C" double check_divisor(i64 z_counts, double z_fixed, i64 z_clamp, double counted) {{
  return z_divisor(z_counts, z_fixed, z_clamp, counted);
}}
"""


def compile_checks(directory: Path) -> ctypes.CDLL:
    """kernels.cu and :data:`CHECKS`, compiled for the host."""
    compiler = shutil.which("g++")
    if compiler is None:
        raise RuntimeError("g++ is needed to compile kernels.cu for the host")
    source, library = directory / "checks.cpp", directory / "checks_host.so"
    source.write_text(CHECKS.format(kernels=KERNELS))
    flags = ["-O1", "-std=c++20", "-shared", "-fPIC", "-include", str(HEADER)]
    subprocess.run([compiler, *flags, str(source), "-o", str(library)], check=True)
    checks = ctypes.CDLL(str(library))
    c_double, c_i64 = ctypes.c_double, ctypes.c_longlong
    checks.check_coefficients.restype = None
    checks.check_coefficients.argtypes = [
        *(c_double, c_double, c_double, c_i64, c_i64, c_double, ctypes.POINTER(c_double))
    ]
    checks.check_divisor.restype = c_double
    checks.check_divisor.argtypes = [c_i64, c_double, c_i64, c_double]
    return checks


class HostBackend:
    """Small blocks, so that reductions over several threads and positions past the last
    thread's bound are exercised: 4 threads when a block handles a position, 3 otherwise."""

    block_threads = 4
    position_threads = 3

    def __init__(self, library: ctypes.CDLL):
        self.library = library
        self.launches: list[str] = []  # kernel names, in order
        self.pool = ThreadPoolExecutor(max(self.block_threads, self.position_threads))

    def buffer(self, count, dtype):
        array = np.full(count, np.nan if np.dtype(dtype).kind == "f" else -7, dtype=dtype)
        return array, array.ctypes.data  # garbage-filled: the kernels must write what they read

    def upload(self, array):
        array = np.ascontiguousarray(array)
        return array, array.ctypes.data

    def launch(self, kernel, blocks, threads, args):
        function = getattr(self.library, kernel)
        function.restype = None
        function.argtypes = [C_TYPES[type(arg)] for arg in args]
        self.launches.append(kernel)

        def thread(rank: int) -> None:  # ctypes drops the GIL, so the threads meet at barriers
            self.library.host_set_thread(rank)
            function(*args)

        for block in range(blocks):
            self.library.host_begin_block(block, threads)
            list(self.pool.map(thread, range(threads)))

    def read(self, array):
        return np.array(array)
