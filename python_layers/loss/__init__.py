"""The loss without Caffe (numpy and numba; CUDA in :mod:`.cuda`): one idea per module.

- :mod:`.layout`: how scores split around the class axis; the targets' form object.
- :mod:`.forms`: the three target forms as objects (validation and wording, what the kernels
  read, the gradient to the targets); :mod:`.bad_input` holds the messages.
- :mod:`.bottoms`: the bottoms a choice of form takes (the layers, softmax_math, netspec).
- :mod:`.normalize`: the divisor Z and every normalisation rule, once.
- :mod:`.engine`: :class:`~.engine.SoftmaxCrossEntropy`, forward and backward, on the numba
  kernels of :mod:`.fused_rows` ((N, C) scores) and :mod:`.fused_positions` (dims after the
  class axis), which share :mod:`.numba_parts`; buffers in :mod:`.buffers`.
- :mod:`.reference`: the same math in float64 numpy, what the kernels are tested against.
- :mod:`.target_grad`: the gradient with respect to dense targets and label weights (float64).
- :mod:`.blobs`: the engines on Caffe's blobs (host arrays, or device addresses on a GPU).
"""
