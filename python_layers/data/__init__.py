"""The multi-label image data path, in plain numpy (no Caffe): one idea per module.

- :mod:`.list_file`: image list files (``path label label ...`` or ``path label:weight ...``),
  parsed with ``file:line`` errors.
- :mod:`.sampler`: which images make global batch b: a pure function of (seed, b), for the
  natural order and for class resampling (Mahajan et al.'s square root, balanced), and the
  part of it each rank of a multi-GPU run takes.
"""
