#!/usr/bin/env bash
# Make the Dockerfile's base image available when it cannot be pulled (CI cannot reach Docker
# Hub): debootstrap a minimal bookworm from the machine's own Debian mirror, carry over the
# host's locally added CA certificates (so TLS from inside builds works behind an intercepting
# proxy), and `docker import` it under the base image's name. Does nothing when the image is
# already there or can be pulled.
set -euo pipefail
image="${1:-debian:bookworm-slim}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/debian_mirror.sh"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "base image $image: present"
  exit 0
fi
if timeout 120 docker pull "$image" >/dev/null 2>&1; then
  echo "base image $image: pulled"
  exit 0
fi
echo "base image $image: cannot be pulled; making it with debootstrap"
command -v debootstrap >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; }
mirror=$(debian_mirror)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >/tmp/debootstrap.log 2>&1 ||
  { tail -n 30 /tmp/debootstrap.log; exit 1; }
# Debian's local CA directory: the image's ca-certificates package picks these up when installed.
if compgen -G "/usr/local/share/ca-certificates/*" >/dev/null; then
  mkdir -p "$root/usr/local/share/ca-certificates"
  cp -r /usr/local/share/ca-certificates/. "$root/usr/local/share/ca-certificates/"
fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import - "$image" >/dev/null
echo "base image $image: imported from debootstrap ($mirror)"
