"""The loss without Caffe (numpy and numba; CUDA in :mod:`.cuda`): one idea per module.

- :mod:`.layout`: how scores split around the class axis; the targets' form object.
- :mod:`.forms`: the three target forms as objects (validation and wording, what the kernels
  read, which bottom gets the targets' gradient); :mod:`.bad_input` holds the messages.
- :mod:`.bottoms`: the bottoms a choice of form takes (the layers, softmax_math, netspec).
- :mod:`.coefficients`: the targets' coefficients, one numba rule for every form.
- :mod:`.normalize`: the normalizations, the divisor Z and every normalisation rule, once.
- :mod:`.engine`: :class:`~.engine.SoftmaxCrossEntropy`, forward (Z computed once) and
  backward, on the numba kernels of :mod:`.fused_rows` ((N, C) scores) and
  :mod:`.fused_positions` (dims after the class axis), which share :mod:`.numba_parts`;
  buffers in :mod:`.buffers`.
- :mod:`.reference`: the same math in float64 numpy, what the kernels are tested against
  (sharing no code with them).
- :mod:`.target_grad`: the dense targets' gradient for dims after the class axis (float64,
  from what forward kept); the row kernel writes the targets' gradients itself.
- :mod:`.blobs`: the engines on Caffe's blobs (host arrays, or device addresses on a GPU).
"""
