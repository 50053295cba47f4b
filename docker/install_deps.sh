#!/usr/bin/env bash
# Install the Debian/Ubuntu packages needed to build and run BVLC Caffe (CPU, Python layers).
# Usage: docker/install_deps.sh [--runtime]   (--runtime: only the shared libraries, for Docker's final stage)
set -euo pipefail

build_packages=(
  cmake g++ make patch pkg-config ca-certificates dpkg-dev debian-archive-keyring
  protobuf-compiler libprotobuf-dev libgoogle-glog-dev libgflags-dev
  libhdf5-dev libopenblas-dev
  libboost-system-dev libboost-thread-dev libboost-filesystem-dev libboost-python-dev
  liblmdb-dev libleveldb-dev libsnappy-dev
  python3-dev python3-venv
)
# What a built Caffe links at run time (Debian 12 names; used by the Docker image's final stage).
runtime_packages=(
  ca-certificates libprotobuf32 libgoogle-glog0v6 libgflags2.2
  libhdf5-103-1 libhdf5-hl-100 libopenblas0
  libboost-thread1.74.0 libboost-filesystem1.74.0 libboost-python1.74.0
  liblmdb0 libleveldb1d libsnappy1v5
  python3 libpython3.11 make
)

packages=("${build_packages[@]}")
[[ "${1:-}" == "--runtime" ]] && packages=("${runtime_packages[@]}")

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install_deps: all ${#packages[@]} system packages present"
  exit 0
fi

if [[ $(id -u) -eq 0 ]]; then
  sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "install_deps: missing system packages: ${missing[*]}" >&2
  echo "install_deps: run as root:  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi
echo "install_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
