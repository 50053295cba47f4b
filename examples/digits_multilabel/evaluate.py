"""Dataset-level evaluation of trained weights through pycaffe: mAP, P@1, P@k, R@k, per-class AP.

python -m examples.digits_multilabel.evaluate WEIGHTS [--loss softmax] [--targets khot]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import numpy as np

from python_layers import metrics

from .data import DEFAULT_DIR
from .nets import PROTOTXT_DIR, TOP_K, prototxt_name


def predict(weights: Path, loss: str, images: np.ndarray) -> np.ndarray:
    """Probabilities (N, C) of the deploy net for ``images`` (N, 1, H, W), batch by batch."""
    import caffe

    caffe.set_mode_cpu()
    net = caffe.Net(
        str(PROTOTXT_DIR / prototxt_name("deploy", loss)), caffe.TEST, weights=str(weights)
    )
    batch = net.blobs["data"].data.shape[0]
    probs = []
    for start in range(0, len(images), batch):
        chunk = images[start : start + batch]
        net.blobs["data"].reshape(len(chunk), *images.shape[1:])
        net.blobs["data"].data[...] = chunk
        probs.append(net.forward()["prob"].copy())
    return np.concatenate(probs)


def evaluate(
    weights: Path, loss: str = "softmax", targets: str = "khot", data_dir: Path = DEFAULT_DIR
) -> dict:
    """Every metric over the whole test set; relevance is target > 0 for both target kinds."""
    with h5py.File(data_dir / f"test_{targets}.h5", "r") as f:
        images, labels = f["data"][...], f["label"][...]
    probs = predict(weights, loss, images)
    result = metrics.summary(probs, labels, TOP_K)
    result["per_class_ap"] = metrics.per_class_average_precision(probs, labels).tolist()
    result["chance_map"] = metrics.chance_map(labels)
    result["test_samples"] = len(images)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("weights", type=Path)
    parser.add_argument("--loss", choices=["softmax", "sigmoid"], default="softmax")
    parser.add_argument("--targets", choices=["khot", "ink"], default="khot")
    args = parser.parse_args()
    print(json.dumps(evaluate(args.weights, args.loss, args.targets), indent=2))


if __name__ == "__main__":
    main()
