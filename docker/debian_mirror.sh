#!/usr/bin/env bash
# Print the Debian mirror to use: $CAFFE_DEBIAN_MIRROR, else the first Debian archive URI in the
# system's own apt sources (deb822 .sources files or sources.list). Sourced or run. Sourced,
# it also gives debian_source, which downloads a source package from that mirror.
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

# debian_source DIR SUITE PACKAGE=VERSION: `apt-get source --download-only` into DIR under a
# private apt configuration (the system's apt sources are not touched); the files land in DIR.
debian_source() {
  local dir=$1 suite=$2 spec=$3 mirror opts
  mirror=$(debian_mirror) || return 1
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d"
  chmod -R a+rwX "$dir"  # apt's sandbox user must be able to write here
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main" >"$dir/sources.list"
  opts=(-q -o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/sources.list.d"
        -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o "Debug::NoLocking=1")
  echo "debian_source: $spec from $mirror ($suite)" >&2
  apt-get "${opts[@]}" update >&2 && (cd "$dir" && apt-get "${opts[@]}" source --download-only "$spec" >&2)
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  debian_mirror
fi
