#!/usr/bin/env bash
# Prepare the GPU check: build the CUDA Caffe for Python 3.12 (the GPU machine's Python) and
# pack it, with the shared libraries it needs that such a machine lacks, into
# .gpu-carry/caffe-gpu.tar.xz (git-ignored; the device tool carries it). Then, on the GPU
# machine: `bash scripts/gpu/check.sh` (see its header). Runs here, on a machine without a GPU.
#
# Environment: PY312 (default: pyenv's newest 3.12, else python3.12): a Python 3.12 with
# its headers and a shared libpython. CUDA's own libraries are not packed: the GPU machine's
# CUDA 13 wheels provide them.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
log() { echo "gpu-pack: $*" >&2; }
die() { log "error: $*"; exit 1; }

pyenv_312=$(ls -d "$HOME"/.pyenv/versions/3.12*/bin/python3.12 2>/dev/null | tail -n1)
py312="${PY312:-${pyenv_312:-python3.12}}"
"$py312" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null ||
  die "no Python 3.12 at '$py312'; set PY312 to one (with headers and a shared libpython)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/caffe-multilabel-softmax"
numpy_pin=$(grep -E '^numpy==' requirements.txt | cut -d' ' -f1)
protobuf_pin=$(grep -E '^protobuf==' requirements.txt | cut -d' ' -f1)

# 1. A Python 3.12 with numpy 2 (pycaffe is built against its headers) and Boost for it.
six_pin=$(grep -E '^six==' requirements.txt | cut -d' ' -f1)
venv="$cache/py312-build"  # numpy's headers for the build; six and protobuf for its smoke test
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import numpy, six, google.protobuf" 2>/dev/null; then
  log "making $venv with $numpy_pin $six_pin $protobuf_pin"
  "$py312" -m venv "$venv"
  "$venv/bin/python" -m pip install -q "$numpy_pin" "$six_pin" "$protobuf_pin"
fi
boost=$(PYTHON="$py312" bash scripts/gpu/build_boost.sh | tail -n1)

# 2. The CUDA Caffe for that Python (cached like every build of build_caffe.sh).
prefix=$(CAFFE_GPU=1 CAFFE_BOOST_ROOT="$boost" PYTHON="$venv/bin/python" bash docker/build_caffe.sh | tail -n1)
cuda=$(bash docker/cuda/toolkit.sh | tail -n1)
log "Caffe for Python 3.12 at $prefix"

# 3. Stage: the build, the non-system libraries it links (CUDA's excepted), the copy counter,
#    protobuf for Python (the machine's may be too new for Caffe's generated code), libpython.
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-pack.XXXXXX")
trap 'rm -rf "$work"' EXIT
stage="$work/caffe-gpu"
mkdir -p "$stage/lib" "$stage/bin" "$stage/site" "$stage/pylib"
cp -a "$prefix/python" "$stage/"
cp -a "$prefix/bin/caffe" "$stage/bin/"
cp -a "$prefix"/lib/libcaffe.so* "$stage/lib/"
system='^(linux-vdso|ld-linux|libc\.|libm\.|libdl\.|libpthread\.|librt\.|libresolv\.|libstdc\+\+|libgcc_s|libutil\.|libpython3)'
cuda_libs='^(libcuda\.|libcudart|libcublas|libcurand|libnccl|libnvrtc)'
export LD_LIBRARY_PATH="$prefix/lib:$cuda/lib64:$boost/lib"
for binary in "$stage/bin/caffe" "$stage/lib/libcaffe.so" "$stage/python/caffe/_caffe.so"; do
  ldd "$binary" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  [[ "$name" =~ $system || "$name" =~ $cuda_libs || "$name" == libcaffe.so* ]] && continue
  cp -L "$path" "$stage/lib/$name"
done
missing=$(ldd "$stage/lib/libcaffe.so" | grep "not found" | grep -Ev "$cuda_libs" || true)
[[ -z "$missing" ]] || die "unresolved libraries: $missing"
gcc -O2 -shared -fPIC -I"$cuda/include" scripts/gpu/count_copies.c -o "$stage/lib/count_copies.so" -ldl
"$venv/bin/python" -m pip download -q --no-deps --only-binary=:all: -d "$work/wheels" "$protobuf_pin"
"$venv/bin/python" -m zipfile -e "$work"/wheels/protobuf-*.whl "$stage/site"
libpython=$("$py312" -c 'import sysconfig, os; print(os.path.join(sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")))')
cp -L "$libpython" "$stage/pylib/"

# 4. Pack.
mkdir -p .gpu-carry
tar -C "$work" -cJf .gpu-carry/caffe-gpu.tar.xz caffe-gpu
log "libraries packed: $(ls "$stage/lib" | tr '\n' ' ')"
log "wrote .gpu-carry/caffe-gpu.tar.xz ($(du -h .gpu-carry/caffe-gpu.tar.xz | cut -f1); unpacked $(du -sh "$stage" | cut -f1))"
log "next, on the GPU machine (device tool: carry [\".gpu-carry\"]): bash scripts/gpu/check.sh"
