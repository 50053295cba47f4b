"""The multi-label image data path, in plain numpy (no Caffe): one idea per module.

- :mod:`.list_file`: image list files (``path label label ...`` or ``path label:weight ...``),
  parsed a block of lines at a time, with ``file:line`` errors.
- :mod:`.index` (built by :mod:`.index_writer`, ahead of time by :mod:`.build_index`): a list
  file's memory-mapped index (paths, label CSR, per-class CSR), cached and shared.
- :mod:`.order`: a keyed bijection on [0, N) (Feistel, cycle-walking): a shuffled epoch.
- :mod:`.sampler`: which images make global batch b: a pure function of (seed, b), for the
  natural order and for class resampling (Mahajan et al.'s square root, balanced), and the
  part of it each rank of a multi-GPU run takes; one sampler object, chosen at set-up.
- :mod:`.sources`: where image i's bytes come from (files under ``root_folder``, a Caffe
  LMDB), one module a kind, chosen at set-up from the parameters.
- :mod:`.decode`: encoded bytes to pixels with OpenCV, as Caffe's ``ImageData``.
- :mod:`.transforms`, :mod:`.batches`: pixels to network input, batches and prefetching.
"""
