"""pycaffe layers for softmax cross-entropy with multi-label, real-valued targets.

- :mod:`python_layers.softmax_math`: the math, pure numpy (no Caffe needed).
- :mod:`python_layers.softmax_loss`: ``SoftmaxLossLayer``, the Caffe Python layer.
- :mod:`python_layers.netspec`: NetSpec helpers that write the prototxt stanza for you.
- :mod:`python_layers.testing`: a gradient checker for Python layers in a ``caffe.Net``.
"""

__version__ = "0.1.0"
