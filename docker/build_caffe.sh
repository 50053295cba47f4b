#!/usr/bin/env bash
# Build BVLC Caffe 1.0 (with Python layers; CPU only, or CUDA with CAFFE_GPU=1) from Debian's
# `caffe` source package, cached.
#
#   docker/build_caffe.sh                 build (or reuse) and print the install prefix last
#   docker/build_caffe.sh --print-prefix  only print the prefix this configuration installs into
#   docker/build_caffe.sh --fetch-source  only fetch (or find) and verify the source; print its path
#
# Two runs for one prefix at once (two clones' `make env`, two CI jobs) build once: the second
# waits on a lock in the cache root, then reuses the first one's build.
#
# Environment:
#   PYTHON                the interpreter pycaffe is built for (default: python3); it needs numpy 2.x
#   CAFFE_PREFIX          install prefix (default: a cache directory keyed by everything that matters);
#                         it must not exist, be empty, or hold a finished build of this script:
#                         the script never deletes anything it did not create
#   CAFFE_SOURCE_TARBALL  use this orig tarball instead of downloading it (its sha256 is still checked)
#   CAFFE_DEBIAN_MIRROR   Debian mirror to fetch bullseye sources from (default: the system's own)
#   CAFFE_GPU=1           the CUDA build: CUDA 13.0 from pinned PyPI wheels (docker/cuda/toolkit.sh),
#                         NCCL, no cuDNN, plus the patches in docker/cuda/patches/; its own cache key
#   CAFFE_CUDA_ARCH       with CAFFE_GPU=1: the GPU architectures to compile machine code (SASS) for,
#                         default "75 80 90 100 120"; PTX is added for the last one so that newer
#                         GPUs JIT it. The build takes about 3x longer with the default than with one
#   CAFFE_BOOST_ROOT      a Boost built for PYTHON (scripts/gpu/build_boost.sh), for Pythons whose
#                         Boost.Python Debian does not ship (the GPU machine's 3.12)
set -euo pipefail

readonly SOURCE_PACKAGE="caffe"
readonly SOURCE_VERSION="1.0.0+git20180821.99bd997-8"
readonly SOURCE_SUITE="bullseye"
readonly TARBALL_NAME="caffe_1.0.0+git20180821.99bd997.orig.tar.gz"
readonly TARBALL_SHA256="e0eb3f06794f7402c77b7dec8e8480273ee1a1bb192e9122b621a69d4147ad0c"
CMAKE_FLAGS=(
  -DCMAKE_BUILD_TYPE=Release -DCPU_ONLY=ON -DBLAS=Open -DUSE_OPENCV=OFF -DUSE_HDF5=ON
  -DUSE_LMDB=ON -DUSE_LEVELDB=ON -DUSE_NCCL=OFF -DBUILD_docs=OFF
  -DBUILD_python=ON -DBUILD_python_layer=ON -Dpython_version=3 -DBUILD_matlab=OFF
)
gpu="${CAFFE_GPU:-0}"
[[ "$gpu" == 0 || "$gpu" == 1 ]] || { echo "build_caffe: error: CAFFE_GPU must be 0 or 1, not '$gpu'" >&2; exit 1; }
build_name="caffe"
if [[ "$gpu" == 1 ]]; then
  cuda_arch="${CAFFE_CUDA_ARCH:-75 80 90 100 120}"
  [[ "$cuda_arch" =~ ^[0-9]+( [0-9]+)*$ ]] ||
    { echo "build_caffe: error: CAFFE_CUDA_ARCH='$cuda_arch': expected numbers like '80 90'" >&2; exit 1; }
  CMAKE_FLAGS=("${CMAKE_FLAGS[@]/-DCPU_ONLY=ON/-DCPU_ONLY=OFF}")
  CMAKE_FLAGS=("${CMAKE_FLAGS[@]/-DUSE_NCCL=OFF/-DUSE_NCCL=ON}")
  # cuDNN stays off: Caffe uses cuDNN 7's algorithm API, which cuDNN 8 removed.
  # The shared CUDA runtime (not FindCUDA's default, the static one): CuPy in the same process
  # then shares Caffe's runtime, its current device included.
  CMAKE_FLAGS+=(-DUSE_CUDNN=OFF -DCUDA_ARCH_NAME=Manual "-DCUDA_ARCH_BIN=$cuda_arch"
    "-DCUDA_ARCH_PTX=${cuda_arch##* }" -DCUDA_NVCC_FLAGS=-std=c++17
    -DCUDA_USE_STATIC_CUDA_RUNTIME=OFF)
  build_name="caffe-cuda"
