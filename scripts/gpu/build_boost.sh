#!/usr/bin/env bash
# Boost 1.83's python, thread, filesystem and system libraries for another Python than Debian
# 12's (whose Boost.Python is for 3.11 only), from Debian trixie's pinned source; cached.
# Used by scripts/gpu/pack.sh to build Caffe for the GPU machine's Python 3.12.
#
#   PYTHON=/path/to/python3.12 scripts/gpu/build_boost.sh    prints the install prefix last
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=docker/debian_mirror.sh
source "$here/../../docker/debian_mirror.sh"
readonly VERSION="1.83.0-4.2"
readonly TARBALL="boost1.83_1.83.0.orig.tar.xz"
readonly SHA256="404df4b4072fc7f2d4483d4fc2d61ff6f554dd80c9a812652684d5952e881c91"
python="${PYTHON:?set PYTHON to the interpreter Boost.Python is for}"

log() { echo "build_boost: $*" >&2; }
die() { log "error: $*"; exit 1; }

py_version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
py_include=$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
cache="${XDG_CACHE_HOME:-$HOME/.cache}/caffe-multilabel-softmax"
prefix="$cache/boost-1.83-py$py_version-$(echo "$SHA256 $py_include" | sha256sum | cut -c1-8)"
if [[ -f "$prefix/.build-complete" ]]; then
  log "reusing $prefix"
  echo "$prefix"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/build-boost.XXXXXX")
trap 'rm -rf "$work"' EXIT
kept="$cache/sources/$TARBALL"
if [[ ! -f "$kept" ]]; then
  debian_source "$work/apt" trixie "boost1.83=$VERSION" || die "cannot fetch boost1.83=$VERSION"
  mkdir -p "$(dirname "$kept")"
  mv "$work/apt/$TARBALL" "$kept"
fi
[[ "$(sha256sum "$kept" | cut -d' ' -f1)" == "$SHA256" ]] || die "sha256 mismatch for $kept"
log "sha256 verified; unpacking"
tar -xJf "$kept" -C "$work"
src="$work/boost"  # Debian's orig tarball unpacks to boost/
cat >"$work/user-config.jam" <<JAM
using python : $py_version : $python : $py_include ;
JAM
log "building python, thread, filesystem, system for Python $py_version with $(nproc) jobs"
# Debian's orig tarball leaves out the generated grammar of b2's engine: bison makes it.
command -v bison >/dev/null || die "bison is needed (apt-get install bison)"
(cd "$src/tools/build/src/engine" && bison -y -d -o jamgram.cpp jamgram.y) ||
  die "bison could not generate b2's grammar"
(cd "$src" && ./bootstrap.sh --with-libraries=python,thread,filesystem,system >"$work/bootstrap.log" 2>&1) ||
  { tail -n 20 "$work/bootstrap.log" >&2; die "bootstrap failed"; }
(cd "$src" && ./b2 -q -j"$(nproc)" --user-config="$work/user-config.jam" "python=$py_version" \
  variant=release link=shared threading=multi "--prefix=$work/install" install >"$work/b2.log" 2>&1) ||
  { tail -n 40 "$work/b2.log" >&2; die "b2 failed"; }
date -u +%FT%TZ >"$work/install/.build-complete"
rm -rf "$prefix"
mkdir -p "$(dirname "$prefix")"
mv -T "$work/install" "$prefix"
log "Boost at $prefix"
echo "$prefix"
