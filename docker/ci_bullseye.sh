#!/usr/bin/env bash
# CI's Debian 11 stage: the package on the Caffe that Debian 11 ships (`caffe`, `python3-caffe`:
# Python 3.9, numpy 1.19, protobuf 3.12, Debian's pip 20.3), installed the way docs/debian.md
# says, in a debootstrapped bullseye chroot; then the suite (REQUIRE_CAFFE=1, Debian's own
# `caffe` tool through multilabel-caffe) and a short training of the example with that tool.
# The chroot is cached under ~/.cache (keyed by the package list); a fresh machine makes it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source docker/debian_mirror.sh
# the packages docs/debian.md's first shell block installs
packages=()
while read -r name; do packages+=("$name"); done < <(
  awk '/^```sh$/ {n++} n == 1 && /apt-get install/' docs/debian.md |
  tr ' ' '\n' | awk 'seen && !/^-/ {print} /^install$/ {seen=1}')
[[ ${#packages[@]} -gt 0 ]] || { echo "no apt-get install line in docs/debian.md" >&2; exit 1; }
packages+=(ca-certificates)
cache="${XDG_CACHE_HOME:-$HOME/.cache}/caffe-multilabel-softmax"
root="$cache/bullseye-root"
key=$(echo "bullseye ${packages[*]}" | sha256sum | cut -c1-16)
started=$(date +%s)

if [[ "$(cat "$root/.ready" 2>/dev/null)" != "$key" ]]; then
  command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; }
  if grep -q " $root/" /proc/mounts; then  # never delete through a bind mount of /dev
    echo "bullseye stage: something is mounted under $root; unmount it first" >&2
    exit 1
  fi
  rm -rf "$root"
  mkdir -p "$cache"
  mirror=$(debian_mirror)
  echo "bullseye stage: debootstrap from $mirror"
  debootstrap --variant=minbase bullseye "$root" "$mirror" >/tmp/bullseye-debootstrap.log 2>&1 ||
    { tail -n 30 /tmp/bullseye-debootstrap.log; exit 1; }
  if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then  # an intercepting proxy's CA
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
  fi
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update -q && apt-get install -y -q --no-install-recommends ${packages[*]} && apt-get clean" \
    >/tmp/bullseye-apt.log 2>&1 || { tail -n 30 /tmp/bullseye-apt.log; exit 1; }
  echo "$key" >"$root/.ready"
  echo "bullseye stage: chroot ready in $(( $(date +%s) - started )) s"
fi

mounted=()
cleanup() {
  for (( i=${#mounted[@]} - 1; i >= 0; i-- )); do umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}"; done
}
trap cleanup EXIT
for fs in proc dev dev/shm; do
  mkdir -p "$root/$fs"
  if [[ $fs == proc ]]; then mount -t proc proc "$root/proc"; else mount --bind "/$fs" "$root/$fs"; fi
  mounted+=("$root/$fs")
done

# This clone's files (tracked and untracked, not ignored), fresh each run.
rm -rf "$root/root/project"
mkdir -p "$root/root/project"
git ls-files -z --cached --others --exclude-standard |
  tar --null --ignore-failed-read -T - -cf - 2>/dev/null | tar -xf - -C "$root/root/project"

# docs/debian.md's shell blocks, as written: 1 (apt) made the chroot; 2 installs the
# package, 3 the test tools and runs the suite. Then a short training of the example with
# Debian's tool.
awk '/^```sh$/ {n++; keep=1; next} /^```$/ {keep=0} keep {print > (dir "/doc-block-" n ".sh")}' \
  dir="$root/root" docs/debian.md
for block in 2 3; do
  echo "bullseye stage: docs/debian.md block $block:"; sed 's/^/  /' "$root/root/doc-block-$block.sh"
  chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off REQUIRE_CAFFE=1 \
    bash -c "cd /root/project && bash -euo pipefail /root/doc-block-$block.sh"
done
chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 bash -c '
  cd /root/project && .venv/bin/python -c "import numpy, google.protobuf as p; print(\"venv: numpy\", numpy.__version__, \"protobuf\", p.__version__)" &&
  CAFFE_TOOL=.venv/bin/multilabel-caffe .venv/bin/python -m examples.digits_multilabel.train \
    --targets-form images --targets ink --max-iter 100 --name bullseye'
echo "bullseye stage: $(( $(date +%s) - started )) s"
