"""Console scripts, each a small ``main()`` (``python -m python_layers.tools.NAME --help``):

- :mod:`~python_layers.tools.lists`: annotations (COCO, VOC, OpenImages, CSV/TSV/JSON lines)
  -> list files and ``classes.txt``;
- :mod:`~python_layers.tools.deploy`: a deploy prototxt from a train prototxt;
- :mod:`~python_layers.tools.evaluate`: a trained model on a list file -> metrics (JSON, PNG);
- :mod:`~python_layers.tools.predict`: images -> tags with names and probabilities;
- :mod:`~python_layers.tools.caffe_tool` (``multilabel-caffe``): the distribution's ``caffe``
  tool with these layers.
"""
