"""The loss, in plain numpy (no Caffe): one idea per module.

- :mod:`.layout`: how scores split around the class axis; which form the targets take.
- :mod:`.targets`: bad-input messages naming blob, position and value.
- :mod:`.engine`: :class:`~.engine.SoftmaxCrossEntropy`, loss and score gradient in one pass
  (numpy blocks, or the numba rows of :mod:`.fused_rows` for (N, C) scores).
- :mod:`.target_grad`: the gradient with respect to dense targets and label weights.
"""