fi
readonly CMAKE_FLAGS

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=docker/debian_mirror.sh
source "$here/debian_mirror.sh"
patches_dir="$here/patches"
cuda_dir="$here/cuda"
python="${PYTHON:-python3}"

log() { echo "build_caffe: $*" >&2; }
die() { log "error: $*"; exit 1; }

step_started=0
step() {  # step NAME: close the previous step with its duration, open the next
  local now; now=$(date +%s)
  [[ $step_started -gt 0 ]] && log "  ... done in $((now - step_started)) s"
  step_started=$now
  [[ $# -gt 0 ]] && log "[$(date +%H:%M:%S)] $*"
  return 0
}

# --- The Python this build is for -----------------------------------------------------------
python_facts() {  # prints: version, include dir, libpython path, numpy version, numpy include
  "$python" - <<'PY'
import sys, sysconfig, os
try:
    import numpy
except ImportError:
    sys.exit("numpy is not importable from this Python; install numpy>=2 first")
if int(numpy.__version__.split(".")[0]) < 2:
    sys.exit(f"numpy {numpy.__version__} found; build against numpy>=2 headers (a module built on 1.x fails under 2.x)")
cfg = sysconfig.get_config_var
libpython = os.path.join(cfg("LIBDIR") or "", cfg("LDLIBRARY") or "")
if not (cfg("Py_ENABLE_SHARED") and os.path.exists(libpython)):
    multiarch = cfg("MULTIARCH") or ""
    alt = os.path.join(cfg("LIBDIR") or "", multiarch, cfg("LDLIBRARY") or "")
    libpython = alt if os.path.exists(alt) else ""
if not libpython:
    sys.exit(f"no shared libpython for {sys.executable}; install python3-dev (or use a Python built with --enable-shared)")
print(f"{sys.version_info.major}.{sys.version_info.minor}")
print(sysconfig.get_paths()["include"])
print(libpython)
print(numpy.__version__)
print(numpy.get_include())
PY
}

load_python_facts() {
  local facts
  facts=$(python_facts) || die "cannot build pycaffe for '$python' (see above)"
  { read -r py_version; read -r py_include; read -r py_library; read -r numpy_version; read -r numpy_include; } <<<"$facts"
}

# --- The cache key: source, patches, flags, and the Python ABI we link ------------------------
cache_key() {  # the CPU build's key is what it was before the GPU build existed
  { echo "$TARBALL_SHA256"; cat "$patches_dir"/*.patch; printf '%s\n' "${CMAKE_FLAGS[@]}";
    echo "$py_version $py_library numpy${numpy_version%%.*}";
    if [[ "$gpu" == 1 ]]; then cat "$cuda_dir"/patches/*.patch "$cuda_dir/wheels.txt"; fi
    if [[ -n "${CAFFE_BOOST_ROOT:-}" ]]; then echo "boost $CAFFE_BOOST_ROOT"; fi
  } | sha256sum | cut -c1-16
}

# --- The source -------------------------------------------------------------------------------
download_tarball() {  # download_tarball DIR: apt-get source under a private apt configuration
  log "fetching $SOURCE_PACKAGE=$SOURCE_VERSION ($SOURCE_SUITE)"
  debian_source "$1" "$SOURCE_SUITE" "$SOURCE_PACKAGE=$SOURCE_VERSION" || die "cannot fetch the source"
  [[ -f "$1/$TARBALL_NAME" ]] || die "apt-get source did not produce $TARBALL_NAME"
}

verify_sha256() {  # verify_sha256 FILE
  local actual
  actual=$(sha256sum "$1" | cut -d' ' -f1)
  if [[ "$actual" != "$TARBALL_SHA256" ]]; then
    die "sha256 mismatch for $1
  expected: $TARBALL_SHA256
  actual:   $actual"
  fi
  log "sha256 verified: $actual"
}

cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/caffe-multilabel-softmax"
kept_tarball="$cache_root/sources/$TARBALL_NAME"  # verified downloads are kept for rebuilds

fetch_source() {  # fetch_source WORKDIR: sets $tarball (given, kept, or downloaded and kept)
  if [[ -n "${CAFFE_SOURCE_TARBALL:-}" ]]; then
    [[ -f "$CAFFE_SOURCE_TARBALL" ]] || die "CAFFE_SOURCE_TARBALL=$CAFFE_SOURCE_TARBALL is not a file"
    tarball="$CAFFE_SOURCE_TARBALL"
    verify_sha256 "$tarball"
  elif [[ -f "$kept_tarball" ]]; then
    log "using the source kept from an earlier download: $kept_tarball"
    tarball="$kept_tarball"
    verify_sha256 "$tarball"
  else
    download_tarball "$1/apt"
    tarball="$1/apt/$TARBALL_NAME"
    verify_sha256 "$tarball"
    mkdir -p "$(dirname "$kept_tarball")"
    cp "$tarball" "$kept_tarball.partial" && mv "$kept_tarball.partial" "$kept_tarball"
    tarball="$kept_tarball"
  fi
}

if [[ "${1:-}" == "--fetch-source" ]]; then  # only fetch and verify the source; print its path
  fetch_work=$(mktemp -d "${TMPDIR:-/tmp}/fetch-caffe.XXXXXX")
  trap 'rm -rf "$fetch_work"' EXIT
  fetch_source "$fetch_work"
  echo "$tarball"
  exit 0
fi

if [[ -n "${CAFFE_PREFIX:-}" ]]; then
  prefix="$CAFFE_PREFIX"  # a finished build there is reused without asking Python anything
  [[ "$prefix" == /* ]] || prefix="$PWD/$prefix"
  prefix_is_ours=0  # the user's directory: never deleted, whatever it holds
else
  load_python_facts
  prefix="$cache_root/$build_name-$(cache_key)"
  prefix_is_ours=1  # inside our own cache namespace
fi
prefix="${prefix%/}"
[[ -n "$prefix" ]] || die "CAFFE_PREFIX=/ is not a place to install into; give a new directory"
marker="$prefix/.build-complete"

if [[ "${1:-}" == "--print-prefix" ]]; then
  echo "$prefix"
  exit 0
fi
if [[ -f "$marker" ]]; then
  log "reusing cached Caffe at $prefix"
  echo "$prefix"
  exit 0
fi

# --- One build of a prefix at a time ------------------------------------------------------------
# Two clones building into an empty cache at once (two CI jobs, two terminals) would both build,
# and the second's rename into place would fail. A lock per prefix, in the cache root, held until
# this script exits: the second waits for the first, then finds its finished build.
lock_dir="$cache_root/locks"
if command -v flock >/dev/null && mkdir -p "$lock_dir" 2>/dev/null; then
  lock_file="$lock_dir/$(printf '%s' "$prefix" | sha256sum | cut -c1-16).lock"
  exec {lock_fd}>>"$lock_file" || die "cannot open the build lock $lock_file"
  if ! flock -n "$lock_fd"; then
    log "another build of $prefix is running (lock $lock_file); waiting for it"
    flock "$lock_fd" || die "cannot take the build lock $lock_file"
  fi
  if [[ -f "$marker" ]]; then
    log "reusing cached Caffe at $prefix (the build waited for)"
    echo "$prefix"
    exit 0
  fi
else
  log "warning: no flock or no $lock_dir: two builds of $prefix at once are not kept apart"
fi

# --- Where the build may go: checked before anything is fetched or built ----------------------
# The build is installed into a staging directory beside the prefix (DESTDIR) and renamed into
# place only when complete, so an interrupted build never sits at the prefix; a staging
# directory holds an owner file naming the process that made it.
readonly OWNER_FILE=".caffe-multilabel-softmax-staging"
if [[ -e "$prefix" && ! -d "$prefix" ]]; then
  die "CAFFE_PREFIX=$prefix exists and is not a directory; choose a path that does not exist yet"
fi
if [[ -d "$prefix" && -n "$(ls -A "$prefix")" ]]; then
  if [[ $prefix_is_ours -eq 0 ]]; then
    die "CAFFE_PREFIX=$prefix is not empty and holds no finished build of this script
  ($marker is missing). The script never deletes a directory it did not create:
  choose a new or empty directory (e.g. CAFFE_PREFIX=$prefix/caffe), or unset CAFFE_PREFIX
  to use the cache at $cache_root"
  fi
  # A half-finished build of ours, left by an earlier version of this script: ours to remove.
  log "removing an unfinished build in our cache: $prefix"
  rm -rf "$prefix"
fi
parent=$(dirname "$prefix")
mkdir -p "$parent" || die "cannot create $parent (the parent of the prefix)"
for stale in "$parent/.$(basename "$prefix").staging."*; do  # killed builds of ours (kill -9)
  [[ -f "$stale/$OWNER_FILE" ]] || continue
  owner=$(cat "$stale/$OWNER_FILE")
  if ! kill -0 "$owner" 2>/dev/null; then
    log "removing an interrupted build's staging directory: $stale"
    rm -rf "$stale"
  fi
done


work=$(mktemp -d "${TMPDIR:-/tmp}/build-caffe.XXXXXX")
staging=$(mktemp -d "$parent/.$(basename "$prefix").staging.XXXXXX")
echo "$$" >"$staging/$OWNER_FILE"
trap 'rm -rf "$work" "$staging"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "source"
fetch_source "$work"
[[ -n "${py_version:-}" ]] || load_python_facts
location_flags=()  # where the toolkit, NCCL and a custom Boost are (not in the cache key)
run_path="$prefix/lib"
if [[ "$gpu" == 1 ]]; then
  step "CUDA toolkit"
  cuda_root=$(PYTHON="$python" bash "$cuda_dir/toolkit.sh" | tail -n1) || die "no CUDA toolkit (see above)"
  location_flags=(-DCUDA_TOOLKIT_ROOT_DIR="$cuda_root" -DNCCL_INCLUDE_DIR="$cuda_root/include"
             -DNCCL_LIBRARIES="$cuda_root/lib64/libnccl.so")
  run_path="$prefix/lib;$cuda_root/lib64"  # cudart, cuBLAS, cuRAND and NCCL from the toolkit root
fi
if [[ -n "${CAFFE_BOOST_ROOT:-}" ]]; then
  [[ -d "$CAFFE_BOOST_ROOT/lib/cmake" ]] || die "CAFFE_BOOST_ROOT=$CAFFE_BOOST_ROOT holds no lib/cmake"
  location_flags+=(-DBOOST_ROOT="$CAFFE_BOOST_ROOT" -DBoost_NO_SYSTEM_PATHS=ON)
  run_path="$run_path;$CAFFE_BOOST_ROOT/lib"
fi

step "unpack and patch"
mkdir -p "$work/src"
tar -xzf "$tarball" -C "$work/src"  # the pinned tarball has no top-level directory
[[ -f "$work/src/CMakeLists.txt" ]] || die "unexpected tarball layout: no CMakeLists.txt at its top"
patch_files=("$patches_dir"/*.patch)
if [[ "$gpu" == 1 ]]; then patch_files+=("$cuda_dir"/patches/*.patch); fi
for patch_file in "${patch_files[@]}"; do
  log "  applying $(basename "$patch_file")"
  patch -d "$work/src" -p1 --forward --quiet <"$patch_file" || die "patch $(basename "$patch_file") does not apply"
done

# --- Configure for the final prefix (Caffe bakes it into RUNPATH), install into staging ---------
step "configure (Python $py_version, numpy $numpy_version, prefix $prefix)"
cmake -S "$work/src" -B "$work/build" "${CMAKE_FLAGS[@]}" "${location_flags[@]}" \
  -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_RPATH="$run_path" \
  -DPYTHON_EXECUTABLE="$(command -v "$python")" -DPYTHON_INCLUDE_DIR="$py_include" \
  -DPYTHON_LIBRARY="$py_library" -DNUMPY_INCLUDE_DIR="$numpy_include" >"$work/configure.log" 2>&1 ||
  { tail -n 40 "$work/configure.log" >&2; die "cmake configure failed"; }

step "compile with $(nproc) jobs (on 2 cores: about 5 minutes; with CUDA about 20)"
cmake --build "$work/build" -j "$(nproc)" >"$work/build.log" 2>&1 ||
  { tail -n 60 "$work/build.log" >&2; die "compile failed (log above)"; }

step "install (staged in $staging)"
DESTDIR="$staging" cmake --install "$work/build" >"$work/install.log" 2>&1 ||
  { tail -n 20 "$work/install.log" >&2; die "install failed"; }
staged="$staging$prefix"
[[ -x "$staged/bin/caffe" && -f "$staged/python/caffe/_caffe.so" ]] ||
  die "install incomplete: bin/caffe or python/caffe/_caffe.so missing in $staged"

step "smoke test"
LD_LIBRARY_PATH="$staged/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PYTHONPATH="$staged/python" "$python" -c \
  "import caffe; assert 'Python' in caffe.layer_type_list(), 'no Python layer'
assert hasattr(caffe, 'get_mode') == ($gpu == 1), 'get_mode is in the GPU build alone'
print('pycaffe OK')" >&2 ||
  die "the built pycaffe does not import or lacks the Python layer"

date -u +%FT%TZ >"$staged/.build-complete"
# Into place in one rename (same file system). The prefix may exist only as an empty directory.
[[ -d "$prefix" ]] && { rmdir "$prefix" || die "$prefix is no longer empty; the build stays in $staged"; }
mv -T "$staged" "$prefix" || die "cannot move the finished build from $staged to $prefix"
step
log "Caffe installed at $prefix"
echo "$prefix"
