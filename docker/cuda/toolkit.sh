#!/usr/bin/env bash
# A CUDA 13.0 toolkit root (nvcc, headers, cudart, cuBLAS, cuRAND, NCCL) made from NVIDIA's pinned
# PyPI wheels, cached; prints the root last. Used by `CAFFE_GPU=1 docker/build_caffe.sh`.
#
#   docker/cuda/toolkit.sh               download (or reuse), unpack, print the root
#   docker/cuda/toolkit.sh --print-root  only print where this pin set is (or would be) unpacked
#
# Environment: PYTHON (the pip to download with, default python3), CUDA_TOOLKIT_ROOT (use this
# root instead: it must hold bin/nvcc, lib64/libcudart.so, libcublas, libcurand and NCCL).
# The wheels hold nvidia/cu13/{bin,include,lib,nvvm} and nvidia/nccl/{include,lib}; CMake's
# FindCUDA wants one root with lib64/ and unversioned .so names, so those links are added.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pins="$here/wheels.txt"
python="${PYTHON:-python3}"

log() { echo "cuda_toolkit: $*" >&2; }
die() { log "error: $*"; exit 1; }

check_root() {  # check_root ROOT: the files Caffe's build and run need
  local root=$1 f
  for f in bin/nvcc lib64/libcudart.so lib64/libcublas.so lib64/libcurand.so lib64/libnccl.so \
           include/cuda_runtime.h include/cublas_v2.h include/curand.h include/nccl.h; do
    [[ -e "$root/$f" ]] || { log "$root/$f is missing"; return 1; }
  done
}

if [[ -n "${CUDA_TOOLKIT_ROOT:-}" ]]; then
  check_root "$CUDA_TOOLKIT_ROOT" || die "CUDA_TOOLKIT_ROOT=$CUDA_TOOLKIT_ROOT is not a usable toolkit"
  echo "$CUDA_TOOLKIT_ROOT"
  exit 0
fi

[[ "$(uname -m)" == x86_64 ]] || die "the pinned CUDA wheels are for x86_64 Linux; set CUDA_TOOLKIT_ROOT to a toolkit for $(uname -m)"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/caffe-multilabel-softmax"
root="$cache_root/cuda-$(grep -v '^#' "$pins" | sha256sum | cut -c1-16)"
marker="$root/.toolkit-complete"
if [[ "${1:-}" == "--print-root" ]]; then echo "$root"; exit 0; fi
if [[ -f "$marker" ]]; then
  log "reusing $root"
  echo "$root"
  exit 0
fi

# Built in a staging directory and renamed into place when complete (as build_caffe.sh does).
mkdir -p "$cache_root"
[[ -e "$root" ]] && { log "removing an unfinished toolkit in our cache: $root"; rm -rf "$root"; }
staging=$(mktemp -d "$cache_root/.cuda-staging.XXXXXX")
trap 'rm -rf "$staging"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "downloading the pinned CUDA wheels (about 780 MB; sha256 checked by pip --require-hashes)"
"$python" -m pip download -q --no-deps --only-binary=:all: --require-hashes -r "$pins" \
  -d "$staging/wheels" >&2 || die "pip could not download the pinned wheels in $pins"

log "unpacking into one toolkit root"
for wheel in "$staging"/wheels/*.whl; do
  "$python" -m zipfile -e "$wheel" "$staging/unpacked" || die "cannot unpack $wheel"
done
tk="$staging/root"
mv "$staging/unpacked/nvidia/cu13" "$tk"
cp -a "$staging/unpacked/nvidia/nccl/include/." "$tk/include/"
cp -a "$staging/unpacked/nvidia/nccl/lib/." "$tk/lib/"
chmod +x "$tk"/bin/* "$tk"/nvvm/bin/* 2>/dev/null || true  # zipfile drops the mode bits
ln -s lib "$tk/lib64"
for versioned in "$tk"/lib/*.so.*; do  # libcudart.so.13 -> libcudart.so, for the linker
  ln -sf "$(basename "$versioned")" "${versioned%%.so.*}.so"
done
check_root "$tk" || die "the unpacked wheels do not make a complete toolkit (see above)"
"$tk/bin/nvcc" --version >&2 || die "the unpacked nvcc does not run"

rm -rf "$staging/wheels" "$staging/unpacked"
date -u +%FT%TZ >"$tk/.toolkit-complete"
mv -T "$tk" "$root" || die "cannot move the toolkit into $root"
log "CUDA toolkit at $root"
echo "$root"
