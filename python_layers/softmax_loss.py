"""Caffe layer: softmax cross-entropy with multi-label, real-valued targets.

Prototxt::

    layer {
      name: "loss"  type: "Python"
      bottom: "scores"  bottom: "targets"     # "labels" [+ "label_weights"] for label lists
      top: "loss"            # optional second top: "prob"
      python_param { module: "python_layers.softmax_loss"  layer: "SoftmaxLossLayer"
                     param_str: '{"normalization": "valid"}' }
      loss_weight: 1
    }

The math is in :mod:`python_layers.loss` (CPU) and :mod:`python_layers.loss.cuda` (GPU); the
parameters are checked in :mod:`python_layers.params`. This class only moves data between
Caffe's blobs and them: host arrays in CPU nets, device addresses in GPU nets.
"""

from __future__ import annotations

import caffe
import numpy as np

from .errors import reports_errors
from .loss.blobs import DeviceBlobs, HostBlobs
from .loss.bottoms import check_bottoms
from .loss.cuda import device
from .loss.cuda.launch import DeviceSoftmaxCrossEntropy
from .loss.engine import SoftmaxCrossEntropy
from .loss.forms import layout_for
from .loss.layout import Layout
from .loss.options import Options
from .params import softmax_loss_params

LAYER = "SoftmaxLossLayer"


