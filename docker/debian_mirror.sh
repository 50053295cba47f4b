#!/usr/bin/env bash
# Print the Debian mirror to use: $CAFFE_DEBIAN_MIRROR, else the first Debian archive URI in the
# system's own apt sources (deb822 .sources files or sources.list). Sourced or run.
debian_mirror() {
  if [[ -n "${CAFFE_DEBIAN_MIRROR:-}" ]]; then
    echo "$CAFFE_DEBIAN_MIRROR"
    return 0
  fi
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i}' | grep -E '/debian/?$' | head -n1 || true)
  [[ -z "$uri" ]] && uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        awk '$1 == "deb" || $1 == "deb-src" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) {print $i; break}}' |
        grep -E '/debian/?$' | head -n1 || true)
  if [[ -z "$uri" ]]; then
    echo "no Debian mirror in the system's apt sources; set CAFFE_DEBIAN_MIRROR (an archive URI ending in /debian)" >&2
    return 1
  fi
  echo "$uri"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  debian_mirror
fi
