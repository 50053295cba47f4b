"""pycaffe layers for softmax cross-entropy with multi-label, real-valued targets.

- :mod:`python_layers.softmax_loss`: ``SoftmaxLossLayer``, the loss (dense targets, index
  labels or label lists).
- :mod:`python_layers.multilabel_metrics`: ``MultiLabelMetricsLayer``, P@1, P@k, R@k, mAP.
- :mod:`python_layers.multilabel_data`: ``MultiLabelImageDataLayer``, images and label lists
  from a list file (resampling, prefetching, exact resume, multi-GPU shares).
- :mod:`python_layers.softmax_math`: the loss as a plain numpy function (no Caffe needed);
  its pieces live in :mod:`python_layers.loss`, the data path's in :mod:`python_layers.data`.
- :mod:`python_layers.netspec`: NetSpec helpers that write the prototxt stanzas for you.
- :mod:`python_layers.testing`: a gradient checker for Python layers in a ``caffe.Net``.
"""

__version__ = "0.1.0"
