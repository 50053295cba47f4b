#!/usr/bin/env bash
# CI's Docker part: start a Docker daemon if none runs, build the image, run the tests and a
# short example training inside it, and stop the daemon we started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
image=caffe-multilabel-softmax
export PATH="/usr/bin:/usr/sbin:$PATH"  # Debian's docker client first (the legacy builder; no buildx needed)
started_daemon=""

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends docker.io; }
  echo "starting dockerd"
  dockerd >/tmp/dockerd.log 2>&1 &
  started_daemon=$!
  trap 'kill "$started_daemon" 2>/dev/null; wait "$started_daemon" 2>/dev/null || true' EXIT
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -n 30 /tmp/dockerd.log; exit 1; }
fi

bash docker/bootstrap_base_image.sh debian:bookworm-slim
started=$(date +%s)
DOCKER_BUILDKIT=0 docker build -f docker/Dockerfile -t "$image" . >/tmp/docker-build.log 2>&1 ||
  { tail -n 60 /tmp/docker-build.log; exit 1; }
echo "docker build: $(( $(date +%s) - started )) s, image $(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1 / 1e6}')"
docker run --rm "$image" caffe --version
# the slow tests (real trainings) ran natively; the training below is this image's own
docker run --rm -e REQUIRE_CAFFE=1 "$image" make test PYTEST_ARGS="-q -m 'not slow'"
docker run --rm "$image" make train TRAIN_ARGS="--max-iter 300"