@reports_errors
class SoftmaxLossLayer(caffe.Layer):
    """Softmax cross-entropy; a drop-in for SoftmaxWithLoss that also takes dense targets.

    Bottoms:
      0. scores:  any shape with the class axis ``axis`` (default 1), e.g. (N, C) or (N, C, H, W).
      1. targets, in the form param_str key ``targets`` names (default ``"auto"``: by shape):
         dense, the scores' shape (trailing singleton dims ignored), real values >= 0,
         normalised per position to sum 1 by default (k-hot -> 1/k);
         index, one integer label per position, e.g. (N,) or (N, 1, H, W);
         ``"labels"``: label lists (N, K), class indices padded with -1, scores (N, C).
      2. label_weights (optional, label lists only): (N, K), a weight >= 0 per listed label;
         row r's targets are ``t_c = sum_j w_rj [label_rj == c]``.
    Tops:
      0. loss: scalar, ``(1/Z) sum_positions sum_c w_c t_c (-log p_c)``.
      1. prob (optional): softmax of the scores, the scores' shape.
    Backward: exact gradient to the scores; to dense targets and label weights when Caffe
    asks (targets from a teacher net), unless ``"target_gradient": false``, which writes
    zeros instead; zeros to index labels and label lists.

    Forward computes the loss (and prob) in one pass and keeps, per position, what backward
    needs (the maximum and the normaliser, the targets' coefficients: a few numbers each;
    for (N, C) scores also exp(s - max), one array of the scores' size);
    backward computes the gradients in one pass from the bottoms' data, those, and the loss
    weight Caffe puts in ``top[0].diff``. It never reads the bottoms' diffs, so code that
    clears or reuses them between ``forward()`` and ``backward()`` gets the right gradient.

    In a GPU net (GPU build, GPU mode) with CuPy importable, everything is computed on the
    GPU from the blobs' device memory (``"engine": "auto"``, the default); ``"cpu"`` keeps
    the CPU engine (blobs copied to the host), ``"gpu"`` makes a missing GPU engine an error.
    """

    def setup(self, bottom, top) -> None:
        params = softmax_loss_params(self.param_str)
        self.axis = params.pop("axis")
        self.form = params.pop("targets")
        self.target_gradient = params.pop("target_gradient")
        self.engine_choice = params.pop("engine")
        self.monitor_only = params.pop("allow_zero_loss_weight")
        self.weight_checked = False  # the TRAIN phase's loss weight, checked at the first forward
        self.options = Options(**params)
        self.engine = SoftmaxCrossEntropy(self.options)
        self.device_engine: DeviceSoftmaxCrossEntropy | None = None  # made in the first GPU call
        if self.engine_choice == "gpu" and not hasattr(caffe, "get_mode"):
            raise ValueError(
                f'{LAYER}: "engine": "gpu" needs the GPU build of Caffe (CAFFE_GPU=1 make env); '
                "this pycaffe is CPU-only"
            )
        if len(top) not in (1, 2):
            raise ValueError(f"{LAYER}: needs 1 or 2 tops (loss[, prob]), got {len(top)}")
        self.on_device: DeviceBlobs | None = None  # the GPU engine's adapter, once made

    def reshape(self, bottom, top) -> None:
        # Shapes from the blobs themselves: `.data` would copy a GPU net's blobs to the host.
        shapes = [tuple(bottom[i].shape) for i in range(len(bottom))]
        try:
            check_bottoms(self.form, shapes)  # how many, and the label weights' shape
            self.layout = layout_for(shapes[0], shapes[1], self.axis, self.form)
        except ValueError as why:
            raise ValueError(f"{LAYER}: {why}") from None
        self._check_options_fit(self.layout)
        self.host = HostBlobs(self.engine, self.layout)
        self.adapter = self._pick_adapter()  # Caffe reshapes before every forward
        top[0].reshape()  # a scalar, like Caffe's own loss layers
        if len(top) == 2:
            top[1].reshape(*shapes[0])

    def _check_options_fit(self, layout: Layout) -> None:
        weights = self.options.class_weights
        if weights is not None and len(weights) != layout.classes:
            raise ValueError(
                f"{LAYER}: param_str key 'class_weights' has {len(weights)} entries; "
                f"expected one per class, {layout.classes} (the size of the scores' class axis)"
            )
        refusal = layout.form.ignore_label_refusal(layout)  # dense, label lists: why not
        if self.options.ignore_label is not None and refusal is not None:
            raise ValueError(
                f"{LAYER}: param_str key 'ignore_label' applies to index targets only; {refusal}"
            )

    def _pick_adapter(self):
        """The adapter for these shapes: the GPU engine's in a GPU net (made once), else the
        CPU engine's. ``"engine": "auto"`` without CuPy says so once and stays on the CPU."""
        if self.engine_choice == "cpu" or not device.gpu_mode():
            if self.engine_choice == "gpu":
                raise ValueError(f'{LAYER}: "engine": "gpu" needs the net in GPU mode')
            return self.host
        if self.device_engine is None:
            try:
                backend = device.make_backend()
            except ImportError as why:
                if self.engine_choice == "gpu":
                    raise ImportError(f"{LAYER}: {why}") from None
                self.engine_choice = "cpu"  # said once, then the CPU engine as before
                print(f"{LAYER}: GPU net, CPU engine: {why}", flush=True)
                return self.host
            self.device_engine = DeviceSoftmaxCrossEntropy(backend, self.options)
        if self.on_device is None or self.on_device.layout != self.layout:
            self.on_device = DeviceBlobs(self.device_engine, self.layout, self.host)
        return self.on_device

    def _check_loss_weight(self, top) -> None:
        """Once, in the TRAIN phase: a loss weight of 0 (Caffe's default for Python layers,
        which, unlike its own loss layers, get none) trains nothing, silently."""
        self.weight_checked = True
        if self.monitor_only or float(top[0].diff.flat[0]) != 0:
            return
        raise ValueError(
            f"{LAYER}: loss_weight is 0 in the TRAIN phase, so Caffe computes no gradient and "
            "the net trains nothing (Python layers get loss_weight 0 unless the layer says "
            "otherwise). Add `loss_weight: 1` to the layer (NetSpec: python_layers.netspec."
            "softmax_loss does); for a loss that only reports, add "
            "'\"allow_zero_loss_weight\": true' to param_str"
        )

    def forward(self, bottom, top) -> None:
        if not self.weight_checked and self.phase == caffe.TRAIN:
            self._check_loss_weight(top)
        # Validate, then the loss (and prob) in one pass; the engine keeps what backward needs
        # per position (the maximum and the normaliser, the targets' coefficients).
        try:
            loss = self.adapter.forward(bottom, top)
        except (ValueError, FloatingPointError, RuntimeError) as why:
            raise type(why)(f"{LAYER}: {why}") from None
        if not np.isfinite(loss):  # finite inputs overflowing (|scores| near float32's max)
            raise FloatingPointError(f"{LAYER}: loss is {loss} although both bottoms are finite")
        if not self.adapter.writes_loss:  # the GPU engine wrote it into the top's device memory
            top[0].data[...] = loss

    def backward(self, top, propagate_down, bottom) -> None:
        # The gradients from the bottoms' data, what forward kept and the loss weight Caffe
        # put in top[0].diff: one pass that never reads the bottoms' diffs. Caffe asks for
        # the targets under force_backward even with propagate_down: false (a Python layer
        # always allows forced backward), so "target_gradient": false is the opt-out: zeros.
        exact = self.layout.form.gradient_bottom if self.target_gradient else None
        if exact is not None and not (exact < len(bottom) and propagate_down[exact]):
            exact = None
        zeros = [i for i in range(1, len(bottom)) if propagate_down[i] and i != exact]
        self.adapter.backward(bottom, float(top[0].diff.flat[0]), propagate_down[0], exact, zeros)
