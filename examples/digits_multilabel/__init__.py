"""The example: multi-label digit collages, trained with SoftmaxLossLayer through Caffe."""

import os

os.environ.setdefault("GLOG_minloglevel", "2")  # pycaffe's own logging: warnings and up only
