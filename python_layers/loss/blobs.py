"""The loss engines on Caffe's blobs: each adapter moves blobs to its engine in one place.

:class:`HostBlobs` hands the CPU engine the blobs' host arrays; :class:`DeviceBlobs` hands
the GPU engine their device addresses (Caffe's ``_gpu_data_ptr``), so that a GPU net's blobs
never come to the host. Both run forward (the loss; prob into ``top[1]``) and backward (the
scores' gradient, the targets' gradient where the form has one, zeros elsewhere).
"""

from __future__ import annotations

from .cuda import device
from .cuda.launch import DeviceInputError, DeviceSoftmaxCrossEntropy
from .engine import SoftmaxCrossEntropy
from .layout import Layout


class HostBlobs:
    writes_loss = False  # the layer writes the loss into top[0]

    def __init__(self, engine: SoftmaxCrossEntropy, layout: Layout):
        self.engine, self.layout, self.saved = engine, layout, None

    def forward(self, bottom, top, probs: bool = True) -> float:
        loss, self.saved = self.engine.forward(
            bottom[0].data,
            bottom[1].data,
            self.layout,
            label_weights=bottom[2].data if len(bottom) == 3 else None,
            probs_out=top[1].data if len(top) == 2 and probs else None,
        )
        return loss

    def backward(self, bottom, weight: float, scores: bool, exact: int | None, zeros) -> None:
        """``exact``: the bottom that gets the targets' exact gradient (None: none)."""
        if scores or exact is not None:  # one pass for every gradient
            self.engine.backward(
                self.saved,
                bottom[0].data,
                bottom[1].data,
                label_weights=bottom[2].data if len(bottom) == 3 else None,
                grad_out=bottom[0].diff if scores else None,
                grad_scale=weight,
                target_grad_out=bottom[1].diff if exact == 1 else None,
                label_weight_grad_out=bottom[2].diff if exact == 2 else None,
                target_grad_scale=weight,
            )
        for index in zeros:
            bottom[index].diff[...] = 0.0


class DeviceBlobs:
    writes_loss = True  # the GPU engine writes the loss into top[0]'s device memory

    def __init__(self, engine: DeviceSoftmaxCrossEntropy, layout: Layout, host: HostBlobs):
        self.engine, self.layout, self.host, self.saved = engine, layout, host, None

    def forward(self, bottom, top) -> float:
        address = device.data_address
        try:
            loss, self.saved = self.engine.forward(
                address(bottom[0]),
                address(bottom[1]),
                self.layout,
                label_weights=address(bottom[2]) if len(bottom) == 3 else 0,
                probs_out=address(top[1]) if len(top) == 2 else 0,
                loss_out=address(top[0]),
            )
        except DeviceInputError as found:
            # The CPU engine's checks word the error (the inputs are copied to the host).
            self.host.forward(bottom, top, probs=False)
            raise RuntimeError(
                f"the GPU engine found bad input ({found}) that the CPU engine accepts; "
                "please report this"
            ) from None
        return loss

    def backward(self, bottom, weight: float, scores: bool, exact: int | None, zeros) -> None:
        address = device.diff_address
        if scores or exact is not None:  # one launch for every gradient
            self.engine.backward(
                self.saved,
                grad_out=address(bottom[0]) if scores else 0,
                grad_scale=weight,
                target_grad_out=address(bottom[1]) if exact == 1 else 0,
                label_weight_grad_out=address(bottom[2]) if exact == 2 else 0,
                target_grad_scale=weight,
            )
        for index in zeros:
            self.engine.fill(address(bottom[index]), bottom[index].count, 0.0)
