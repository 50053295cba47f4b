"""GPU nets: telling them apart, reaching their blobs' device memory, and the GPU backend.

A Python layer runs on the CPU in both of Caffe's modes. In GPU mode its blobs live on the
GPU, and reading ``blob.data`` copies them to the host (and back for the next GPU layer). The
GPU build (``CAFFE_GPU=1``) adds ``caffe.get_mode()`` and has ``Blob._gpu_data_ptr`` /
``_gpu_diff_ptr`` (BVLC PR #5904), the device addresses. Those properties exist only in GPU
builds and abort the whole process on a machine without a GPU (a CHECK in SyncedMemory), so
they are read only once ``get_mode()`` says GPU: never to probe.
"""

from __future__ import annotations

from typing import Any


def gpu_mode() -> bool:
    """Whether the calling thread's net runs on the GPU (False in CPU-only builds)."""
    import caffe  # only here: the rest of python_layers.loss needs no Caffe

    get_mode = getattr(caffe, "get_mode", None)  # the GPU build's pycaffe has it
    return get_mode is not None and get_mode() == "GPU"


def data_address(blob: Any) -> int:
    """The blob's data on the device (synced there first; the host copy becomes stale)."""
    return blob._gpu_data_ptr


def diff_address(blob: Any) -> int:
    return blob._gpu_diff_ptr


def make_backend() -> Any:
    """The CuPy backend; ImportError (with what to install) when CuPy is missing."""
    try:
        from .cupy_backend import CupyBackend

        return CupyBackend()
    except ImportError as why:
        raise ImportError(
            f"the GPU engine needs CuPy for CUDA 13 (pip install -r requirements-gpu.txt): {why}"
        ) from None
