#!/usr/bin/env bash
# The GPU check, on a GPU machine (CUDA 13 driver, Python 3.12 with CuPy, PyTorch, numba, h5py,
# scikit-learn and pytest; no Debian libraries, nothing fetchable). Needs .gpu-carry/ from
# scripts/gpu/pack.sh (run that first, on any x86_64 machine). Prints, in this order:
#   1. the machine, and pycaffe importing the carried CUDA Caffe;
#   2. the GPU engine against the CPU engine (tests/test_gpu.py, test_device_*.py);
#   3. device-to-host copies per training iteration, GPU engine vs CPU engine;
#   4. the GPU benchmark (bench/bench_gpu.py);
#   5. the example trained in GPU mode and in CPU mode, test mAP of each;
#   6. the whole test suite with nets in GPU mode (CAFFE_TEST_MODE=GPU).
# Logs and JSON results go to $OUT (default /tmp/gpu-check-out). About 8 minutes on an H100.
# From a development session with the device tool:
#   run(command="bash scripts/gpu/check.sh", carry=[".gpu-carry"], timeout_s=600)
# `check.sh --cpu-only` runs what needs no GPU (1, 2, 5 and 6 on the CPU), to try the packed
# Caffe on the machine that packed it, with a Python 3.12 environment like the GPU machine's.
set -uo pipefail
gpu=1
[[ "${1:-}" == "--cpu-only" ]] && gpu=0
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${OUT:-/tmp/gpu-check-out}"
mkdir -p "$out"
exec > >(tee "$out/check.log") 2>&1
python="${PYTHON:-$(command -v python3)}"
stage=/tmp/caffe-gpu
section() { echo; echo "=== $* ($(date -u +%H:%M:%S))"; }

section "1. machine and Caffe"
[[ -f .gpu-carry/caffe-gpu.tar.xz ]] || { echo "no .gpu-carry/caffe-gpu.tar.xz: run scripts/gpu/pack.sh"; exit 1; }
rm -rf "$stage" && tar -C /tmp -xJf .gpu-carry/caffe-gpu.tar.xz
nvidia-smi -L || true
site=$("$python" -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')
cuda_dirs=$(ls -d "$site"/nvidia/*/lib 2>/dev/null | tr '\n' ':')
pylib=$("$python" -c 'import sysconfig, os; d = sysconfig.get_config_var("LIBDIR"); n = sysconfig.get_config_var("INSTSONAME") or ""; print(d if n and os.path.exists(os.path.join(d, n)) else "")')
[[ -n "$pylib" ]] || pylib="$stage/pylib"  # a Python without a shared libpython: the packed one
export LD_LIBRARY_PATH="$stage/lib:${cuda_dirs}$pylib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PYTHONPATH="$stage/site:$stage/python:$root${PYTHONPATH:+:$PYTHONPATH}"
home=$("$python" -c 'import sys; print(sys.base_prefix)')
# The caffe tool embeds Python: give it this Python's home and packages, as bootstrap.sh does.
cat >"$stage/caffe" <<WRAPPER
#!/bin/sh
PYTHONHOME="$home" PYTHONPATH="$PYTHONPATH:$site" exec "$stage/bin/caffe" "\$@"
WRAPPER
chmod +x "$stage/caffe"
export CAFFE_TOOL="$stage/caffe" GLOG_minloglevel=2 PYTHONUNBUFFERED=1
GPU=$gpu "$python" - <<'PY'
import os, sys, cupy, caffe
gpus = cupy.cuda.runtime.getDeviceCount() if os.environ["GPU"] == "1" else "not asked"
print("python", sys.version.split()[0], "| cupy", cupy.__version__, "| caffe", caffe.__version__,
      "| get_mode", caffe.get_mode(), "| GPUs", gpus)
try:
    import torch
    print("torch", torch.__version__, torch.cuda.get_device_name(0))
except Exception as why:
    print("torch:", why)
PY
[[ $gpu == 1 ]] && { "$CAFFE_TOOL" device_query --gpu=0 2>&1 | grep -E "Name|Major|Minor|multiproc"; }

section "2. GPU engine vs CPU engine (loss rtol 1e-5, gradients atol 1e-6)"
timeout 240 "$python" -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_device_engine.py \
  tests/test_device_layer.py 2>&1 | tail -n 15

if [[ $gpu == 1 ]]; then
  section "3. device-to-host copies per training iteration (256 x 17000 scores)"
  LD_PRELOAD="$stage/lib/count_copies.so" timeout 120 "$python" scripts/gpu/copies.py |
    tee "$out/copies.jsonl"
  section "4. benchmark (index targets; ms per forward + backward, best of interleaved rounds)"
  timeout 240 "$python" bench/bench_gpu.py | tee "$out/bench_gpu.jsonl"
fi

section "5. the example: 1500 iterations in GPU mode and in CPU mode"
devices=(cpu); [[ $gpu == 1 ]] && devices=(gpu cpu)
for device in "${devices[@]}"; do
  flag=(); [[ $device == gpu ]] && flag=(--gpu 0)
  timeout 300 "$python" -m examples.digits_multilabel.train --name "check_$device" "${flag[@]}" |
    grep -E "^\| check|wrote|Error|error" || echo "example training ($device) failed"
done
"$python" - <<'PY' | tee "$out/example.json"
import json
import os
runs = {d: json.load(open(f"runs/check_{d}/metrics.json")) for d in ("gpu", "cpu")
        if os.path.exists(f"runs/check_{d}/metrics.json")}
maps = {d: r["test"]["map"] for d, r in runs.items()}
print(json.dumps({"test_map": maps, "gpu_minus_cpu": maps["gpu"] - maps["cpu"] if len(maps) == 2
                  else None, "train_seconds": {d: r["train_seconds"] for d, r in runs.items()}}))
PY

section "6. the test suite with nets in $([[ $gpu == 1 ]] && echo GPU || echo CPU) mode"
CAFFE_TEST_MODE=$([[ $gpu == 1 ]] && echo GPU || echo CPU) timeout 300 "$python" -m pytest -q \
  -p no:cacheprovider --maxfail=20 2>&1 | tail -n 25
section "done"
