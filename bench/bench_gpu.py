"""GPU benchmark: forward + backward of the loss in a GPU net (run by scripts/gpu/check.sh).

Per shape, with index targets (the form every peer takes), interleaved rounds, best of each:
ours on the GPU engine; Caffe's native GPU SoftmaxWithLoss; ours with ``"engine": "cpu"`` in
the same GPU net (the scores copied to the host and the gradient back, as without this
work); PyTorch CUDA ``cross_entropy``. Each timed call ends with a device synchronise.
Prints one JSON object per row and writes bench/results_gpu.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import caffe

sys.path.insert(0, str(Path(__file__).parent))
from bench import build_net, interleaved_ms, make_data

SHAPES = [(256, 1000), (256, 17000), (8, 21, 128, 128)]


def synchronised(run, cupy):
    def timed():
        run()
        cupy.cuda.runtime.deviceSynchronize()

    return timed


def net_runner(loss, scores, labels, cupy, **params):
    net = build_net(loss, scores.shape, labels.shape, **params)
    net.blobs["scores"].data[...] = scores  # uploaded once, on the first forward
    net.blobs["targets"].data[...] = labels
    return net, synchronised(lambda: (net.forward(), net.backward()), cupy)


def torch_runner(scores, labels):
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    x = torch.tensor(scores, device="cuda", requires_grad=True)
    y = torch.tensor(labels, device="cuda").long()

    def run():
        x.grad = None
        torch.nn.functional.cross_entropy(x, y).backward()
        torch.cuda.synchronize()

    return run


def bench_shape(shape, cupy, repeats):
    scores, _, labels = make_data(shape, "index")
    nets = {}
    runs = {}
    for name, loss, params in (
        ("ours_gpu", "ours", {}),
        ("native_gpu", "native", {}),
        ("ours_cpu_engine", "ours", {"engine": "cpu"}),
    ):
        nets[name], runs[name] = net_runner(loss, scores, labels, cupy, **params)
    runs["torch_cuda"] = torch_runner(scores, labels)
    ms = interleaved_ms(runs, repeats)
    losses = {name: float(n.blobs["loss"].data) for name, n in nets.items()}
    row = {"shape": list(shape), "ms": ms, "losses": losses}
    row["ours/native"] = ms["ours_gpu"] / ms["native_gpu"]
    if ms["torch_cuda"]:
        row["ours/torch"] = ms["ours_gpu"] / ms["torch_cuda"]
    row["cpu_engine/ours"] = ms["ours_cpu_engine"] / ms["ours_gpu"]
    return row


def main() -> None:
    import cupy

    caffe.set_mode_gpu()
    caffe.set_device(0)
    rows = []
    for shape in SHAPES:
        row = bench_shape(shape, cupy, repeats=50)
        print(json.dumps(row), flush=True)
        rows.append(row)
    out = Path(__file__).with_name("results_gpu.json")
    out.write_text(
        json.dumps(
            {"device": cupy.cuda.runtime.getDeviceProperties(0)["name"].decode(), "rows": rows},
            indent=1,
        )
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
